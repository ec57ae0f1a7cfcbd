// Public surface of the block codec, for the gateway and benchmarks.
export {
  BlockEncoder,
  isPooledPart,
  releaseEncodedPart,
  COMPRESSION_MODES,
  MAX_COMPRESSED_FRACTION,
  MIN_COMPRESS_SIZE,
  DEFAULT_ZSTD_LEVEL,
} from './encoder.ts';
export type { BlockEncoderOptions, CompressionMode } from './encoder.ts';
export { BlockDecoder } from './decoder.ts';
export { PathMemory } from './path-memory.ts';
export type { BlockDecoderOptions, DecodeResult } from './decoder.ts';
export { CodecStats } from './stats.ts';
export type { ArbiterCounters, CodecStatsSnapshot, EncodeCounters, DecodeCounters } from './stats.ts';
export { describeBlockError } from './errors.ts';
export type { BlockError, BlockErrorKind } from './errors.ts';
export { DEFAULT_MAX_BLOCK_SIZE, MAX_CONFIGURABLE_BLOCK_SIZE } from './block-format.ts';
export { AdaptivePolicy, DEFAULT_LADDER, DEFAULT_CPU_MARGIN, DEFAULT_CPU_SHARE, DEFAULT_WIRE_CPU_NS_PER_BYTE } from './adaptive.ts';
export type { Rung } from './adaptive.ts';
