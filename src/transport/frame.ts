// Frames carried in a transport packet (docs/protocol.md "Transport packets"). Every frame
// starts with a one-byte type; integers are varints (varint.ts). Decoders validate every
// length and range against the bytes actually present, return a typed error instead of
// throwing, and never allocate by a size read from the wire.

import { Reader, varintSize, writeVarint, MAX_VARINT } from './varint.ts';

export const FrameType = {
  PADDING: 0x00,
  PING: 0x01,
  ACK: 0x02,
  RESET_STREAM: 0x04,
  MAX_DATA: 0x06,
  MAX_STREAM_DATA: 0x07,
  MAX_STREAMS: 0x08,
  HANDSHAKE: 0x0a,
  CLOSE: 0x0b,
  STREAM: 0x10, // 0x10 | FIN bit
  STREAM_FIN: 0x11,
} as const;

export const HandshakeKind = { INIT: 1, ACCEPT: 2 } as const;

/** Transport parameters exchanged in the handshake (TLV-encoded so new ones can be added). */
export interface TransportParams {
  maxPacketSize: number; // largest datagram the sender of the params accepts
  maxData: number; // initial association credit it grants
  maxStreamData: number; // initial per-stream credit it grants
  maxStreams: number; // streams the peer may open (cumulative count, raised by MAX_STREAMS)
  idleTimeoutMs: number;
  maxAckDelayUs: number; // how long it may delay an acknowledgement
}

export const TransportParamId = {
  MAX_PACKET_SIZE: 1,
  MAX_DATA: 2,
  MAX_STREAM_DATA: 3,
  MAX_STREAMS: 4,
  IDLE_TIMEOUT_MS: 5,
  MAX_ACK_DELAY_US: 6,
} as const;

// Largest stream id / stream count accepted: 2^31 keeps ids small ints and bounds state.
export const MAX_STREAM_ID = 2 ** 31 - 1;
// Close reasons are diagnostics; 1 KiB is plenty and bounds what a peer makes us decode.
export const MAX_REASON_BYTES = 1024;
// ACK ranges decoded per frame; more than this is hostile (we send at most 64).
export const MAX_ACK_RANGES = 256;
// Smallest datagram a peer may claim to accept (protection overhead comes off 1200).
export const MIN_PACKET_SIZE = 512;

export type Frame =
  | { type: 'padding'; length: number }
  | { type: 'ping' }
  /** `ranges`: inclusive [high, low] pairs, flat, highest first; ranges[0] is the largest acknowledged. */
  | { type: 'ack'; ackDelayUs: number; ranges: number[] }
  | { type: 'reset-stream'; streamId: number; code: number; finalSize: number }
  | { type: 'max-data'; max: number }
  | { type: 'max-stream-data'; streamId: number; max: number }
  | { type: 'max-streams'; max: number }
  | { type: 'handshake'; kind: number; params: TransportParams }
  | { type: 'close'; code: number; reason: string }
  /** `data` is a view into the datagram: copy what you keep. */
  | { type: 'stream'; streamId: number; offset: number; fin: boolean; data: Uint8Array };

export type FrameErrorKind =
  | 'truncated'
  | 'unknown-frame'
  | 'bad-ack'
  | 'bad-stream-id'
  | 'bad-offset'
  | 'bad-handshake'
  | 'bad-reason'
  | 'too-many-ranges';

export interface FrameError {
  error: FrameErrorKind;
  offset: number;
}

function fail(error: FrameErrorKind, r: Reader): FrameError {
  return { error, offset: r.pos };
}

// ---------------------------------------------------------------- encoders
// Each writes at `pos` and returns the position after the frame; callers size the buffer
// with the matching *Size function.

export function writePing(buf: Uint8Array, pos: number): number {
  buf[pos] = FrameType.PING;
  return pos + 1;
}

export function writePadding(buf: Uint8Array, pos: number, length: number): number {
  buf.fill(0, pos, pos + length);
  return pos + length;
}

export function streamFrameHeaderSize(streamId: number, offset: number, length: number): number {
  return 1 + varintSize(streamId) + varintSize(offset) + varintSize(length);
}

/** STREAM header; the caller copies `length` payload bytes right after it. */
export function writeStreamHeader(buf: Uint8Array, pos: number, streamId: number, offset: number, length: number, fin: boolean): number {
  buf[pos] = fin ? FrameType.STREAM_FIN : FrameType.STREAM;
  pos = writeVarint(buf, pos + 1, streamId);
  pos = writeVarint(buf, pos, offset);
  return writeVarint(buf, pos, length);
}

export function writeStream(buf: Uint8Array, pos: number, streamId: number, offset: number, data: Uint8Array, fin: boolean): number {
  pos = writeStreamHeader(buf, pos, streamId, offset, data.length, fin);
  buf.set(data, pos);
  return pos + data.length;
}

/**
 * ACK from ascending half-open ranges (starts[i], ends[i]) of received packet numbers,
 * newest ranges first, as many as fit in `maxBytes` (at least the newest one).
 */
export function writeAck(
  buf: Uint8Array,
  pos: number,
  starts: readonly number[],
  ends: readonly number[],
  count: number,
  ackDelayUs: number,
  maxRanges: number,
  maxBytes: number,
): number {
  const start = pos;
  const limit = pos + maxBytes;
  let i = count - 1;
  const largest = ends[i]! - 1;
  buf[pos] = FrameType.ACK;
  pos = writeVarint(buf, pos + 1, largest);
  pos = writeVarint(buf, pos, ackDelayUs);
  // Range count is written after we know how many fit: reserve 2 bytes (< 16384 ranges).
  const countPos = pos;
  pos += 2;
  pos = writeVarint(buf, pos, largest - starts[i]!);
  let extra = 0;
  let prevLow = starts[i]!;
  for (i--; i >= 0 && extra + 1 < maxRanges; i--) {
    const high = ends[i]! - 1;
    const gap = prevLow - high - 2;
    const len = high - starts[i]!;
    if (pos + varintSize(gap) + varintSize(len) > limit) break;
    pos = writeVarint(buf, pos, gap);
    pos = writeVarint(buf, pos, len);
    prevLow = starts[i]!;
    extra++;
  }
  buf[countPos] = 0x40 | (extra >>> 8);
  buf[countPos + 1] = extra & 0xff;
  return Math.max(pos, start);
}

/** Worst-case size of an ACK frame with `ranges` ranges (for space reservation). */
export function ackFrameMaxSize(ranges: number): number {
  return 1 + 8 + 8 + 2 + 8 + ranges * 16;
}

export function writeResetStream(buf: Uint8Array, pos: number, streamId: number, code: number, finalSize: number): number {
  buf[pos] = FrameType.RESET_STREAM;
  pos = writeVarint(buf, pos + 1, streamId);
  pos = writeVarint(buf, pos, code);
  return writeVarint(buf, pos, finalSize);
}

export function writeMaxData(buf: Uint8Array, pos: number, max: number): number {
  buf[pos] = FrameType.MAX_DATA;
  return writeVarint(buf, pos + 1, max);
}

export function writeMaxStreamData(buf: Uint8Array, pos: number, streamId: number, max: number): number {
  buf[pos] = FrameType.MAX_STREAM_DATA;
  pos = writeVarint(buf, pos + 1, streamId);
  return writeVarint(buf, pos, max);
}

export function writeMaxStreams(buf: Uint8Array, pos: number, max: number): number {
  buf[pos] = FrameType.MAX_STREAMS;
  return writeVarint(buf, pos + 1, max);
}

function paramEntries(p: TransportParams): Array<[number, number]> {
  return [
    [TransportParamId.MAX_PACKET_SIZE, p.maxPacketSize],
    [TransportParamId.MAX_DATA, p.maxData],
    [TransportParamId.MAX_STREAM_DATA, p.maxStreamData],
    [TransportParamId.MAX_STREAMS, p.maxStreams],
    [TransportParamId.IDLE_TIMEOUT_MS, p.idleTimeoutMs],
    [TransportParamId.MAX_ACK_DELAY_US, p.maxAckDelayUs],
  ];
}

export function handshakeFrameSize(p: TransportParams): number {
  let body = 0;
  for (const [id, v] of paramEntries(p)) body += varintSize(id) + varintSize(varintSize(v)) + varintSize(v);
  return 2 + varintSize(body) + body;
}

/** HANDSHAKE: kind byte, then a length-prefixed list of (param id, value length, value). */
export function writeHandshake(buf: Uint8Array, pos: number, kind: number, p: TransportParams): number {
  buf[pos] = FrameType.HANDSHAKE;
  buf[pos + 1] = kind;
  let body = 0;
  const entries = paramEntries(p);
  for (const [id, v] of entries) body += varintSize(id) + varintSize(varintSize(v)) + varintSize(v);
  pos = writeVarint(buf, pos + 2, body);
  for (const [id, v] of entries) {
    pos = writeVarint(buf, pos, id);
    pos = writeVarint(buf, pos, varintSize(v));
    pos = writeVarint(buf, pos, v);
  }
  return pos;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Truncates the reason to MAX_REASON_BYTES on a character boundary. */
export function encodeReason(reason: string): Uint8Array {
  let bytes = textEncoder.encode(reason);
  while (bytes.length > MAX_REASON_BYTES) {
    reason = reason.slice(0, Math.floor(reason.length * 0.9));
    bytes = textEncoder.encode(reason);
  }
  return bytes;
}

export function closeFrameSize(code: number, reason: Uint8Array): number {
  return 1 + varintSize(code) + varintSize(reason.length) + reason.length;
}

export function writeClose(buf: Uint8Array, pos: number, code: number, reason: Uint8Array): number {
  buf[pos] = FrameType.CLOSE;
  pos = writeVarint(buf, pos + 1, code);
  pos = writeVarint(buf, pos, reason.length);
  buf.set(reason, pos);
  return pos + reason.length;
}

/** Encodes one frame (convenience for tests and tools; the connection writes frames in place). */
export function encodeFrame(f: Frame): Uint8Array {
  const buf = new Uint8Array(frameMaxSize(f));
  let end: number;
  switch (f.type) {
    case 'padding':
      end = writePadding(buf, 0, f.length);
      break;
    case 'ping':
      end = writePing(buf, 0);
      break;
    case 'ack': {
      // Convert inclusive descending pairs to ascending half-open arrays.
      const starts: number[] = [];
      const ends: number[] = [];
      for (let i = f.ranges.length - 2; i >= 0; i -= 2) {
        starts.push(f.ranges[i + 1]!);
        ends.push(f.ranges[i]! + 1);
      }
      end = writeAck(buf, 0, starts, ends, starts.length, f.ackDelayUs, MAX_ACK_RANGES, buf.length);
      break;
    }
    case 'reset-stream':
      end = writeResetStream(buf, 0, f.streamId, f.code, f.finalSize);
      break;
    case 'max-data':
      end = writeMaxData(buf, 0, f.max);
      break;
    case 'max-stream-data':
      end = writeMaxStreamData(buf, 0, f.streamId, f.max);
      break;
    case 'max-streams':
      end = writeMaxStreams(buf, 0, f.max);
      break;
    case 'handshake':
      end = writeHandshake(buf, 0, f.kind, f.params);
      break;
    case 'close':
      end = writeClose(buf, 0, f.code, encodeReason(f.reason));
      break;
    case 'stream':
      end = writeStream(buf, 0, f.streamId, f.offset, f.data, f.fin);
      break;
  }
  return buf.subarray(0, end);
}

function frameMaxSize(f: Frame): number {
  switch (f.type) {
    case 'padding':
      return f.length;
    case 'ack':
      return ackFrameMaxSize(f.ranges.length / 2);
    case 'handshake':
      return handshakeFrameSize(f.params);
    case 'close':
      return 1 + 8 + 8 + MAX_REASON_BYTES * 4;
    case 'stream':
      return 1 + 24 + f.data.length;
    default:
      return 32;
  }
}

// ---------------------------------------------------------------- decoders

/** Decodes the frame at r.pos; advances r. Never throws. */
export function readFrame(r: Reader): Frame | FrameError {
  const type = r.u8();
  if (r.failed) return fail('truncated', r);
  switch (type) {
    case FrameType.PADDING: {
      // A run of zero bytes is one padding frame.
      const buf = r.buf;
      let p = r.pos;
      while (p < r.end && buf[p] === 0) p++;
      const length = p - r.pos + 1;
      r.pos = p;
      return { type: 'padding', length };
    }
    case FrameType.PING:
      return { type: 'ping' };
    case FrameType.ACK:
      return readAck(r);
    case FrameType.RESET_STREAM: {
      const streamId = r.varint();
      const code = r.varint();
      const finalSize = r.varint();
      if (r.failed) return fail('truncated', r);
      if (streamId > MAX_STREAM_ID) return fail('bad-stream-id', r);
      return { type: 'reset-stream', streamId, code, finalSize };
    }
    case FrameType.MAX_DATA: {
      const max = r.varint();
      if (r.failed) return fail('truncated', r);
      return { type: 'max-data', max };
    }
    case FrameType.MAX_STREAM_DATA: {
      const streamId = r.varint();
      const max = r.varint();
      if (r.failed) return fail('truncated', r);
      if (streamId > MAX_STREAM_ID) return fail('bad-stream-id', r);
      return { type: 'max-stream-data', streamId, max };
    }
    case FrameType.MAX_STREAMS: {
      const max = r.varint();
      if (r.failed) return fail('truncated', r);
      if (max > MAX_STREAM_ID) return fail('bad-stream-id', r);
      return { type: 'max-streams', max };
    }
    case FrameType.HANDSHAKE:
      return readHandshake(r);
    case FrameType.CLOSE: {
      const code = r.varint();
      const len = r.varint();
      if (r.failed) return fail('truncated', r);
      if (len > MAX_REASON_BYTES) return fail('bad-reason', r);
      const bytes = r.bytes(len);
      if (bytes === null) return fail('truncated', r);
      let reason: string;
      try {
        reason = textDecoder.decode(bytes);
      } catch {
        return fail('bad-reason', r);
      }
      return { type: 'close', code, reason };
    }
    case FrameType.STREAM:
    case FrameType.STREAM_FIN: {
      const streamId = r.varint();
      const offset = r.varint();
      const len = r.varint();
      if (r.failed) return fail('truncated', r);
      if (streamId > MAX_STREAM_ID) return fail('bad-stream-id', r);
      if (offset + len > MAX_VARINT) return fail('bad-offset', r);
      const data = r.bytes(len);
      if (data === null) return fail('truncated', r);
      return { type: 'stream', streamId, offset, fin: type === FrameType.STREAM_FIN, data };
    }
    default:
      return { error: 'unknown-frame', offset: r.pos - 1 };
  }
}

function readAck(r: Reader): Frame | FrameError {
  const largest = r.varint();
  const ackDelayUs = r.varint();
  const extra = r.varint();
  const firstLen = r.varint();
  if (r.failed) return fail('truncated', r);
  if (extra >= MAX_ACK_RANGES) return fail('too-many-ranges', r);
  // Each further range takes at least two bytes: reject before looping on a hostile count.
  if (extra * 2 > r.remaining()) return fail('truncated', r);
  if (firstLen > largest) return fail('bad-ack', r);
  const ranges: number[] = [largest, largest - firstLen];
  let low = largest - firstLen;
  for (let i = 0; i < extra; i++) {
    const gap = r.varint();
    const len = r.varint();
    if (r.failed) return fail('truncated', r);
    const high = low - gap - 2;
    if (high < 0 || len > high) return fail('bad-ack', r);
    low = high - len;
    ranges.push(high, low);
  }
  return { type: 'ack', ackDelayUs, ranges };
}

function readHandshake(r: Reader): Frame | FrameError {
  const kind = r.u8();
  const bodyLen = r.varint();
  if (r.failed) return fail('truncated', r);
  if (kind !== HandshakeKind.INIT && kind !== HandshakeKind.ACCEPT) return fail('bad-handshake', r);
  if (bodyLen > r.remaining()) return fail('truncated', r);
  const end = r.pos + bodyLen;
  const values: number[] = [-1, -1, -1, -1, -1, -1, -1];
  const pr = new Reader(r.buf, r.pos, end);
  while (pr.pos < end) {
    const id = pr.varint();
    const len = pr.varint();
    if (pr.failed) return fail('truncated', pr);
    if (len > pr.remaining()) return fail('truncated', pr);
    if (id >= 1 && id <= 6) {
      const vStart = pr.pos;
      const v = pr.varint();
      if (pr.failed || pr.pos - vStart !== len) return fail('bad-handshake', pr);
      if (values[id] !== -1) return fail('bad-handshake', pr); // duplicate parameter
      values[id] = v;
    } else {
      pr.pos += len; // unknown parameter: skipped, so new ones can be added compatibly
    }
  }
  r.pos = end;
  const p: TransportParams = {
    maxPacketSize: values[TransportParamId.MAX_PACKET_SIZE]!,
    maxData: values[TransportParamId.MAX_DATA]!,
    maxStreamData: values[TransportParamId.MAX_STREAM_DATA]!,
    maxStreams: values[TransportParamId.MAX_STREAMS]!,
    idleTimeoutMs: values[TransportParamId.IDLE_TIMEOUT_MS]!,
    maxAckDelayUs: values[TransportParamId.MAX_ACK_DELAY_US]!,
  };
  if (
    p.maxPacketSize < MIN_PACKET_SIZE ||
    p.maxPacketSize > 65527 ||
    p.maxData < 0 ||
    p.maxStreamData < 0 ||
    p.maxStreams < 0 ||
    p.maxStreams > MAX_STREAM_ID ||
    p.idleTimeoutMs < 0 ||
    p.maxAckDelayUs < 0 ||
    p.maxAckDelayUs > 1_000_000
  ) {
    return fail('bad-handshake', r);
  }
  return { type: 'handshake', kind, params: p };
}

/** Decodes all frames of a packet payload; the first error rejects the whole packet. */
export function decodeFrames(buf: Uint8Array, start = 0, end = buf.length): Frame[] | FrameError {
  const r = new Reader(buf, start, end);
  const frames: Frame[] = [];
  while (r.pos < r.end) {
    const f = readFrame(r);
    if ('error' in f) return f;
    frames.push(f);
  }
  return frames;
}

export function isFrameError(x: Frame | FrameError): x is FrameError {
  return 'error' in x;
}
