// Wire framing of one compression block (docs/protocol.md, "Compression blocks"):
//
//   codec: u8 | originalLength: varint | payloadLength: varint (absent when codec = none) | payload
//
// Varints are LEB128, minimal, at most 4 bytes. A raw block needs no payload length (it
// equals the original length), so a 1-byte keystroke costs 2 bytes of framing.

import type { BlockError } from './errors.ts';

export const CODEC_NONE = 0;
export const CODEC_LZ4 = 1;
export const CODEC_ZSTD = 2;
export type CodecId = typeof CODEC_NONE | typeof CODEC_LZ4 | typeof CODEC_ZSTD;
export type CodecName = 'none' | 'lz4' | 'zstd';
export const CODEC_NAMES: readonly CodecName[] = ['none', 'lz4', 'zstd'];

/** Default cap on a block's original size, for both the encoder's block size and the decoder's limit. */
export const DEFAULT_MAX_BLOCK_SIZE = 256 * 1024;
/** Hard ceiling on any configured limit: 4-byte varints hold 2^28, and 16 MiB per block is already absurd for a stream. */
export const MAX_CONFIGURABLE_BLOCK_SIZE = 16 * 1024 * 1024;
/** codec byte + two 4-byte varints. */
export const MAX_HEADER_LENGTH = 9;
const MAX_VARINT_BYTES = 4;

export interface BlockHeader {
  codec: CodecId;
  originalLength: number;
  payloadLength: number;
  headerLength: number;
}

export type HeaderParse = { status: 'ok'; header: BlockHeader } | { status: 'incomplete' } | { status: 'error'; error: BlockError };

function varintLength(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : 4;
}

export function headerLength(codec: CodecId, originalLength: number, payloadLength: number): number {
  return 1 + varintLength(originalLength) + (codec === CODEC_NONE ? 0 : varintLength(payloadLength));
}

function writeVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[offset++] = value;
  return offset;
}

/** Writes the header at `offset`; returns the offset just past it. Caller checks lengths (encoder-side, trusted). */
export function writeBlockHeader(out: Uint8Array, offset: number, codec: CodecId, originalLength: number, payloadLength: number): number {
  out[offset++] = codec;
  offset = writeVarint(out, offset, originalLength);
  if (codec !== CODEC_NONE) offset = writeVarint(out, offset, payloadLength);
  return offset;
}

// Returns the value, -1 when more bytes are needed, -2 when malformed (overlong or non-minimal).
function readVarint(bytes: Uint8Array, offset: number, end: number): { value: number; next: number } | -1 | -2 {
  let value = 0;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (offset + i >= end) return -1;
    const byte = bytes[offset + i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      // A zero final byte after continuation bytes is a non-minimal encoding: reject so every length has one form.
      if (byte === 0 && i > 0) return -2;
      return { value, next: offset + i + 1 };
    }
  }
  return -2;
}

/**
 * Parses a header from `bytes[offset, end)` and validates it against `maxOriginalLength`,
 * so no caller ever sizes a buffer from an unchecked length.
 */
export function parseBlockHeader(bytes: Uint8Array, offset: number, end: number, maxOriginalLength: number): HeaderParse {
  if (offset >= end) return { status: 'incomplete' };
  const codec = bytes[offset]!;
  if (codec > CODEC_ZSTD) return { status: 'error', error: { kind: 'unknown-codec', codecId: codec } };
  const original = readVarint(bytes, offset + 1, end);
  if (original === -1) return { status: 'incomplete' };
  if (original === -2) return { status: 'error', error: { kind: 'malformed-length' } };
  if (original.value === 0) return { status: 'error', error: { kind: 'empty-block' } };
  if (original.value > maxOriginalLength) {
    return { status: 'error', error: { kind: 'original-too-large', claimed: original.value, max: maxOriginalLength } };
  }
  if (codec === CODEC_NONE) {
    return {
      status: 'ok',
      header: { codec, originalLength: original.value, payloadLength: original.value, headerLength: original.next - offset },
    };
  }
  const payload = readVarint(bytes, original.next, end);
  if (payload === -1) return { status: 'incomplete' };
  if (payload === -2) return { status: 'error', error: { kind: 'malformed-length' } };
  // A compressed payload never exceeds its original (the encoder sends such blocks raw), which
  // also bounds what the decoder buffers for one block by maxOriginalLength.
  if (payload.value === 0 || payload.value > original.value) {
    return {
      status: 'error',
      error: { kind: 'bad-payload-length', payloadLength: payload.value, originalLength: original.value },
    };
  }
  return {
    status: 'ok',
    header: {
      codec: codec as CodecId,
      originalLength: original.value,
      payloadLength: payload.value,
      headerLength: payload.next - offset,
    },
  };
}
