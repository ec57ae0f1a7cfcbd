// Protocol errors found while decoding blocks. Each one means the peer sent bytes no
// conforming encoder produces, so the gateway resets the stream with `describeBlockError`.

import type { CodecName } from './block-format.ts';

export type BlockError =
  | { kind: 'unknown-codec'; codecId: number }
  | { kind: 'malformed-length' }
  | { kind: 'empty-block' }
  | { kind: 'original-too-large'; claimed: number; max: number }
  | { kind: 'bad-payload-length'; payloadLength: number; originalLength: number }
  | { kind: 'decompress-failed'; codec: CodecName; detail: string }
  /** `actual` is 'larger' when decompression was stopped at the declared size with data left. */
  | { kind: 'size-mismatch'; codec: CodecName; expected: number; actual: number | 'larger' }
  /** The stream ended inside a block (only reported by BlockDecoder.finish()). */
  | { kind: 'truncated'; missingBytes: number };

export type BlockErrorKind = BlockError['kind'];

/** One-line reason suitable for a stream reset / log line. */
export function describeBlockError(error: BlockError): string {
  switch (error.kind) {
    case 'unknown-codec':
      return `compression block: unknown codec id ${error.codecId}`;
    case 'malformed-length':
      return 'compression block: malformed length varint';
    case 'empty-block':
      return 'compression block: zero original length';
    case 'original-too-large':
      return `compression block: original length ${error.claimed} exceeds maximum ${error.max}`;
    case 'bad-payload-length':
      return `compression block: payload length ${error.payloadLength} invalid for original length ${error.originalLength}`;
    case 'decompress-failed':
      return `compression block: ${error.codec} payload corrupt (${error.detail})`;
    case 'size-mismatch':
      return `compression block: ${error.codec} payload decompressed to ${error.actual === 'larger' ? 'more than that many' : error.actual} bytes, header said ${error.expected}`;
    case 'truncated':
      return `compression block: stream ended ${error.missingBytes} bytes short of a block end`;
  }
}
