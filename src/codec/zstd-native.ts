// zstd through the lh_zstd addon (native/lh_zstd.c): one compression and one decompression context
// kept for the process instead of node:zlib's new stream and context per call, which made zstd
// 1.5-2.5x slower on the vm payload in a loop and cost a gateway ~3.5x the codec's own time in the
// lab (bench/results/datapath-2026-12-06.md §15). The same frames either way: node:zlib decodes what
// this writes and the reverse (except that node:zlib runs level -1 as 3, zlib's "default level").
// Without the addon built, codecs.ts uses node:zlib.
import { loadAddon } from '../native/load.ts';

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

// Compressed output lands here first, then is copied out at its own size: a block's output is
// kept (the encoder may compare two and queue either), and a copy of a third of a block costs less
// than a fresh block-sized buffer and its garbage.
let scratch = new Uint8Array(0);

/** zstd at `level`, a frame without checksum or content size (the block header carries it). */
export function compressNative(addon: LhZstdAddon, data: Uint8Array, level: number): Uint8Array {
  const bound = compressBound(data.length);
  if (scratch.length < bound) scratch = new Uint8Array(bound);
  const n = addon.compress(data, scratch, level);
  if (n < 0) throw new Error('zstd: output larger than its bound'); // cannot happen: the bound holds every input
  return scratch.slice(0, n);
}
