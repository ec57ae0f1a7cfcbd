// The per-packet AEAD behind data messages (docs/protocol.md, "Packet protection"): AES-256-GCM
// (the default) or ChaCha20-Poly1305 (RFC 8439), with Noise's nonce, 4 zero bytes || the 64-bit
// counter (big-endian for AESGCM, little-endian for ChaChaPoly: Noise spec 12.3, 12.4), over a
// packet laid out as header (the AAD) || ciphertext || 16-byte tag.
// Backends per cipher compute the same bytes: OpenSSL through native/lh_aead.c (one cipher context
// per key; 1400-byte seal on the gateways' EPYC ~0.25 us AES-256-GCM, ~0.95 us ChaCha20-Poly1305),
// and without the addon sodium-native for ChaCha20-Poly1305 (~1.7 us) or node:crypto for
// AES-256-GCM (a cipher object per packet, ~4 us).
//
// Hot path: no allocation per call. The caller passes the packet buffer; seal writes the
// ciphertext and tag after the header, open decrypts in place or into a caller's buffer.

declare const aeadKeyBrand: unique symbol;
/** A key loaded into a backend. Opaque; only the backend that made it may use it. */
export type AeadKey = { readonly [aeadKeyBrand]: true };

/** The per-packet cipher; both peers must use the same one (it is part of the Noise protocol name). */
export type PacketCipher = 'aes-256-gcm' | 'chacha20-poly1305';
export const PACKET_CIPHERS: readonly PacketCipher[] = ['aes-256-gcm', 'chacha20-poly1305'];
/** AES-256-GCM: ~2x faster than ChaCha20-Poly1305 per packet on CPUs with AES-NI and (V)PCLMULQDQ. */
export const DEFAULT_PACKET_CIPHER: PacketCipher = 'aes-256-gcm';

export const AEAD_KEY_LEN = 32;
export const AEAD_TAG_LEN = 16;

export interface PacketAead {
  /** 'openssl', 'sodium' or 'node' (stats, logs, benchmarks). */
  readonly name: string;
  readonly cipher: PacketCipher;
  /** Loads a 32-byte key (copied: the caller wipes its own bytes). Throws on a wrong length. */
  create(key: Uint8Array): AeadKey;
  /**
   * The packet is buf[at, ...) (`at` default 0: a sender can seal straight into its send queue).
   * AAD = packet[0, headerLen); writes the ciphertext at packet[headerLen] and the tag after it;
   * returns headerLen + plaintext.length + 16. `plaintext` may be packet[headerLen, ...) itself, and
   * must not overlap the packet otherwise. Throws when the packet is too small (a caller bug).
   */
  seal(key: AeadKey, counter: number, buf: Uint8Array, headerLen: number, plaintext: Uint8Array, at?: number): number;
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

/** The JS backends' view of the packet that starts at buf[at] (the OpenSSL backend takes the offset itself). */
export function packetAt(buf: Uint8Array, at: number | undefined): Uint8Array {
  if (at === undefined || at === 0) return buf;
  if (!Number.isInteger(at) || at < 0 || at > buf.length) throw new RangeError('at: an offset within buf');
  return buf.subarray(at);
}

/** The JS backends' seal bound: end of the sealed message; throws when `packet` is too small (a caller bug). */
export function sealedEnd(packet: Uint8Array, headerLen: number, plaintextLen: number): number {
  const end = headerLen + plaintextLen + AEAD_TAG_LEN;
  if (end > packet.length) throw new RangeError('packet: too small for header + plaintext + tag');
  return end;
}

/**
 * The JS backends' open bound: plaintext length, or -1 for a datagram too short to hold a tag
 * (network input); throws when `out` is too small (a caller bug).
 */
export function openedLength(packet: Uint8Array, headerLen: number, out: Uint8Array | null): number {
  const plainLen = packet.length - headerLen - AEAD_TAG_LEN;
  if (plainLen < 0) return -1;
  if (out !== null && out.length < plainLen) throw new RangeError('out: shorter than the plaintext');
  return plainLen;
}
