// Token-bucket pacer with a send quantum: tells when the next packet may leave at the
// controller's pacing rate. Like Linux's TSO autosizing / BBR's send quantum, packets leave
// in bursts of about 1 ms of the rate instead of one by one, so a driver woken by a ~1 ms
// timer sends a batch per wake-up (one sendmmsg/GSO call) instead of spinning for each
// packet; the average rate is unchanged because tokens accrue at the rate either way.
// Pure: time is an input, the caller arms the timers.

import type { Millis } from './types.ts';

// A burst releases about this much time's worth of the pacing rate.
const QUANTUM_MS = 1;
// Quantum bounds in packets: at least 2 (low rates), at most 64 (~90 KB at 1400-byte packets,
// 0.8 ms at 900 Mbit/s), so a burst adds little queue at any bottleneck.
const MIN_QUANTUM_PACKETS = 2;
const MAX_QUANTUM_PACKETS = 64;
// The bucket holds a quantum plus 2 ms of rate: a timer armed for the next quantum (rounded
// up to whole milliseconds) and woken ~1 ms late still finds every token that accrued, so
// the average rate (and the controller's delivery-rate samples) do not lose the lateness.
const BUCKET_SLACK_MS = 2;
// A sender that comes back later than the release time it was given gets the tokens of that
// lateness on top, up to this much: on the shared 2-core lab machine gateway A, neither
// window- nor data-limited, sent 9-15% below its pacing rate on mpls because its wake-ups
// ran late by more than the slack (a larger bucket closed most of that gap). Only lateness
// counts, not a spell the window kept the sender quiet: tokens saved over such a spell
// would go out packet by packet as acks open the window, not in quanta.
const LATE_CREDIT_MS = 8;
// Never more than this many bytes, however high the rate (over 2 ms up to ~2 Gbit/s, what
// one gateway core reaches); a full bucket only follows an idle or application-limited spell.
const MAX_BUCKET_BYTES = 512 * 1024;

export class Pacer {
  #tokens: number;
  #lastRefill: Millis;
  #rateBytesPerMs = 0;
  #capacity: number;
  #quantumBytes: number;
  // The time a burst was opened: further packets at that same `now` (the same flush)
  // need only their own tokens, later calls wait for a whole quantum again.
  #burstAt: Millis = -Infinity;
  // The release time last handed out for a packet that had to wait (Infinity: none pending).
  #dueAt: Millis = Infinity;
  #packetSize: number;

  constructor(now: Millis, packetSize: number) {
    this.#lastRefill = now;
    this.#packetSize = packetSize;
    this.#quantumBytes = MIN_QUANTUM_PACKETS * packetSize;
    this.#capacity = this.#quantumBytes;
    this.#tokens = this.#capacity;
  }

  /** Updates the rate (bits/s) and the packet size that bounds the quantum. */
  setRate(rateBps: number, packetSize: number): void {
    const perMs = rateBps / 8000;
    if (perMs === this.#rateBytesPerMs && packetSize === this.#packetSize) return;
    this.#rateBytesPerMs = perMs;
    this.#packetSize = packetSize;
    this.#quantumBytes = Math.min(Math.max(perMs * QUANTUM_MS, MIN_QUANTUM_PACKETS * packetSize), MAX_QUANTUM_PACKETS * packetSize);
    this.#capacity = Math.max(Math.min(this.#quantumBytes + perMs * BUCKET_SLACK_MS, MAX_BUCKET_BYTES), this.#quantumBytes);
  }

  /** Bytes released together in one burst at the current rate. */
  get quantum(): number {
    return this.#quantumBytes;
  }

  /** Most tokens the bucket holds at the current rate. */
  get bucketBytes(): number {
    return this.#capacity;
  }

  #refill(now: Millis): void {
    const elapsed = now - this.#lastRefill;
    if (elapsed > 0) {
      let capacity = this.#capacity;
      if (now > this.#dueAt) {
        const lateMs = Math.min(now - this.#dueAt, LATE_CREDIT_MS);
        capacity = Math.max(capacity, Math.min(capacity + lateMs * this.#rateBytesPerMs, MAX_BUCKET_BYTES));
      }
      this.#tokens = Math.min(capacity, this.#tokens + elapsed * this.#rateBytesPerMs);
      this.#lastRefill = now;
    }
    if (now >= this.#dueAt) this.#dueAt = Infinity;
  }

  /**
   * Time at which a packet of `bytes` may leave (<= now means immediately). `backlog` is
   * how much the sender has to send in all (>= bytes): a new burst waits for
   * min(quantum, backlog) tokens, so bulk data leaves in quanta while a small write, the
   * tail of application-limited data or an urgent packet (backlog = bytes) waits only for
   * its own tokens. Within a burst (the same `now`) each packet needs only its own.
   */
  releaseTime(now: Millis, bytes: number, backlog: number = bytes): Millis {
    this.#refill(now);
    let need = now === this.#burstAt ? bytes : Math.max(bytes, Math.min(this.#quantumBytes, backlog));
    // A packet larger than the bucket (a path MTU probe at a low rate) leaves when it is full.
    if (need > this.#capacity) need = this.#capacity;
    // A hair of tolerance: the wake-up time computed below must release the packet despite rounding.
    if (this.#tokens >= need - 1e-6) {
      this.#burstAt = now;
      this.#dueAt = Infinity;
      return now;
    }
    // No rate (a controller bug or a reset): look again in a millisecond rather than never.
    if (this.#rateBytesPerMs <= 0) return now + 1;
    this.#dueAt = now + (need - this.#tokens) / this.#rateBytesPerMs;
    return this.#dueAt;
  }

  /** The sender stopped waiting for its release time (its window is full): no lateness is owed. */
  forgetWait(): void {
    this.#dueAt = Infinity;
  }

  onSent(bytes: number): void {
    // Probe-timeout packets leave regardless of tokens: through a long outage they ran up a debt
    // (half a megabyte in 90 s) that the first rate after it took minutes to repay.
    this.#tokens = Math.max(this.#tokens - bytes, -this.#capacity);
  }
}
