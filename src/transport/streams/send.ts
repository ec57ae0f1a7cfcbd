// Send half of a stream: a bounded buffer of written-but-unacknowledged bytes, the ranges to
// retransmit (data is retransmitted, never packets), and the peer's flow-control credit.
// A copy, not references to the application's buffers: a gateway's TCP reads are 64 KiB
// buffers each, and holding ~250 of them until acknowledged (a 16 MiB send buffer) made them
// outlive V8's young generation; their external memory then drove a full mark-compact every few
// MiB, ~20% of the sending gateway's CPU in the lab (bench/results/datapath-2026-12-05.md).
// The copy lives in pooled chunks (chunk-pool.ts), each given back as soon as it is acknowledged.

import { RangeSet } from '../range-set.ts';
import { CHUNK_BYTES, giveChunk, takeChunk } from './chunk-pool.ts';

// See SendStream.writableAgain.
const WRITABLE_AGAIN_FRACTION = 1 / 4;

export class SendStream {
  /** Bytes [ackedOffset, writeOffset) live in chunks: chunk i holds [firstOffset + i * CHUNK_BYTES, ...). */
  private readonly chunks: Uint8Array[] = [];
  /** Where chunks[0] starts: at most ackedOffset (whole chunks below it are given back). */
  private firstOffset = 0;
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

  /** Bytes of memory the chunks hold (at least bufferedBytes(), at most two chunks more). */
  allocatedBytes(): number {
    return this.chunks.length * CHUNK_BYTES;
  }

  /**
   * A blocked writer is told to write again only once this much of the buffer is free: woken
   * for every ACK's few freed packets, a gateway toggled its TCP socket (and woke the
   * application behind it) once per ACK, reading one 64 KiB chunk each time.
   */
  get writableAgain(): boolean {
    return this.bufferLimit - this.bufferedBytes() >= this.bufferLimit * WRITABLE_AGAIN_FRACTION;
  }

  /** Copies up to the buffer limit; returns bytes accepted. */
  write(data: Uint8Array): number {
    if (this.finOffset >= 0 || this.reset) return 0;
    const room = this.bufferLimit - (this.writeOffset - this.ackedOffset);
    const n = Math.min(room, data.length);
    if (n < data.length) this.writeBlocked = true;
    if (n <= 0) return 0;
    const chunks = this.chunks;
    for (let done = 0; done < n; ) {
      const rel = this.writeOffset - this.firstOffset;
      const i = Math.floor(rel / CHUNK_BYTES);
      const at = rel - i * CHUNK_BYTES;
      if (i === chunks.length) chunks.push(takeChunk());
      const m = Math.min(n - done, CHUNK_BYTES - at);
      chunks[i]!.set(m === data.length ? data : data.subarray(done, done + m), at);
      done += m;
      this.writeOffset += m;
    }
    return n;
  }

  /** Gives back the chunks wholly below ackedOffset: all of them once everything is acknowledged. */
  private releaseAcked(): void {
    const chunks = this.chunks;
    if (this.ackedOffset >= this.writeOffset) {
      for (const c of chunks) giveChunk(c);
      chunks.length = 0;
      this.firstOffset = this.writeOffset;
      return;
    }
    while (this.ackedOffset - this.firstOffset >= CHUNK_BYTES) {
      giveChunk(chunks.shift()!);
      this.firstOffset += CHUNK_BYTES;
    }
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
    const chunks = this.chunks;
    let rel = offset - this.firstOffset;
    while (length > 0) {
      const i = Math.floor(rel / CHUNK_BYTES);
      const at = rel - i * CHUNK_BYTES;
      const m = Math.min(length, CHUNK_BYTES - at);
      dst.set(chunks[i]!.subarray(at, at + m), pos);
      pos += m;
      rel += m;
      length -= m;
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
    // Acknowledged chunks go back to the pool at once: another stream (or this one's next write)
    // reuses them without a fresh allocation, so there is nothing to keep for a busy sender.
    this.releaseAcked();
    return true;
  }

  /** Nothing to do: chunks go back as they are acknowledged (Connection.trimBuffers calls it). */
  trim(): void {}

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
    for (const c of this.chunks) giveChunk(c);
    this.chunks.length = 0;
    this.firstOffset = this.writeOffset;
    this.lost.clear();
    this.acked.clear();
    this.finLost = false;
  }
}
