// Heavy-loss detection: the loss rate over a window of at least a round trip and enough packets.
// Only a rate far above any plausible random loss counts as congestion (like BBRv2's
// inflight_hi); random loss alone never cuts the model.

import type { Millis } from '../types.ts';

// Random loss on the lines we target is at most a few percent; congestion that overflows a
// drop-tail queue while we pace at 1.25x loses far more. Judged over at least a round and
// LOSS_WINDOW_MIN_PACKETS packets so that 3% random loss exceeds the threshold with
// negligible probability (P(>=15 of 100 | p=0.03) ~ 1e-7).
const HEAVY_LOSS_RATE = 0.15;
const LOSS_WINDOW_MIN_PACKETS = 100;

export class HeavyLossWindow {
  readonly #minBytes: number;
  #startMs: Millis;
  #ackedBytes = 0;
  #lostBytes = 0;

  constructor(now: Millis, mss: number) {
    this.#minBytes = LOSS_WINDOW_MIN_PACKETS * mss;
    this.#startMs = now;
  }

  /** A new window starts now: what came before is not judged. */
  restart(now: Millis): void {
    this.#startMs = now;
    this.#ackedBytes = 0;
    this.#lostBytes = 0;
  }

  onAck(bytes: number): void {
    this.#ackedBytes += bytes;
  }

  onLoss(bytes: number): void {
    this.#lostBytes += bytes;
  }

  /**
   * Closes the window once it spans `minRttMs` and enough packets, and starts the next. Returns
   * the rate delivered over it (bits/s) when its loss was heavy, null otherwise.
   */
  check(now: Millis, minRttMs: number): number | null {
    const total = this.#ackedBytes + this.#lostBytes;
    const elapsed = now - this.#startMs;
    if (total < this.#minBytes || !(elapsed >= minRttMs)) return null;
    const lossRate = this.#lostBytes / total;
    const deliveredRate = elapsed > 0 ? (this.#ackedBytes * 8000) / elapsed : 0;
    this.restart(now);
    return lossRate > HEAVY_LOSS_RATE ? deliveredRate : null;
  }
}
