// Send half of a stream: a bounded buffer of written-but-unacknowledged bytes, the ranges to
// retransmit (data is retransmitted, never packets), and the peer's flow-control credit.
// A copy, not references to the application's buffers: a gateway's TCP reads are 64 KiB
// buffers each, and holding ~250 of them until acknowledged (a 16 MiB send buffer) made them
// outlive V8's young generation; their external memory then drove a full mark-compact every few
// MiB, ~20% of the sending gateway's CPU in the lab (bench/results/datapath-2026-12-05.md).
// The copy lives in pooled chunks (chunk-pool.ts), each given back as soon as it is acknowledged.

import { RangeSet } from '../range-set.ts';
import { CHUNK_BYTES, giveChunk, takeChunk } from './chunk-pool.ts';

// See SendStream.#writableAgain.
const WRITABLE_AGAIN_FRACTION = 1 / 4;

/**
 * Where the send half stands (quinn's SendState). A new object only on a transition, which
 * happens a few times in a stream's life, never per packet. At most one packet carries the FIN
 * at a time (it is re-sent only once its packet is declared lost), so one state covers it.
 */
export type SendState =
  /** The application may still write. */
  | { readonly kind: 'open' }
  /** finish() was called; the FIN goes out with the byte at finalSize. */
  | { readonly kind: 'fin-queued'; readonly finalSize: number }
  | { readonly kind: 'fin-sent'; readonly finalSize: number }
  /** The FIN's packet was declared lost: it is sent again. */
  | { readonly kind: 'fin-lost'; readonly finalSize: number }
  | { readonly kind: 'fin-acked'; readonly finalSize: number }
  /** Reset with data unacknowledged: RESET_STREAM (code, final size) is owed until acknowledged. */
  | { readonly kind: 'reset-sent'; readonly finalSize: number; readonly code: number }
  /** Reset and nothing more owed to the peer: RESET_STREAM acknowledged, or every byte and the FIN were. */
  | { readonly kind: 'reset-acked' };

const OPEN: SendState = { kind: 'open' };
const RESET_ACKED: SendState = { kind: 'reset-acked' };

export class SendStream {
  /** Bytes [ackedOffset, writeOffset) live in chunks: chunk i holds [firstOffset + i * CHUNK_BYTES, ...). */
  readonly #chunks: Uint8Array[] = [];
  /** Where #chunks[0] starts: at most ackedOffset (whole chunks below it are given back). */
  #firstOffset = 0;
  #ackedOffset = 0;
  #writeOffset = 0;
  #sentOffset = 0;
  #maxData: number;
  #state: SendState = OPEN;
  #writeBlocked = false;
  readonly #acked = new RangeSet();
  readonly #lost = new RangeSet();
  readonly #bufferLimit: number;

  // Result of nextChunk().
  #chunkOffset = 0;
  #chunkLength = 0;
  #chunkFin = false;
  #chunkIsNew = false;

  constructor(maxData: number, bufferLimit: number) {
    this.#maxData = maxData;
    this.#bufferLimit = bufferLimit;
  }

  get state(): SendState {
    return this.#state;
  }

  /** Every byte below is acknowledged and freed. */
  get ackedOffset(): number {
    return this.#ackedOffset;
  }

  /** Bytes accepted from the application. */
  get writeOffset(): number {
    return this.#writeOffset;
  }

  /** Peer's credit for this stream (absolute offset). */
  get maxData(): number {
    return this.#maxData;
  }

  /** write() refused bytes: the application waits for 'stream-writable'. */
  get writeBlocked(): boolean {
    return this.#writeBlocked;
  }

  get isReset(): boolean {
    const kind = this.#state.kind;
    return kind === 'reset-sent' || kind === 'reset-acked';
  }

  // The chunk picked by the last nextChunk().
  get chunkOffset(): number {
    return this.#chunkOffset;
  }
  get chunkLength(): number {
    return this.#chunkLength;
  }
  get chunkFin(): boolean {
    return this.#chunkFin;
  }
  /** Never sent before (counts against the association's credit), not a retransmission. */
  get chunkIsNew(): boolean {
    return this.#chunkIsNew;
  }

  bufferedBytes(): number {
    return this.#writeOffset - this.#ackedOffset;
  }

  /** Written and never sent. */
  unsentBytes(): number {
    return this.#writeOffset - this.#sentOffset;
  }

  /** Bytes of memory the chunks hold (at least bufferedBytes(), at most two chunks more). */
  allocatedBytes(): number {
    return this.#chunks.length * CHUNK_BYTES;
  }

  /** The peer's MAX_STREAM_DATA; true when it raised the credit. */
  raiseMaxData(max: number): boolean {
    if (max <= this.#maxData) return false;
    this.#maxData = max;
    return true;
  }

  /**
   * A blocked writer is told to write again only once this much of the buffer is free: woken
   * for every ACK's few freed packets, a gateway toggled its TCP socket (and woke the
   * application behind it) once per ACK, reading one 64 KiB chunk each time.
   */
  get #writableAgain(): boolean {
    return this.#bufferLimit - this.bufferedBytes() >= this.#bufferLimit * WRITABLE_AGAIN_FRACTION;
  }

  /** After an ACK freed buffer space: true once, when a blocked writer should write again. */
  wakeWriter(): boolean {
    if (!this.#writeBlocked || this.isReset || !this.#writableAgain) return false;
    this.#writeBlocked = false;
    return true;
  }

  /** Copies up to the buffer limit; returns bytes accepted. */
  write(data: Uint8Array): number {
    if (this.#state.kind !== 'open') return 0;
    const room = this.#bufferLimit - (this.#writeOffset - this.#ackedOffset);
    const n = Math.min(room, data.length);
    if (n < data.length) this.#writeBlocked = true;
    if (n <= 0) return 0;
    const chunks = this.#chunks;
    for (let done = 0; done < n; ) {
      const rel = this.#writeOffset - this.#firstOffset;
      const i = Math.floor(rel / CHUNK_BYTES);
      const at = rel - i * CHUNK_BYTES;
      if (i === chunks.length) chunks.push(takeChunk());
      const m = Math.min(n - done, CHUNK_BYTES - at);
      chunks[i]!.set(m === data.length ? data : data.subarray(done, done + m), at);
      done += m;
      this.#writeOffset += m;
    }
    return n;
  }

  /** Gives back the chunks wholly below ackedOffset: all of them once everything is acknowledged. */
  #releaseAcked(): void {
    const chunks = this.#chunks;
    if (this.#ackedOffset >= this.#writeOffset) {
      for (const c of chunks) giveChunk(c);
      chunks.length = 0;
      this.#firstOffset = this.#writeOffset;
      return;
    }
    while (this.#ackedOffset - this.#firstOffset >= CHUNK_BYTES) {
      giveChunk(chunks.shift()!);
      this.#firstOffset += CHUNK_BYTES;
    }
  }

  finish(): void {
    if (this.#state.kind === 'open') this.#state = { kind: 'fin-queued', finalSize: this.#writeOffset };
  }

  /** Anything to send, given the association's remaining credit for new bytes. */
  hasSendable(connCredit: number): boolean {
    const state = this.#state;
    if (state.kind === 'reset-sent' || state.kind === 'reset-acked') return false;
    if (!this.#lost.isEmpty() || state.kind === 'fin-lost') return true;
    if (this.#sentOffset < this.#writeOffset && this.#sentOffset < this.#maxData && connCredit > 0) return true;
    return state.kind === 'fin-queued' && this.#sentOffset === state.finalSize;
  }

  /** Only new data remains, and it is blocked by the association's credit. */
  blockedOnlyByConnection(): boolean {
    return (
      this.#lost.isEmpty() && this.#state.kind !== 'fin-lost' && this.#sentOffset < this.#writeOffset && this.#sentOffset < this.#maxData
    );
  }

  /**
   * Picks the next chunk (lost ranges first, then a lone lost FIN, then new data) of at most
   * `maxLength` bytes and marks it sent. Fills chunk*; returns false when nothing fits.
   */
  nextChunk(maxLength: number, connCredit: number): boolean {
    const state = this.#state;
    if (state.kind === 'reset-sent' || state.kind === 'reset-acked') return false;
    const lost = this.#lost;
    if (!lost.isEmpty()) {
      const start = lost.starts[0]!;
      const len = Math.min(lost.ends[0]! - start, maxLength);
      if (len <= 0) return false;
      lost.remove(start, start + len);
      this.#chunkOffset = start;
      this.#chunkLength = len;
      // A lost FIN rides with the lost range it ends.
      const fin = state.kind === 'fin-lost' && start + len === state.finalSize;
      if (fin) this.#state = { kind: 'fin-sent', finalSize: state.finalSize };
      this.#chunkFin = fin;
      this.#chunkIsNew = false;
      return true;
    }
    if (state.kind === 'fin-lost') {
      this.#state = { kind: 'fin-sent', finalSize: state.finalSize };
      this.#chunkOffset = state.finalSize;
      this.#chunkLength = 0;
      this.#chunkFin = true;
      this.#chunkIsNew = false;
      return true;
    }
    const len = Math.min(maxLength, this.#writeOffset - this.#sentOffset, this.#maxData - this.#sentOffset, connCredit);
    const fin = state.kind === 'fin-queued' && this.#sentOffset + Math.max(len, 0) === state.finalSize;
    if (len <= 0 && !fin) return false;
    this.#chunkOffset = this.#sentOffset;
    this.#chunkLength = Math.max(len, 0);
    this.#chunkFin = fin;
    this.#chunkIsNew = true;
    this.#sentOffset += this.#chunkLength;
    if (fin) this.#state = { kind: 'fin-sent', finalSize: state.finalSize };
    return true;
  }

  /** Copies stream bytes [offset, offset + length) into `dst` at `pos`. */
  copyOut(offset: number, length: number, dst: Uint8Array, pos: number): void {
    const chunks = this.#chunks;
    let rel = offset - this.#firstOffset;
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
    const state = this.#state;
    if (fin && state.kind === 'fin-sent') this.#state = { kind: 'fin-acked', finalSize: state.finalSize };
    const end = offset + length;
    if (!this.#lost.isEmpty()) this.#lost.remove(offset, end);
    if (end <= this.#ackedOffset) return false;
    if (offset > this.#ackedOffset) {
      this.#acked.insert(offset, end);
      return false;
    }
    this.#ackedOffset = end;
    const acked = this.#acked;
    while (!acked.isEmpty() && acked.starts[0]! <= this.#ackedOffset) {
      if (acked.ends[0]! > this.#ackedOffset) this.#ackedOffset = acked.ends[0]!;
      acked.removeBelow(acked.ends[0]!);
    }
    // Acknowledged chunks go back to the pool at once: another stream (or this one's next write)
    // reuses them without a fresh allocation, so there is nothing to keep for a busy sender.
    this.#releaseAcked();
    return true;
  }

  onLost(offset: number, length: number, fin: boolean): void {
    const state = this.#state;
    if (state.kind === 'reset-sent' || state.kind === 'reset-acked') return;
    if (fin && state.kind === 'fin-sent') this.#state = { kind: 'fin-lost', finalSize: state.finalSize };
    const start = Math.max(offset, this.#ackedOffset);
    const end = offset + length;
    if (end <= start) return;
    this.#lost.insert(start, end);
    const acked = this.#acked;
    for (let i = 0; i < acked.count; i++) {
      if (acked.starts[i]! >= end) break;
      if (acked.ends[i]! > start) this.#lost.remove(acked.starts[i]!, acked.ends[i]!);
    }
  }

  /** FIN sent and every byte up to it acknowledged. */
  isComplete(): boolean {
    const state = this.#state;
    return state.kind === 'fin-acked' && this.#ackedOffset >= state.finalSize;
  }

  /**
   * Stops sending (a reset by either side) and drops what is buffered. Returns true when the
   * peer must be told by a RESET_STREAM with `code` (it does not have everything yet).
   */
  reset(code: number): boolean {
    if (this.isComplete()) {
      this.#state = RESET_ACKED;
      return false;
    }
    this.#state = { kind: 'reset-sent', finalSize: this.#sentOffset, code };
    for (const c of this.#chunks) giveChunk(c);
    this.#chunks.length = 0;
    this.#firstOffset = this.#writeOffset;
    this.#lost.clear();
    this.#acked.clear();
    return true;
  }

  /** The peer acknowledged our RESET_STREAM. */
  onResetAcked(): void {
    if (this.#state.kind === 'reset-sent') this.#state = RESET_ACKED;
  }
}
