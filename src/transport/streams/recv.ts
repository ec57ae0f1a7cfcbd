// Receive half of a stream: reassembles in order, holds at most the advertised window
// (the peer cannot send beyond the credit we gave), returns credit as the application reads.

import { RangeSet } from '../range-set.ts';
import { giveRing, takeRing } from './chunk-pool.ts';

export type RecvError = 'flow-control' | 'final-size';

// Credit is re-advertised once an eighth of the window has been consumed, so the sender's
// usable window stays above 7/8 of it (refreshing at half a window halved it on lossy
// paths, where a hole holds the read offset back for a few RTTs: measured 76% vs 83% goodput
// at 1 Gbit/s, 25 ms, 3% loss with a 16 MiB window). One small frame per window/8 bytes.
export const CREDIT_REFRESH_FRACTION = 1 / 8;

// Received bytes are copied into a ring per stream as they arrive, so the datagram they came in
// is free at once (the security layer decrypts every receive batch into the same memory), and
// in-order bytes are read as large contiguous views instead of one view per datagram. A reader
// that keeps views past the call (a socket write in flight) says when it is done with release();
// credit and the ring's room follow what is released. Rings come from, and go back to, a pool
// shared by all streams (chunk-pool.ts) whenever no view of them can be outstanding.

const MIN_RING_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Where the receive half stands (quinn's RecvState). A new object only on a transition (the
 * FIN, the end of reading, a reset), never per packet.
 */
export type RecvState =
  /** The final size is not known yet. */
  | { readonly kind: 'receiving' }
  /** The FIN arrived: nothing lies beyond finalSize. */
  | { readonly kind: 'size-known'; readonly finalSize: number }
  /** Read up to the FIN and 'stream-finished' reported: this half is done. */
  | { readonly kind: 'data-read'; readonly finalSize: number }
  /** Reset before the final size was known: late data is counted against credit, then dropped. */
  | { readonly kind: 'discarding' }
  /** Reset, and the final size is known (the peer's FIN or RESET_STREAM): this half is done. */
  | { readonly kind: 'reset'; readonly finalSize: number };

const RECEIVING: RecvState = { kind: 'receiving' };
const DISCARDING: RecvState = { kind: 'discarding' };

export class RecvStream {
  /** Bytes handed to the application (copied out by read(), or viewed by readView()). */
  #readOffset = 0;
  /** Bytes the application is done with: the ring holds [releasedOffset, highestOffset). */
  #releasedOffset = 0;
  #contiguousEnd = 0;
  #highestOffset = 0;
  /** highestOffset at the last trim(): a ring is freed only after a whole trim period unused. */
  #highestOffsetAtTrim = 0;
  #state: RecvState = RECEIVING;
  #maxData: number;
  readonly #window: number;
  /** 'stream-readable' was reported and nothing was read since (one event per batch of data). */
  #readableSignaled = false;
  #ring: Uint8Array = EMPTY;
  /** Ranges received beyond contiguousEnd (their bytes are in the ring). */
  readonly #beyond = new RangeSet();

  constructor(window: number) {
    this.#window = window;
    this.#maxData = window;
  }

  get state(): RecvState {
    return this.#state;
  }

  /** Reset by either side: data is discarded (but still counted against credit). */
  get isReset(): boolean {
    const kind = this.#state.kind;
    return kind === 'discarding' || kind === 'reset';
  }

  /** Everything below has arrived. */
  get contiguousEnd(): number {
    return this.#contiguousEnd;
  }

  /** Highest offset received (association flow-control accounting). */
  get highestOffset(): number {
    return this.#highestOffset;
  }

  /** Credit advertised to the peer (absolute offset). */
  get maxData(): number {
    return this.#maxData;
  }

  /** Received and not yet released by the application. */
  bufferedBytes(): number {
    return this.#highestOffset - this.#releasedOffset;
  }

  /** Validates a STREAM frame without applying it. */
  check(offset: number, length: number, fin: boolean): RecvError | null {
    const end = offset + length;
    if (end > this.#maxData) return 'flow-control';
    const state = this.#state;
    if (state.kind !== 'receiving' && state.kind !== 'discarding') {
      if (end > state.finalSize) return 'final-size';
      if (fin && end !== state.finalSize) return 'final-size';
    } else if (fin && end < this.#highestOffset) {
      return 'final-size';
    }
    return null;
  }

  /** Validates a RESET_STREAM final size. */
  checkFinalSize(finalSize: number): RecvError | null {
    if (finalSize > this.#maxData) return 'flow-control';
    const state = this.#state;
    if (state.kind !== 'receiving' && state.kind !== 'discarding' && finalSize !== state.finalSize) return 'final-size';
    if (finalSize < this.#highestOffset) return 'final-size';
    return null;
  }

  /** The final size is `finalSize` from now on (a FIN or RESET_STREAM; checked before). */
  #setFinalSize(finalSize: number): void {
    const state = this.#state;
    switch (state.kind) {
      case 'receiving':
        this.#state = { kind: 'size-known', finalSize };
        break;
      case 'discarding':
        this.#state = { kind: 'reset', finalSize };
        break;
      default:
        // A repeated FIN. Only a frame not checked against this stream (two in the packet that
        // opened it) can move the size; it moves as before, without leaving the state.
        if (state.finalSize !== finalSize) this.#state = { kind: state.kind, finalSize };
    }
  }

  /**
   * Applies a checked STREAM frame, copying what is new into the ring (`data` may be reused by
   * its owner once this returns). Returns how much the highest received offset grew, for
   * association-level accounting.
   */
  insert(offset: number, data: Uint8Array, fin: boolean): number {
    const end = offset + data.length;
    if (fin) this.#setFinalSize(end);
    let grew = 0;
    const stored = this.#highestOffset;
    if (end > this.#highestOffset) {
      grew = end - this.#highestOffset;
      this.#highestOffset = end;
    }
    if (this.isReset || end <= this.#contiguousEnd) return grew;
    const from = Math.max(offset, this.#contiguousEnd);
    if (from >= end) return grew; // an empty frame (a FIN alone) beyond what arrived: nothing to store
    this.#store(from, from === offset ? data : data.subarray(from - offset), stored);
    if (from === this.#contiguousEnd) {
      this.#contiguousEnd = end;
      const beyond = this.#beyond;
      while (!beyond.isEmpty() && beyond.starts[0]! <= this.#contiguousEnd) {
        if (beyond.ends[0]! > this.#contiguousEnd) this.#contiguousEnd = beyond.ends[0]!;
        beyond.removeBelow(this.#contiguousEnd);
      }
    } else {
      this.#beyond.insert(from, end);
    }
    return grew;
  }

  /** Copies `data` to its place in the ring; `stored`: the end of what the ring held before. */
  #store(offset: number, data: Uint8Array, stored: number): void {
    const needed = offset + data.length - this.#releasedOffset;
    if (needed > this.#ring.length) this.#grow(needed, stored);
    const ring = this.#ring;
    const cap = ring.length;
    const pos = offset % cap;
    const first = Math.min(data.length, cap - pos);
    ring.set(first === data.length ? data : data.subarray(0, first), pos);
    if (first < data.length) ring.set(data.subarray(first), 0);
  }

  #grow(needed: number, stored: number): void {
    let cap = Math.max(this.#ring.length * 2, MIN_RING_BYTES);
    while (cap < needed) cap *= 2;
    const next = takeRing(cap);
    const old = this.#ring;
    if (old.length > 0) {
      // Everything from the released offset up, gaps included (they are filled later).
      for (let off = this.#releasedOffset; off < stored; ) {
        const src = off % old.length;
        const run = Math.min(stored - off, old.length - src);
        const dst = off % cap;
        const fit = Math.min(run, cap - dst);
        next.set(old.subarray(src, src + fit), dst);
        off += fit;
      }
    }
    this.#ring = next;
    // No view of the old ring is outstanding once everything read has been released.
    if (this.#releasedOffset === this.#readOffset) giveRing(old);
  }

  /** Gives the ring back to the pool (all of it released: no view of it is outstanding). */
  #dropRing(): void {
    giveRing(this.#ring);
    this.#ring = EMPTY;
  }

  hasReadable(): boolean {
    return this.#contiguousEnd > this.#readOffset;
  }

  /** FIN arrived and the application has read every byte before it. */
  isFinished(): boolean {
    const state = this.#state;
    return (state.kind === 'size-known' || state.kind === 'data-read') && this.#readOffset === state.finalSize;
  }

  /** True once per batch of readable bytes: when 'stream-readable' is to be reported. */
  signalReadable(): boolean {
    if (this.#readableSignaled || !this.hasReadable()) return false;
    this.#readableSignaled = true;
    return true;
  }

  /** True once, when everything up to the FIN has been read: 'stream-finished' is to be reported. */
  signalFinished(): boolean {
    const state = this.#state;
    if (state.kind !== 'size-known' || this.#readOffset !== state.finalSize) return false;
    this.#state = { kind: 'data-read', finalSize: state.finalSize };
    return true;
  }

  /** Up to `max` in-order bytes, copied out and released, or null when none are ready. */
  read(max: number): Uint8Array | null {
    const n = Math.min(max, this.#contiguousEnd - this.#readOffset);
    if (n <= 0) return null;
    const out = new Uint8Array(n);
    const cap = this.#ring.length;
    const pos = this.#readOffset % cap;
    const first = Math.min(n, cap - pos);
    out.set(this.#ring.subarray(pos, pos + first), 0);
    if (first < n) out.set(this.#ring.subarray(0, n - first), first);
    this.#readOffset += n;
    this.#readableSignaled = false;
    this.release(n);
    return out;
  }

  /**
   * Up to `max` in-order bytes as a view of the ring (as many as lie before its wrap; call again
   * for the rest), or null when none are ready. The view stays valid until release() covers
   * it; don't mix with read() on one stream.
   */
  readView(max: number): Uint8Array | null {
    const cap = this.#ring.length;
    if (cap === 0) return null;
    const pos = this.#readOffset % cap;
    const n = Math.min(max, this.#contiguousEnd - this.#readOffset, cap - pos);
    if (n <= 0) return null;
    this.#readOffset += n;
    this.#readableSignaled = false;
    return this.#ring.subarray(pos, pos + n);
  }

  /** The application is done with the next `n` bytes it read: their room and credit return. */
  release(n: number): void {
    this.#releasedOffset = Math.min(this.#readOffset, this.#releasedOffset + n);
    // Everything up to the FIN is released: nothing more will arrive, the ring can go now.
    const state = this.#state;
    if (state.kind !== 'receiving' && state.kind !== 'discarding' && this.#releasedOffset === state.finalSize) this.#dropRing();
  }

  /**
   * Frees the ring if it holds nothing and nothing arrived since the last call (a stream between
   * bursts keeps no memory; a busy one is not regrown and faulted in anew every period).
   */
  trim(): void {
    const idle = this.#highestOffset === this.#highestOffsetAtTrim;
    this.#highestOffsetAtTrim = this.#highestOffset;
    if (idle && this.#releasedOffset === this.#highestOffset && this.#ring.length > 0) this.#dropRing();
  }

  /** Bytes of ring memory held. */
  allocatedBytes(): number {
    return this.#ring.length;
  }

  /** Raises the credit once it runs low (see CREDIT_REFRESH_FRACTION); true when maxData is new to announce. */
  refreshCredit(): boolean {
    if (this.#state.kind !== 'receiving') return false;
    if (this.#maxData - this.#releasedOffset > this.#window * (1 - CREDIT_REFRESH_FRACTION)) return false;
    this.#maxData = this.#releasedOffset + this.#window;
    return true;
  }

  /** Reset (by either side): drops buffered data; returns how many received-but-unread bytes were dropped (credit to return). */
  abandon(): number {
    const dropped = this.#highestOffset - this.#readOffset;
    const state = this.#state;
    if (state.kind === 'receiving') this.#state = DISCARDING;
    else if (state.kind === 'size-known' || state.kind === 'data-read') this.#state = { kind: 'reset', finalSize: state.finalSize };
    this.skipToHighest();
    return dropped;
  }

  /**
   * Applies the peer's checked RESET_STREAM: everything up to `finalSize` counts as received and
   * read. Returns the bytes that count as consumed now (credit to return).
   */
  onReset(finalSize: number): number {
    const growth = Math.max(0, finalSize - this.#highestOffset);
    this.#highestOffset += growth;
    const wasReset = this.isReset;
    this.#setFinalSize(finalSize);
    if (!wasReset) return this.abandon();
    this.skipToHighest();
    return growth;
  }

  /** Everything received counts as read and released (a reset stream's late data). */
  skipToHighest(): void {
    this.#beyond.clear();
    this.#readOffset = this.#highestOffset;
    this.#releasedOffset = this.#highestOffset;
    this.#contiguousEnd = Math.max(this.#contiguousEnd, this.#highestOffset);
    this.#ring = EMPTY;
  }
}
