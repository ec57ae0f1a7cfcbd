// zstd through the lh_zstd addon (native/lh_zstd.c): one compression and one decompression context
// kept for the process instead of node:zlib's new stream and context per call, which cost ~10x the
// codec's own time per 256 KiB block on this project's machine (bench/results/datapath-2026-12-06.md
// §15). The same frames either way: node:zlib decodes what this writes and the reverse. Without the
// addon built, codecs.ts uses node:zlib.
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

// zstd's ZSTD_compressBound for sizes below 128 KiB adds a margin; above, size/256 plus 64 holds.
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
