// Send half of a stream: the written-but-unacknowledged bytes (as the application's own chunks,
// not copied), the ranges to retransmit (data is retransmitted, never packets), and the peer's
// flow-control credit.

import { RangeSet } from '../range-set.ts';

export class SendStream {
  /**
   * Bytes [chunkStart[head], writeOffset) as written: chunk i holds [chunkStart[i],
   * chunkStart[i] + chunks[i].length). Chunks wholly below ackedOffset are dropped. Kept by
   * reference: copying every byte into a ring first cost a copy per byte and, while the ring
   * grew, the copies of the doublings (bench/results/datapath-2026-12-05.md).
   */
  private chunks: Uint8Array[] = [];
  private chunkStart: number[] = [];
  private head = 0;
  /** Index of the chunk copyOut last read from: packets read the stream in order. */
  private cursor = 0;
  /** Every byte below is acknowledged and freed. */
  ackedOffset = 0;
  /** Bytes accepted from the application. */
  writeOffset = 0;
  /** Next never-sent byte; everything below was sent at least once. */
  sentOffset = 0;
  /** Peer's credit for this stream (absolute offset). */
  maxData: number;
  /** Final size once finish() was called, else -1. */
  finOffset = -1;
  finSent = false;
  finAcked = false;
  private finLost = false;
  /** Reset locally or by the peer: nothing more is sent except RESET_STREAM. */
  reset = false;
  /** write() refused bytes: the application waits for 'stream-writable'. */
  writeBlocked = false;
  private readonly acked = new RangeSet();
  private readonly lost = new RangeSet();
  private readonly bufferLimit: number;

  // Result of nextChunk().
  chunkOffset = 0;
  chunkLength = 0;
  chunkFin = false;
  chunkIsNew = false;

  constructor(maxData: number, bufferLimit: number) {
    this.maxData = maxData;
    this.bufferLimit = bufferLimit;
  }

  bufferedBytes(): number {
    return this.writeOffset - this.ackedOffset;
  }

  /**
   * Accepts up to the buffer limit; returns bytes accepted. Keeps a reference to what it
   * accepts (no copy): the caller must leave those bytes unchanged.
   */
  write(data: Uint8Array): number {
    if (this.finOffset >= 0 || this.reset) return 0;
    const room = this.bufferLimit - (this.writeOffset - this.ackedOffset);
    const n = Math.min(room, data.length);
    if (n < data.length) this.writeBlocked = true;
    if (n <= 0) return 0;
    this.chunks.push(n === data.length ? data : data.subarray(0, n));
    this.chunkStart.push(this.writeOffset);
    this.writeOffset += n;
    return n;
  }

  finish(): void {
    if (this.finOffset < 0 && !this.reset) this.finOffset = this.writeOffset;
  }

  /** Anything to send, given the association's remaining credit for new bytes. */
  hasSendable(connCredit: number): boolean {
    if (this.reset) return false;
    if (!this.lost.isEmpty() || this.finLost) return true;
    if (this.sentOffset < this.writeOffset && this.sentOffset < this.maxData && connCredit > 0) return true;
    return this.finOffset >= 0 && !this.finSent && this.sentOffset === this.finOffset;
  }

  /** Only new data remains, and it is blocked by the association's credit. */
  blockedOnlyByConnection(): boolean {
    return this.lost.isEmpty() && !this.finLost && this.sentOffset < this.writeOffset && this.sentOffset < this.maxData;
  }

  /**
   * Picks the next chunk (lost ranges first, then a lone lost FIN, then new data) of at most
   * `maxLength` bytes and marks it sent. Fills chunk*; returns false when nothing fits.
   */
  nextChunk(maxLength: number, connCredit: number): boolean {
    if (this.reset) return false;
    const lost = this.lost;
    if (!lost.isEmpty()) {
      const start = lost.starts[0]!;
      const len = Math.min(lost.ends[0]! - start, maxLength);
      if (len <= 0) return false;
      lost.remove(start, start + len);
      this.chunkOffset = start;
      this.chunkLength = len;
      this.chunkFin = this.finLost && start + len === this.finOffset;
      if (this.chunkFin) this.finLost = false;
      this.chunkIsNew = false;
      return true;
    }
    if (this.finLost) {
      this.finLost = false;
      this.chunkOffset = this.finOffset;
      this.chunkLength = 0;
      this.chunkFin = true;
      this.chunkIsNew = false;
      return true;
    }
    const len = Math.min(maxLength, this.writeOffset - this.sentOffset, this.maxData - this.sentOffset, connCredit);
    const fin = this.finOffset >= 0 && !this.finSent && this.sentOffset + Math.max(len, 0) === this.finOffset;
    if (len <= 0 && !fin) return false;
    this.chunkOffset = this.sentOffset;
    this.chunkLength = Math.max(len, 0);
    this.chunkFin = fin;
    this.chunkIsNew = true;
    this.sentOffset += this.chunkLength;
    if (fin) this.finSent = true;
    return true;
  }

  /** Copies stream bytes [offset, offset + length) into `dst` at `pos`. */
  copyOut(offset: number, length: number, dst: Uint8Array, pos: number): void {
    let i = this.chunkAt(offset);
    while (length > 0) {
      const c = this.chunks[i]!;
      const from = offset - this.chunkStart[i]!;
      const take = Math.min(length, c.length - from);
      dst.set(from === 0 && take === c.length ? c : c.subarray(from, from + take), pos);
      pos += take;
      offset += take;
      length -= take;
      if (length > 0) i++;
    }
    this.cursor = i;
  }

  /** The index of the chunk holding `offset` (>= ackedOffset): from the cursor when in order, else by bisection. */
  private chunkAt(offset: number): number {
    const starts = this.chunkStart;
    let i = this.cursor;
    if (i >= this.head && i < starts.length && starts[i]! <= offset) {
      while (i + 1 < starts.length && starts[i + 1]! <= offset) i++;
      return i;
    }
    let lo = this.head;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Drops chunks wholly below ackedOffset. */
  private release(): void {
    const starts = this.chunkStart;
    const chunks = this.chunks;
    let h = this.head;
    while (h < chunks.length && starts[h]! + chunks[h]!.length <= this.ackedOffset) chunks[h++] = EMPTY;
    this.head = h;
    if (h === chunks.length) {
      chunks.length = 0;
      starts.length = 0;
      this.head = 0;
      this.cursor = 0;
    } else if (h > 64 && h * 2 > chunks.length) {
      chunks.splice(0, h);
      starts.splice(0, h);
      this.head = 0;
      this.cursor = Math.max(0, this.cursor - h);
    }
  }

  /** Returns true when buffer space was freed. */
  onAcked(offset: number, length: number, fin: boolean): boolean {
    if (fin) this.finAcked = true;
    const end = offset + length;
    if (!this.lost.isEmpty()) this.lost.remove(offset, end);
    if (end <= this.ackedOffset) return false;
    if (offset > this.ackedOffset) {
      this.acked.insert(offset, end);
      return false;
    }
    this.ackedOffset = end;
    const acked = this.acked;
    while (!acked.isEmpty() && acked.starts[0]! <= this.ackedOffset) {
      if (acked.ends[0]! > this.ackedOffset) this.ackedOffset = acked.ends[0]!;
      acked.removeBelow(acked.ends[0]!);
    }
    this.release();
    return true;
  }

  onLost(offset: number, length: number, fin: boolean): void {
    if (this.reset) return;
    if (fin && !this.finAcked) this.finLost = true;
    const start = Math.max(offset, this.ackedOffset);
    const end = offset + length;
    if (end <= start) return;
    this.lost.insert(start, end);
    const acked = this.acked;
    for (let i = 0; i < acked.count; i++) {
      if (acked.starts[i]! >= end) break;
      if (acked.ends[i]! > start) this.lost.remove(acked.starts[i]!, acked.ends[i]!);
    }
  }

  /** FIN sent and every byte up to it acknowledged. */
  isComplete(): boolean {
    return this.finAcked && this.ackedOffset >= this.finOffset;
  }

  /** Drops buffered data (reset). */
  abandon(): void {
    this.reset = true;
    this.chunks = [];
    this.chunkStart = [];
    this.head = 0;
    this.cursor = 0;
    this.lost.clear();
    this.acked.clear();
    this.finLost = false;
  }
}

const EMPTY = new Uint8Array(0);
