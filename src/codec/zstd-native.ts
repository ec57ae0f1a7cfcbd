// zstd through the lh_zstd addon (native/lh_zstd.c): one compression and one decompression context
// kept for the process instead of node:zlib's new stream and context per call, which made zstd
// 1.5-2.5x slower on the vm payload in a loop and cost a gateway ~3.5x the codec's own time in the
// lab (bench/results/datapath-2026-12-06.md §15). The same frames either way: node:zlib decodes what
// this writes and the reverse (except that node:zlib runs level -1 as 3, zlib's "default level").
// Without the addon built, codecs.ts uses node:zlib.
import { loadAddon } from '../native/load.ts';
import { DEFAULT_MAX_BLOCK_SIZE } from './block-format.ts';

interface LhZstdAddon {
  /** Bytes written to dst, or -1 when they would not fit. */
  compress(src: Uint8Array, dst: Uint8Array, level: number): number;
  /** Bytes written to dst; -2: the content would not fit in dst; -1: not a valid frame. */
  decompress(src: Uint8Array, dst: Uint8Array): number;
}

const load = loadAddon<LhZstdAddon>('lh_zstd');

/** The addon, or null (not built; or LONGHAUL_ZSTD=zlib, to compare the two). */
export const nativeZstd: LhZstdAddon | null = load.ok && process.env.LONGHAUL_ZSTD !== 'zlib' ? load.addon : null;

// zstd.h's ZSTD_COMPRESSBOUND (n + n/256, plus a margin below 128 KiB), and 64 bytes to spare.
function compressBound(n: number): number {
  return n + (n >>> 8) + 64 + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0);
}

// Output of a block of DEFAULT_MAX_BLOCK_SIZE or a little less (a gathered block, a 64 KiB read)
// goes to a buffer from a small pool, lent to the caller until releaseCompressed(): the gateway's
// bridge gives it back as soon as the transport stream has copied it, in the same turn (what the
// stream cannot take then is copied out, as the shared read buffer's views are). A fresh buffer per
// block was ~0.35 bytes of garbage per source byte on the vm payload, and with the receiver's
// (decoder.ts) the collector's main cost. Smaller outputs land in a scratch buffer and are copied
// out at their own size: the copy of a small block costs less than a pool that holds big ones.
const POOLED_MIN_INPUT = 32 * 1024;
const POOLED_CAPACITY = compressBound(DEFAULT_MAX_BLOCK_SIZE);
const MAX_FREE_POOLED = 8;
const freePooled: Uint8Array[] = [];
// Buffers lent out and not yet given back: a second release of one (a view of it kept twice) must
// not put it in the free list twice.
const lent = new WeakSet<ArrayBufferLike>();
let scratch = new Uint8Array(0);

/**
 * zstd at `level`, a frame without checksum or content size (the block header carries it). The
 * result may be a lent buffer's view: pass it to releaseCompressed() once its bytes are copied
 * elsewhere, or keep it (then it is garbage like any other buffer).
 */
export function compressNative(addon: LhZstdAddon, data: Uint8Array, level: number): Uint8Array {
  const bound = compressBound(data.length);
  if (data.length >= POOLED_MIN_INPUT && bound <= POOLED_CAPACITY) {
    const buffer = freePooled.pop() ?? new Uint8Array(POOLED_CAPACITY);
    lent.add(buffer.buffer);
    return buffer.subarray(0, compressInto(addon, data, buffer, level));
  }
  if (scratch.length < bound) scratch = new Uint8Array(bound);
  return scratch.slice(0, compressInto(addon, data, scratch, level));
}

function compressInto(addon: LhZstdAddon, data: Uint8Array, into: Uint8Array, level: number): number {
  const n = addon.compress(data, into, level);
  if (n < 0) throw new Error('zstd: output larger than its bound'); // cannot happen: the bound holds every input
  return n;
}

/** `output` (any view of it) is no longer used: a lent buffer goes back to the pool; anything else is left alone. */
export function releaseCompressed(output: Uint8Array): void {
  const buffer = output.buffer;
  // Every lent buffer is POOLED_CAPACITY long: the bridge hands every part of every block here
  // (TCP reads, block headers), and a WeakSet lookup for each cost ~1.5 us in the lab's sending
  // gateway once the set held anything (13 ms per 256 MiB of random data with `auto`).
  if (buffer.byteLength !== POOLED_CAPACITY || !lent.has(buffer)) return;
  lent.delete(buffer);
  if (freePooled.length < MAX_FREE_POOLED) freePooled.push(new Uint8Array(buffer, 0, POOLED_CAPACITY));
}

/** `output` is a view of a buffer lent by compressNative and not yet released. */
export function isLentCompressed(output: Uint8Array): boolean {
  const buffer = output.buffer;
  return buffer.byteLength === POOLED_CAPACITY && lent.has(buffer);
}
