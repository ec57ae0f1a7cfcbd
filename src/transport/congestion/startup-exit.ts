// Startup's full-pipe detection: whether the round just ended shows the bottleneck saturated.

import { queuedRttMs } from './standing-queue.ts';

// Delivery rate must grow by 25% in 3 rounds or the pipe is considered full (BBR).
const FULL_BW_GROWTH = 1.25;
const FULL_BW_ROUNDS = 3;
// Startup doubles the delivery rate each round while the pipe has room. A round that grew
// it by less than half while RTTs rose by a quarter means the bottleneck saturated during
// that round: leave at once, before a 2-BDP window overflows a queue shallower than a BDP.
const STARTUP_STALL_GROWTH = 1.5;

export class FullPipeDetector {
  #fullBw = 0;
  #fullBwRounds = 0;
  #prevRoundBw = 0;

  /**
   * A round of startup ended (not app-limited) with the bandwidth estimate at `bw` and its
   * largest RTT sample `roundMaxRttMs`: true when the pipe is full.
   */
  onRound(bw: number, roundMaxRttMs: number, minRttMs: number): boolean {
    let full = false;
    const rttRose = roundMaxRttMs > queuedRttMs(minRttMs);
    if (this.#prevRoundBw > 0 && bw < STARTUP_STALL_GROWTH * this.#prevRoundBw && rttRose) full = true;
    this.#prevRoundBw = bw;
    if (bw >= this.#fullBw * FULL_BW_GROWTH) {
      this.#fullBw = bw;
      this.#fullBwRounds = 0;
    } else if (++this.#fullBwRounds >= FULL_BW_ROUNDS) {
      full = true;
    }
    return full;
  }
}
