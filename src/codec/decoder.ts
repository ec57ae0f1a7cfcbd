// Framed block stream -> application bytes. Accepts the stream split anywhere. Every
// length is checked against maxBlockSize before anything is sized from it, so hostile
// input costs at most one block's buffer. After the first error the decoder stays failed.

import {
  CODEC_LZ4,
  CODEC_NONE,
  DEFAULT_MAX_BLOCK_SIZE,
  MAX_CONFIGURABLE_BLOCK_SIZE,
  MAX_HEADER_LENGTH,
  parseBlockHeader,
} from './block-format.ts';
import type { BlockHeader } from './block-format.ts';
import { decompressWith } from './codecs.ts';
import type { BlockError } from './errors.ts';
import { CodecStats } from './stats.ts';

export type DecodeResult = { ok: true; data: Uint8Array[] } | { ok: false; error: BlockError };

// A compressed payload split over several chunks (the usual case: the transport hands over what
// arrived, a fraction of a ~90 KB payload) is assembled in a buffer taken from this small pool and
// given back once decompressed, not a fresh one per block: those were ~0.4 bytes of garbage per
// decoded byte on the vm payload, and with the output buffers (block-buffers.ts) the garbage
// collector's main cost on the receiving gateway. Pooled buffers hold any payload of the default
// block size; a small payload (a stream of short messages) or a larger one (a configured
// maxBlockSize above the default) gets a buffer of its own, as before.
const PAYLOAD_BUFFER_BYTES = DEFAULT_MAX_BLOCK_SIZE;
const POOLED_PAYLOAD_MIN_BYTES = 16 * 1024;
const MAX_FREE_PAYLOAD_BUFFERS = 8;
const freePayloadBuffers: Uint8Array[] = [];

function takePayloadBuffer(size: number): Uint8Array {
  if (size > PAYLOAD_BUFFER_BYTES || size < POOLED_PAYLOAD_MIN_BYTES) return new Uint8Array(size);
  return freePayloadBuffers.pop() ?? new Uint8Array(PAYLOAD_BUFFER_BYTES);
}

function givePayloadBuffer(buffer: Uint8Array): void {
  if (buffer.length === PAYLOAD_BUFFER_BYTES && freePayloadBuffers.length < MAX_FREE_PAYLOAD_BUFFERS) freePayloadBuffers.push(buffer);
}

/**
 * Where a compressed block's output may go: a buffer of at least `size` bytes the caller lends
 * (and keeps unchanged until it is done with the data), or null for a fresh one.
 */
export type OutputBuffers = (size: number) => Uint8Array | null;

export interface BlockDecoderOptions {
  /** Largest original size accepted per block. Default 256 KiB. */
  maxBlockSize?: number;
  now?: () => number;
  stats?: CodecStats;
}

const NO_DATA: Uint8Array[] = [];

export class BlockDecoder {
  readonly stats: CodecStats;
  readonly maxBlockSize: number;
  readonly #now: () => number;
  // A header split across pushes is gathered here (it is at most MAX_HEADER_LENGTH bytes).
  readonly #headerBytes = new Uint8Array(MAX_HEADER_LENGTH);
  #headerFill = 0;
  // The block under way: a raw one passes through as it comes; a compressed one whose payload
  // is split across pushes is gathered in `payload`. payloadFill: its bytes seen so far.
  #header: BlockHeader | null = null;
  #payload: Uint8Array | null = null;
  #payloadFill = 0;
  #failure: BlockError | null = null;

  constructor(options: BlockDecoderOptions = {}) {
    this.maxBlockSize = options.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
    if (!Number.isInteger(this.maxBlockSize) || this.maxBlockSize < 1 || this.maxBlockSize > MAX_CONFIGURABLE_BLOCK_SIZE) {
      throw new RangeError(`maxBlockSize must be an integer in [1, ${MAX_CONFIGURABLE_BLOCK_SIZE}]`);
    }
    this.stats = options.stats ?? new CodecStats();
    this.#now = options.now ?? (() => performance.now());
  }

  /** The error that failed this stream, if any. */
  get error(): BlockError | null {
    return this.#failure;
  }

  /**
   * Consumes `chunk` and returns the application bytes of what it completed. A compressed block
   * comes out whole once its last byte arrived: in a buffer from `outputs` where the codec can
   * write into one (zstd through the native addon), else in a fresh one. A raw block's bytes come
   * out as they arrive, as views of `chunk` (no copy: the caller must leave `chunk` unchanged while
   * it uses them, e.g. until a socket has written them). On a protocol error returns it, now and
   * for every later push.
   */
  push(chunk: Uint8Array, outputs?: OutputBuffers): DecodeResult {
    if (this.#failure) return { ok: false, error: this.#failure };
    this.stats.decode.bytesIn += chunk.length;
    let out: Uint8Array[] = NO_DATA;
    let at = 0;
    while (at < chunk.length) {
      if (this.#header === null) {
        at = this.#readHeader(chunk, at);
        if (this.#failure) return this.#fail();
        const parsed = this.#header as BlockHeader | null;
        if (parsed === null) break; // chunk ended inside a header
        if (parsed.codec === CODEC_NONE) this.#countRaw(parsed);
      }
      const header = this.#header as BlockHeader;
      if (header.codec === CODEC_NONE) {
        // Raw: passed on as it comes, split or not.
        const take = Math.min(header.payloadLength - this.#payloadFill, chunk.length - at);
        if (take > 0) {
          if (out === NO_DATA) out = [];
          out.push(chunk.subarray(at, at + take));
        }
        this.#payloadFill += take;
        at += take;
        if (this.#payloadFill < header.payloadLength) break;
        this.#header = null;
        this.#payloadFill = 0;
        continue;
      }
      let payload: Uint8Array;
      let assembledIn: Uint8Array | null = null;
      if (this.#payload === null && chunk.length - at >= header.payloadLength) {
        payload = chunk.subarray(at, at + header.payloadLength); // whole payload in this chunk: no copy
        at += header.payloadLength;
      } else {
        // Bounded: payloadLength <= originalLength <= maxBlockSize, checked by parseBlockHeader.
        const buffer = this.#payload ?? takePayloadBuffer(header.payloadLength);
        this.#payload = buffer;
        const take = Math.min(header.payloadLength - this.#payloadFill, chunk.length - at);
        buffer.set(chunk.subarray(at, at + take), this.#payloadFill);
        this.#payloadFill += take;
        at += take;
        if (this.#payloadFill < header.payloadLength) break;
        payload = buffer.subarray(0, header.payloadLength);
        assembledIn = buffer;
      }
      this.#header = null;
      this.#payload = null;
      this.#payloadFill = 0;
      // The codecs read the payload and write their output elsewhere: its buffer is free again after.
      const data = this.#decompress(header, payload, outputs);
      if (assembledIn !== null) givePayloadBuffer(assembledIn);
      if (data === null) return this.#fail();
      if (out === NO_DATA) out = [];
      out.push(data);
    }
    return { ok: true, data: out };
  }

  /**
   * Call at the end of the stream (FIN). Reports a block cut short as a 'truncated' error;
   * the sender only ever finishes a stream between blocks.
   */
  finish(): { ok: true } | { ok: false; error: BlockError } {
    if (this.#failure) return { ok: false, error: this.#failure };
    if (this.#header !== null) {
      this.#failure = { kind: 'truncated', missingBytes: this.#header.payloadLength - this.#payloadFill };
      return this.#fail();
    }
    if (this.#headerFill > 0) {
      this.#failure = { kind: 'truncated', missingBytes: 1 };
      return this.#fail();
    }
    return { ok: true };
  }

  // Parses the next header starting at chunk[at]; sets this.#header or this.#failure, or
  // stores a partial header. Returns the offset after the bytes it consumed.
  #readHeader(chunk: Uint8Array, at: number): number {
    if (this.#headerFill === 0) {
      const parsed = parseBlockHeader(chunk, at, chunk.length, this.maxBlockSize);
      if (parsed.status === 'ok') {
        this.#header = parsed.header;
        return at + parsed.header.headerLength;
      }
      if (parsed.status === 'error') {
        this.#failure = parsed.error;
        return at;
      }
    }
    // Gather header bytes across pushes; a header never exceeds MAX_HEADER_LENGTH.
    const previous = this.#headerFill;
    const take = Math.min(MAX_HEADER_LENGTH - previous, chunk.length - at);
    this.#headerBytes.set(chunk.subarray(at, at + take), previous);
    this.#headerFill += take;
    const parsed = parseBlockHeader(this.#headerBytes, 0, this.#headerFill, this.maxBlockSize);
    if (parsed.status === 'incomplete') {
      // Only when every byte was taken; with MAX_HEADER_LENGTH bytes a header always parses or fails.
      return at + take;
    }
    this.#headerFill = 0;
    if (parsed.status === 'error') {
      this.#failure = parsed.error;
      return at;
    }
    this.#header = parsed.header;
    return at + (parsed.header.headerLength - previous);
  }

  #countRaw(header: BlockHeader): void {
    const s = this.stats.decode;
    s.blocks++;
    s.blocksRaw++;
    s.bytesOut += header.originalLength;
  }

  #decompress(header: BlockHeader, payload: Uint8Array, outputs: OutputBuffers | undefined): Uint8Array | null {
    const s = this.stats.decode;
    s.blocks++;
    const started = this.#now();
    const result = decompressWith(header.codec, payload, header.originalLength, outputs);
    s.cpuMs += this.#now() - started;
    if (!result.ok) {
      this.#failure = result.error;
      return null;
    }
    if (header.codec === CODEC_LZ4) s.blocksLz4++;
    else s.blocksZstd++;
    s.bytesOut += result.data.length;
    return result.data;
  }

  // Called once, when the failure is first found.
  #fail(): { ok: false; error: BlockError } {
    this.stats.decode.errors++;
    return { ok: false, error: this.#failure! };
  }
}
