// The three block codecs behind one call each way. Library exceptions on peer input are
// turned into BlockError values here, so nothing above this file catches.
//
// LZ4: lz4-napi (Rust lz4_flex, native, synchronous). Its block API prepends a 4-byte LE
// original size; we drop it on the wire (our header carries the size) and rebuild it on
// decode from the *validated* header length, so lz4_flex never sizes its output from
// peer bytes and errors if the data would overrun it.
// zstd: the libzstd bundled with Node 24, through the lh_zstd addon (zstd-native.ts: the output
// buffer bounds decompression), or node:zlib without it (maxOutputLength bounds it).

import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import zlib from 'node:zlib';
import { CODEC_LZ4, CODEC_NONE, CODEC_ZSTD } from './block-format.ts';
import type { CodecId, CodecName } from './block-format.ts';
import type { BlockError } from './errors.ts';
import { compressNative, nativeZstd } from './zstd-native.ts';

const LZ4_SIZE_PREFIX = 4;

/** A concrete compression setting: a codec and, for zstd, its level. */
export interface CodecSetting {
  codec: Exclude<CodecName, 'none'>;
  /** zstd level (negative = zstd's "fast" levels); ignored for lz4. */
  level: number;
}

export type DecompressResult = { ok: true; data: Uint8Array } | { ok: false; error: BlockError };

export function codecId(name: CodecName): CodecId {
  return name === 'lz4' ? CODEC_LZ4 : name === 'zstd' ? CODEC_ZSTD : CODEC_NONE;
}

const zstdParamsByLevel = new Map<number, Record<number, number>>();

function zstdParams(level: number): Record<number, number> {
  let params = zstdParamsByLevel.get(level);
  if (!params) {
    params = {
      [zlib.constants.ZSTD_c_compressionLevel]: level,
      // The AEAD below us already authenticates; the header already carries the size.
      [zlib.constants.ZSTD_c_checksumFlag]: 0,
      [zlib.constants.ZSTD_c_contentSizeFlag]: 0,
    };
    zstdParamsByLevel.set(level, params);
  }
  return params;
}

export function compressWith(setting: CodecSetting, data: Uint8Array): Uint8Array {
  if (setting.codec === 'lz4') return lz4Compress(data as Buffer).subarray(LZ4_SIZE_PREFIX);
  if (nativeZstd !== null) return compressNative(nativeZstd, data, setting.level);
  return zlib.zstdCompressSync(data, {
    params: zstdParams(setting.level),
    // Lets zstd size its tables to the block (no measurable speed change at 4-64 KiB on the
    // project machine; each call costs ~20 us of set-up either way, so 4 KiB blocks run at ~200 MB/s).
    pledgedSrcSize: data.length,
    // Anything larger than the input is sent raw anyway; one output chunk avoids a concat.
    chunkSize: Math.max(64, data.length),
  });
}

/**
 * Decompresses one payload whose header already passed parseBlockHeader (so
 * originalLength <= the configured maximum). Never allocates more than originalLength
 * (+ the payload copy for lz4's prefix). zstd through the native addon writes into a buffer from
 * `outputs` when it lends one (the result is then a view of it); the other paths allocate.
 */
export function decompressWith(
  codec: CodecId,
  payload: Uint8Array,
  originalLength: number,
  outputs?: (size: number) => Uint8Array | null,
): DecompressResult {
  if (codec === CODEC_LZ4) {
    const prefixed = Buffer.allocUnsafe(payload.length + LZ4_SIZE_PREFIX);
    prefixed.writeUInt32LE(originalLength, 0);
    prefixed.set(payload, LZ4_SIZE_PREFIX);
    let out: Uint8Array;
    try {
      out = lz4Uncompress(prefixed);
    } catch (err) {
      const detail = errorText(err);
      // lz4_flex's wording when the data would overrun the declared size.
      if (detail.includes('output is too small')) {
        return { ok: false, error: { kind: 'size-mismatch', codec: 'lz4', expected: originalLength, actual: 'larger' } };
      }
      return { ok: false, error: { kind: 'decompress-failed', codec: 'lz4', detail } };
    }
    if (out.length !== originalLength) {
      return { ok: false, error: { kind: 'size-mismatch', codec: 'lz4', expected: originalLength, actual: out.length } };
    }
    return { ok: true, data: out };
  }
  if (codec === CODEC_ZSTD && nativeZstd !== null) {
    const lent = outputs?.(originalLength) ?? null;
    const out = lent !== null && lent.length >= originalLength ? lent.subarray(0, originalLength) : Buffer.allocUnsafe(originalLength);
    const n = nativeZstd.decompress(payload, out);
    if (n === -2) return { ok: false, error: { kind: 'size-mismatch', codec: 'zstd', expected: originalLength, actual: 'larger' } };
    if (n < 0) return { ok: false, error: { kind: 'decompress-failed', codec: 'zstd', detail: 'not a valid zstd frame' } };
    if (n !== originalLength) return { ok: false, error: { kind: 'size-mismatch', codec: 'zstd', expected: originalLength, actual: n } };
    return { ok: true, data: out };
  }
  if (codec === CODEC_ZSTD) {
    let out: Uint8Array;
    try {
      // One spare byte lets the whole block land in one output chunk with room left, so zlib
      // sees the end without allocating a second chunk.
      out = zlib.zstdDecompressSync(payload, { maxOutputLength: originalLength, chunkSize: Math.max(64, originalLength + 1) });
    } catch (err) {
      // Node reports "would exceed maxOutputLength" as ERR_BUFFER_TOO_LARGE: the payload holds more than declared.
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        return {
          ok: false,
          error: { kind: 'size-mismatch', codec: 'zstd', expected: originalLength, actual: 'larger' },
        };
      }
      return { ok: false, error: { kind: 'decompress-failed', codec: 'zstd', detail: errorText(err) } };
    }
    if (out.length !== originalLength) {
      return { ok: false, error: { kind: 'size-mismatch', codec: 'zstd', expected: originalLength, actual: out.length } };
    }
    return { ok: true, data: out };
  }
  return { ok: true, data: payload.slice() };
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
