// The workload wire format. Client to sink: segments, each a 12-byte header (magic, u64
// length) and that many payload bytes; a zero-length segment ends the stream. Sink to
// client: JSON lines reporting progress, each segment's arrival and the final count + hash.
// Framing (not TCP half-close) marks the end, because some tunnels (kcptun) close both
// directions on the first FIN and the sink's answer must still get back.

export const SEGMENT_MAGIC = 0x4c485753; // 'LHWS'
export const SEGMENT_HEADER_SIZE = 12;
/** How often the sink reports bytes received (progress bars, capped runs). */
export const RX_REPORT_INTERVAL_MS = 100;

export function segmentHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(SEGMENT_HEADER_SIZE);
  header.writeUInt32BE(SEGMENT_MAGIC, 0);
  header.writeBigUInt64BE(BigInt(length), 4);
  return header;
}

export type SinkMessage =
  | { t: 'rx'; bytes: number }
  | { t: 'seg'; index: number; bytes: number }
  | { t: 'done'; bytes: number; sha256: string }
  | { t: 'error'; reason: string };

export function encodeSinkMessage(m: SinkMessage): string {
  return `${JSON.stringify(m)}\n`;
}

export function decodeSinkMessage(line: string): SinkMessage | { t: 'invalid'; line: string } {
  try {
    const m = JSON.parse(line) as { t?: unknown };
    if (m && (m.t === 'rx' || m.t === 'seg' || m.t === 'done' || m.t === 'error')) return m as SinkMessage;
  } catch {
    // fall through: reported as invalid below
  }
  return { t: 'invalid', line };
}

/** Incremental parser of the segment stream (sink side). */
export class SegmentParser {
  #header = Buffer.alloc(SEGMENT_HEADER_SIZE);
  #headerFill = 0;
  #left = -1; // payload bytes left in the current segment; -1 while reading a header
  segments = 0;
  ended = false;
  error: string | null = null;

  /**
   * Feed bytes; calls onPayload for payload slices and onSegmentEnd at each segment end.
   * Stops at the end marker or at a framing error (this.error).
   */
  push(data: Buffer, onPayload: (slice: Buffer) => void, onSegmentEnd: (index: number) => void): void {
    let at = 0;
    while (at < data.length && !this.ended && this.error === null) {
      if (this.#left < 0) {
        const take = Math.min(SEGMENT_HEADER_SIZE - this.#headerFill, data.length - at);
        data.copy(this.#header, this.#headerFill, at, at + take);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < SEGMENT_HEADER_SIZE) return;
        this.#headerFill = 0;
        if (this.#header.readUInt32BE(0) !== SEGMENT_MAGIC) {
          this.error = 'bad segment magic';
          return;
        }
        const length = this.#header.readBigUInt64BE(4);
        if (length > BigInt(Number.MAX_SAFE_INTEGER)) {
          this.error = 'segment too long';
          return;
        }
        this.#left = Number(length);
        if (this.#left === 0) {
          this.ended = true;
          return;
        }
      }
      const take = Math.min(this.#left, data.length - at);
      onPayload(at === 0 && take === data.length ? data : data.subarray(at, at + take));
      at += take;
      this.#left -= take;
      if (this.#left === 0) {
        this.#left = -1;
        onSegmentEnd(this.segments++);
      }
    }
  }
}
