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
  /**
   * Seals `count` packets laid back to back in buf from byte `at`, packet i being lens[from + i]
   * bytes: a 16-byte header, the plaintext, 16 bytes of room for the tag. Writes each header as
   * word0 and word1 (u32 LE), then the packet's counter (u64 LE), counter = firstCounter + i, and
   * seals the plaintext in place (AAD = the header). A send queue's run in one call. Throws
   * when the run does not fit `buf` or a packet is shorter than header + tag (caller bugs).
   */
  sealRun(
    key: AeadKey,
    buf: Uint8Array,
    lens: Int32Array,
    from: number,
    count: number,
    at: number,
    word0: number,
    word1: number,
    firstCounter: number,
  ): number;
  /**
   * open() for `count` packets of buf, packet k at buf[ats[k], +lens[k]) under counters[k], in
   * place or, with `out`, into out[outAts[k]] (not overlapping the packets): results[k] = its
   * plaintext length, or -1 (then its plaintext bytes are zeroed). A receive batch's run in one
   * call. Throws when a packet or a plaintext lies outside its buffer (a caller bug).
   */
  openRun(
    key: AeadKey,
    buf: Uint8Array,
    ats: Int32Array,
    lens: Int32Array,
    counters: Float64Array,
    count: number,
    headerLen: number,
    results: Int32Array,
    out?: Uint8Array | null,
    outAts?: Int32Array,
  ): number;
  /** Wipes and releases the key now (a finalizer does it otherwise); the key is unusable afterwards. */
  free(key: AeadKey): void;
}

/** openRun by per-packet open, in a loop. */
function openRunByOpen(
  open: PacketAead['open'],
  key: AeadKey,
  buf: Uint8Array,
  ats: Int32Array,
  lens: Int32Array,
  counters: Float64Array,
  count: number,
  headerLen: number,
  results: Int32Array,
  out?: Uint8Array | null,
  outAts?: Int32Array,
): number {
  const into = out ?? null;
  for (let k = 0; k < count; k++) {
    if (ats[k]! < 0 || ats[k]! + lens[k]! > buf.length) throw new RangeError('ats, lens: a packet outside buf');
    const plainLen = lens[k]! - headerLen - AEAD_TAG_LEN;
    if (into !== null && plainLen >= 0 && (outAts![k]! < 0 || outAts![k]! + plainLen > into.length))
      throw new RangeError('outAts: a plaintext outside out');
  }
  for (let k = 0; k < count; k++) {
    const packet = buf.subarray(ats[k]!, ats[k]! + lens[k]!);
    const plainLen = lens[k]! - headerLen - AEAD_TAG_LEN;
    results[k] = open(
      key,
      counters[k]!,
      packet,
      headerLen,
      into !== null && plainLen >= 0 ? into.subarray(outAts![k]!, outAts![k]! + plainLen) : null,
    );
  }
  return count;
}

/** sealRun and openRun for a JS backend, from its per-packet seal and open (the OpenSSL addon has its own). */
export function runsByPacket(seal: PacketAead['seal'], open: PacketAead['open']): Pick<PacketAead, 'sealRun' | 'openRun'> {
  return {
    sealRun: (key, buf, lens, from, count, at, word0, word1, firstCounter) =>
      sealRunBySeal(seal, key, buf, lens, from, count, at, word0, word1, firstCounter),
    openRun: (key, buf, ats, lens, counters, count, headerLen, results, out, outAts) =>
      openRunByOpen(open, key, buf, ats, lens, counters, count, headerLen, results, out, outAts),
  };
}

/** Bytes of the header sealRun writes: two u32 words and the u64 counter. */
export const RUN_HEADER_LEN = 16;

/** sealRun by per-packet seal, in a loop. */
function sealRunBySeal(
  seal: PacketAead['seal'],
  key: AeadKey,
  buf: Uint8Array,
  lens: Int32Array,
  from: number,
  count: number,
  at: number,
  word0: number,
  word1: number,
  firstCounter: number,
): number {
  let end = at;
  for (let i = 0; i < count; i++) {
    const len = lens[from + i]!;
    if (len < RUN_HEADER_LEN + AEAD_TAG_LEN) throw new RangeError('lens: a packet shorter than header + tag');
    end += len;
  }
  if (from + count > lens.length || end > buf.length) throw new RangeError('buf: the run does not fit');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = at;
  for (let i = 0; i < count; i++) {
    const len = lens[from + i]!;
    const counter = firstCounter + i;
    view.setUint32(off, word0, true);
    view.setUint32(off + 4, word1, true);
    view.setUint32(off + 8, counter >>> 0, true);
    view.setUint32(off + 12, Math.floor(counter / 2 ** 32), true);
    seal(key, counter, buf, RUN_HEADER_LEN, buf.subarray(off + RUN_HEADER_LEN, off + len - AEAD_TAG_LEN), off);
    off += len;
  }
  return count;
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
 * The JS backends' open target: where the plaintext goes (`out`'s start, or over the ciphertext
 * when `out` is null), or null for a datagram too short to hold a tag (network input); throws when
 * `out` is too small (a caller bug).
 */
export function openTarget(packet: Uint8Array, headerLen: number, out: Uint8Array | null): Uint8Array | null {
  const plainLen = packet.length - headerLen - AEAD_TAG_LEN;
  if (plainLen < 0) return null;
  if (out === null) return packet.subarray(headerLen, headerLen + plainLen);
  if (out.length < plainLen) throw new RangeError('out: shorter than the plaintext');
  return out.subarray(0, plainLen);
}
