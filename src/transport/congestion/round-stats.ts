// What each round trip measured: the bytes it delivered (the delivery rate over the last few
// rounds), the loss rate smoothed over rounds (credited back to delivery-rate samples), and its
// smallest and largest RTT sample. A round ends when a packet sent after it began is acked.

import type { Millis } from '../types.ts';

// The rate a standing-queue cut restarts from: bytes acked (plus random-rate loss) over the
// last four rounds / their duration. Jitter moves each end of the interval by a few ms;
// over four RTTs that is a few percent instead of the 20-40% a single 25 ms interval can
// show with 3 ms of jitter each way. (Per-ack samples stay the max filter's input: they
// show a probe's gain at once, which fairness between associations depends on.)
const RATE_WINDOW_ROUNDS = 4;
// Random loss happens after the bottleneck (the packet used the link), so delivery-rate
// samples are divided by (1 - loss rate) up to this much; congestive loss shows up as a
// standing queue or heavy loss, which cut the model instead.
const RANDOM_LOSS_CREDIT = 0.05;
// Per-round loss rate smoothed over ~8 rounds for the credit above.
const LOSS_EWMA_GAIN = 1 / 8;

export class RoundStats {
  /** Send time from which an acked packet ends the round (-Infinity: the first sampled ack does). */
  startMs: Millis = -Infinity;
  #beganAtMs: Millis;
  #ackedBytes = 0;
  #lostBytes = 0;
  #minRttMs = Infinity;
  #maxRttMs = 0;
  #lossRateEwma = 0;
  // The last RATE_WINDOW_ROUNDS rounds' bytes and durations, a ring.
  readonly #windowBytes = new Float64Array(RATE_WINDOW_ROUNDS);
  readonly #windowMs = new Float64Array(RATE_WINDOW_ROUNDS);
  #windowRounds = 0;

  constructor(now: Millis) {
    this.#beganAtMs = now;
  }

  /** The smallest RTT sample of the round under way (Infinity: none yet). */
  get minRttMs(): number {
    return this.#minRttMs;
  }

  /** The largest RTT sample of the round under way (0: none yet). */
  get maxRttMs(): number {
    return this.#maxRttMs;
  }

  onAck(bytes: number): void {
    this.#ackedBytes += bytes;
  }

  onLoss(bytes: number): void {
    this.#lostBytes += bytes;
  }

  onRttSample(rttMs: number): void {
    this.#minRttMs = Math.min(this.#minRttMs, rttMs);
    if (rttMs > this.#maxRttMs) this.#maxRttMs = rttMs;
  }

  /** A delivery-rate sample with random loss credited back (the lost packets used the link). */
  creditLoss(rateBps: number): number {
    return rateBps / (1 - Math.min(this.#lossRateEwma, RANDOM_LOSS_CREDIT));
  }

  /** Loss is judged afresh from here (what came before was congestion, not random loss). */
  forgetLossRate(): void {
    this.#lossRateEwma = 0;
  }

  /**
   * Ends the round under way, which the next starts now. Returns the delivery rate over the last
   * RATE_WINDOW_ROUNDS rounds (bits/s; 0 until there have been that many).
   */
  end(now: Millis): number {
    const acked = this.#ackedBytes;
    const lost = this.#lostBytes;
    const slot = this.#windowRounds++ % RATE_WINDOW_ROUNDS;
    // Only loss at a plausibly random rate counts: a burst of queue drops (startup's
    // overshoot) did not go through the link.
    this.#windowBytes[slot] = acked + Math.min(lost, RANDOM_LOSS_CREDIT * acked);
    this.#windowMs[slot] = now - this.#beganAtMs;
    let bytes = 0;
    let ms = 0;
    for (let i = 0; i < RATE_WINDOW_ROUNDS; i++) {
      bytes += this.#windowBytes[i]!;
      ms += this.#windowMs[i]!;
    }
    const windowFull = this.#windowRounds >= RATE_WINDOW_ROUNDS;
    const rate = windowFull && ms > 0 ? (bytes * 8000) / ms : 0;

    const total = acked + lost;
    if (total > 0) {
      // A round losing more than random loss could explain lost packets to a queue that
      // overflowed: counted at the credit's limit, so that burst does not inflate the rate.
      const loss = Math.min(lost / total, RANDOM_LOSS_CREDIT);
      this.#lossRateEwma += LOSS_EWMA_GAIN * (loss - this.#lossRateEwma);
    }

    this.startMs = now;
    this.#beganAtMs = now;
    this.#ackedBytes = 0;
    this.#lostBytes = 0;
    this.#minRttMs = Infinity;
    this.#maxRttMs = 0;
    return rate;
  }
}
