// Packets sent and not yet acknowledged or declared lost. Packet numbers are consecutive,
// so records live in a deque indexed by packet number (no Map); records are pooled so the
// send path does not allocate.

import type { Millis } from './types.ts';

/** Control frames a packet carried that must be re-sent (with fresh values) if it is lost. */
export const Ctrl = {
  HANDSHAKE: 1,
  MAX_DATA: 2,
  MAX_STREAMS: 4,
  CLOSE: 8,
} as const;

export class SentPacket {
  pn = 0;
  timeSent: Millis = 0;
  size = 0;
  ackEliciting = false;
  inFlight = false;
  isMtuProbe = false;
  // Delivery-rate state at send time (draft-cheng-iccrg-delivery-rate-estimation §3.2).
  delivered = 0;
  deliveredTime: Millis = 0;
  firstSentTime: Millis = 0;
  appLimited = false;
  // Stream chunks carried: parallel arrays, reused with the record.
  streamCount = 0;
  readonly streamIds: number[] = [];
  readonly streamOffsets: number[] = [];
  readonly streamLengths: number[] = [];
  readonly streamFins: boolean[] = [];
  ctrl = 0;
  /** Streams whose MAX_STREAM_DATA / RESET_STREAM this packet carried (rare: null when none). */
  maxStreamDataIds: number[] | null = null;
  resetIds: number[] | null = null;
  /** Largest packet number acknowledged by an ACK in this packet, -1 if none (ack-of-ack pruning). */
  ackLargest = -1;

  addStream(id: number, offset: number, length: number, fin: boolean): void {
    const i = this.streamCount++;
    this.streamIds[i] = id;
    this.streamOffsets[i] = offset;
    this.streamLengths[i] = length;
    this.streamFins[i] = fin;
  }
}

export class SentPackets {
  #slots: (SentPacket | null)[] = [];
  #head = 0;
  /** Packet number stored at slots[head]. */
  #basePn = 0;
  #pool: SentPacket[] = [];
  /** Records currently tracked (not null). */
  outstanding = 0;

  /** Fresh or recycled record; fill it then `push`. */
  acquire(): SentPacket {
    const p = this.#pool.pop() ?? new SentPacket();
    p.streamCount = 0;
    p.ctrl = 0;
    p.maxStreamDataIds = null;
    p.resetIds = null;
    p.ackLargest = -1;
    p.isMtuProbe = false;
    return p;
  }

  release(p: SentPacket): void {
    if (this.#pool.length < 4096) this.#pool.push(p);
  }

  /** Packet numbers must be pushed in increasing order (gaps are allowed and stay null). */
  push(p: SentPacket): void {
    if (this.outstanding === 0 && this.#slots.length - this.#head === 0) {
      this.#slots.length = 0;
      this.#head = 0;
      this.#basePn = p.pn;
    }
    let next = this.#basePn + this.#slots.length - this.#head;
    while (next < p.pn) {
      this.#slots.push(null);
      next++;
    }
    this.#slots.push(p);
    this.outstanding++;
  }

  get(pn: number): SentPacket | null {
    const i = pn - this.#basePn;
    if (i < 0) return null;
    const idx = this.#head + i;
    return idx < this.#slots.length ? this.#slots[idx]! : null;
  }

  /** Removes and returns the record (null if absent). The caller releases it when done. */
  take(pn: number): SentPacket | null {
    const i = pn - this.#basePn;
    if (i < 0) return null;
    const idx = this.#head + i;
    if (idx >= this.#slots.length) return null;
    const p = this.#slots[idx]!;
    if (p === null) return null;
    this.#slots[idx] = null;
    this.outstanding--;
    if (idx === this.#head) this.#advanceHead();
    return p;
  }

  #advanceHead(): void {
    const slots = this.#slots;
    while (this.#head < slots.length && slots[this.#head] === null) {
      this.#head++;
      this.#basePn++;
    }
    if (this.#head > 4096 && this.#head * 2 > slots.length) {
      slots.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Lowest tracked packet number (or the next one to be pushed when empty). */
  lowestPn(): number {
    return this.#basePn;
  }

  /** One past the highest packet number pushed. */
  endPn(): number {
    return this.#basePn + this.#slots.length - this.#head;
  }

  /** Oldest outstanding ack-eliciting record (for probes), or null. */
  oldestAckEliciting(): SentPacket | null {
    for (let i = this.#head; i < this.#slots.length; i++) {
      const p = this.#slots[i];
      if (p?.ackEliciting) return p;
    }
    return null;
  }

  /** Drops every record (connection closing). */
  clear(): void {
    const end = this.endPn();
    this.#slots.length = 0;
    this.#head = 0;
    this.#basePn = end;
    this.outstanding = 0;
  }

  /** Every outstanding record, oldest first (closing, tests). */
  *all(): IterableIterator<SentPacket> {
    for (let i = this.#head; i < this.#slots.length; i++) {
      const p = this.#slots[i];
      if (p) yield p;
    }
  }
}
