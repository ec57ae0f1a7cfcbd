// What we acknowledge and when (quinn's PendingAcks): the packet numbers received, and the
// delayed-ACK rule (RFC 9000 §13.2) that decides when an ACK must leave on its own.

import type { Millis } from './types.ts';
import { ackFrameMaxSize, writeAck } from './frame.ts';
import { RangeSet } from './range-set.ts';
import type { SentPacket } from './sent-packets.ts';

// Acknowledge every second ack-eliciting packet (RFC 9000 §13.2.2) ...
export const ACK_ELICITING_THRESHOLD = 2;
// ... or after this delay. Small against any WAN RTT, above the 1 ms timer granularity.
export const MAX_ACK_DELAY_MS = 5;
// ACK frames report the newest ranges only; older holes are either recovered or long lost.
const MAX_ACK_RANGES_SENT = 32;
const MAX_RECEIVED_RANGES = 64;
// Ack-only packets are not acknowledged; make every Nth one ack-eliciting so the peer's
// ACK of it lets us prune our received-ranges state (RFC 9000 §13.2.4).
const ACK_ONLY_BEFORE_PING = 16;

export class AckTracker {
  readonly #received = new RangeSet();
  /** Packet numbers below are treated as already seen. */
  #floor = 0;
  #largest = -1;
  #largestAt: Millis = 0;
  #elicitingSinceAck = 0;
  /** An ack-eliciting packet arrived since our last ACK. */
  #pending = false;
  #immediate = false;
  #deadline: Millis = Infinity;
  #ackOnlySinceEliciting = 0;
  /** Ack-eliciting packets received per ACK sent. */
  readonly #threshold: number;

  constructor(threshold: number) {
    this.#threshold = threshold;
  }

  /** A packet number seen before, or too old to tell. */
  isDuplicate(pn: number): boolean {
    return pn < this.#floor || this.#received.contains(pn);
  }

  /** Records a packet received at `now`, before its frames are applied. */
  onReceived(pn: number, now: Millis): void {
    const received = this.#received;
    if (received.isEmpty() || pn > this.#largest) {
      if (pn !== this.#largest + 1 && this.#largest >= 0) this.#immediate = true;
      this.#largest = pn;
      this.#largestAt = now;
    } else {
      // Fills a hole: acknowledge promptly so the peer stops treating it as lost.
      this.#immediate = true;
    }
    received.insert(pn, pn + 1);
    if (received.count > MAX_RECEIVED_RANGES) {
      received.truncateLow(MAX_RECEIVED_RANGES);
      this.#floor = Math.max(this.#floor, received.min()!);
    }
  }

  /** The packet just received asked for an ACK. */
  onAckEliciting(now: Millis): void {
    this.#pending = true;
    this.#elicitingSinceAck++;
    if (this.#deadline === Infinity) this.#deadline = now + MAX_ACK_DELAY_MS;
  }

  /** Acknowledge with the next packet, without delay (a repeated INIT: our ACCEPT was lost). */
  ackImmediately(): void {
    this.#immediate = true;
  }

  get isPending(): boolean {
    return this.#pending;
  }

  /** An ACK must leave now, in a packet of its own if nothing else goes. */
  isDue(now: Millis): boolean {
    return this.#pending && (this.#immediate || this.#elicitingSinceAck >= this.#threshold || now >= this.#deadline);
  }

  /** When the delayed ACK falls due (Infinity when none is pending). */
  deadline(): Millis {
    return this.#pending ? this.#deadline : Infinity;
  }

  /** Writes an ACK frame of what was received, when there is any and it fits. */
  writeFrame(buf: Uint8Array, pos: number, limit: number, now: Millis, sp: SentPacket): number {
    const received = this.#received;
    if (received.isEmpty()) return pos;
    const room = limit - pos;
    if (room < ackFrameMaxSize(0)) return pos; // the first range always fits
    const delayUs = Math.max(0, Math.round((now - this.#largestAt) * 1000));
    pos = writeAck(buf, pos, received.starts, received.ends, received.count, delayUs, MAX_ACK_RANGES_SENT, room);
    sp.ackLargest = received.maxEnd()! - 1;
    this.#pending = false;
    this.#immediate = false;
    this.#elicitingSinceAck = 0;
    this.#deadline = Infinity;
    return pos;
  }

  /**
   * The peer has our ACK up to `largest`: stop reporting those (RFC 9000 §13.2.4). Packets below
   * it that never arrived are given up on; their data is retransmitted.
   */
  onAckAcked(largest: number): void {
    if (largest + 1 <= this.#floor) return;
    this.#floor = largest + 1;
    this.#received.removeBelow(this.#floor);
  }

  /** An ack-only packet is being built: true when it should ask for an ACK back (see ACK_ONLY_BEFORE_PING). */
  ackOnlyWantsPing(): boolean {
    return ++this.#ackOnlySinceEliciting >= ACK_ONLY_BEFORE_PING;
  }

  onAckElicitingSent(): void {
    this.#ackOnlySinceEliciting = 0;
  }
}
