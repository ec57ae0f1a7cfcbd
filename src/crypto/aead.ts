// The per-packet AEAD behind data messages (docs/protocol.md, "Packet protection"):
// ChaCha20-Poly1305 (RFC 8439) with Noise's nonce, 4 zero bytes || the 64-bit counter
// little-endian, over a packet laid out as header (the AAD) || ciphertext || 16-byte tag.
// Two interchangeable backends compute the same bytes: OpenSSL through native/lh_aead.c (one
// cipher context per key, ~1 us per 1400-byte packet on the gateways' EPYC) and sodium-native
// (~1.7 us), the fallback when the addon is not built.
//
// Hot path: no allocation per call. The caller passes the packet buffer; seal writes the
// ciphertext and tag after the header, open decrypts in place or into a caller's buffer.

declare const aeadKeyBrand: unique symbol;
/** A key loaded into a backend. Opaque; only the backend that made it may use it. */
export type AeadKey = { readonly [aeadKeyBrand]: true };

export const AEAD_KEY_LEN = 32;
export const AEAD_TAG_LEN = 16;

export interface PacketAead {
  /** 'openssl' or 'sodium' (stats, logs, benchmarks). */
  readonly name: string;
  /** Loads a 32-byte key (copied: the caller wipes its own bytes). Throws on a wrong length. */
  create(key: Uint8Array): AeadKey;
  /**
   * AAD = packet[0, headerLen); writes ChaCha20(plaintext) at packet[headerLen] and the tag after it;
   * returns headerLen + plaintext.length + 16. `plaintext` may be packet[headerLen, ...) itself, and
   * must not overlap the packet otherwise. Throws when the packet is too small (a caller bug).
   */
  seal(key: AeadKey, counter: number, packet: Uint8Array, headerLen: number, plaintext: Uint8Array): number;
  /**
   * AAD = packet[0, headerLen); ciphertext = packet[headerLen, length - 16); tag = the last 16 bytes.
   * Writes the plaintext to `out` (from index 0), or over the ciphertext when `out` is null.
   * Returns the plaintext length, or -1 when the tag does not verify or the packet is too short;
   * then the output bytes are zeroed.
   */
  open(key: AeadKey, counter: number, packet: Uint8Array, headerLen: number, out: Uint8Array | null): number;
  /** Wipes and releases the key now (a finalizer does it otherwise); the key is unusable afterwards. */
  free(key: AeadKey): void;
}
