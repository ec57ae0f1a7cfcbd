// Standing-queue detection: the smallest RTT of each of several consecutive rounds stays well
// above the recent minimum, so the model overestimates our share of the bottleneck.

import type { Millis } from '../types.ts';
import { WindowedFilter } from './windowed-filter.ts';

// Standing queue: every RTT sample of STANDING_QUEUE_ROUNDS consecutive rounds above
// minRtt * (1 + fraction) + margin. The fraction leaves room for the probe's own queue
// (0.25 BDP) and the margin for jitter and timer granularity.
// The reference is the smallest round-minimum of the last RECENT_RTT_ROUNDS rounds, not
// the 10 s minimum: with jitter the 10 s minimum is one lucky sample, different for each
// association, and the one with the luckiest sample would always react first and starve.
// The recent reference carries fresh, unbiased noise every few cycles instead.
const STANDING_QUEUE_RTT_FRACTION = 0.25;
const STANDING_QUEUE_MARGIN_MS = 1;
const STANDING_QUEUE_ROUNDS = 3;
// ... and for at least this long. On a sub-millisecond path three rounds last ~10 ms, less than
// the hiccups of the hosts' schedulers (in the lab at 1 Gbit/s, five processes on two cores:
// 25-40 cuts a second, each pacing 15% below the link for a while). On paths of 10 ms or more
// the three rounds take longer anyway. (datapath-2026-12-06.md, section 18)
const STANDING_QUEUE_MIN_MS = 30;
const RECENT_RTT_ROUNDS = 24;
// A queue that stands longer than that window would become its own reference; against the
// smallest round-minimum of LONG_RTT_ROUNDS rounds it still shows, with a wider margin for
// that minimum's luck under jitter. It must stay below the queue a 1.5-BDP window allows
// (half the RTT), or two window-limited associations freeze their shares behind a queue
// neither of them detects. Not the 10 s minimum: under jitter that is one lucky sample, and
// the association that started first has had more luck, so it alone kept detecting the
// shared queue and lost its share (mpls fairness, seed 7: 38/62; with ~100 rounds, 59/41).
const LONG_QUEUE_RTT_FRACTION = 0.3;
const LONG_QUEUE_MARGIN_MS = 2;
const LONG_RTT_ROUNDS = 4 * RECENT_RTT_ROUNDS;

/** An RTT above this, over a path whose base RTT is `baseRttMs`, shows a queue. */
export function queuedRttMs(baseRttMs: number): number {
  return baseRttMs * (1 + STANDING_QUEUE_RTT_FRACTION) + STANDING_QUEUE_MARGIN_MS;
}

export class StandingQueue {
  readonly #recentRtt = new WindowedFilter(RECENT_RTT_ROUNDS, 'min');
  readonly #longRtt = new WindowedFilter(LONG_RTT_ROUNDS, 'min');
  /** Consecutive rounds whose smallest RTT showed a queue, the first of them ending at #since. */
  #rounds = 0;
  #since = 0;
  #lastRoundAt = 0;

  /** Round `round` ended at `now` with this smallest RTT sample (Infinity: none). */
  onRound(round: number, roundMinRttMs: number, now: Millis): void {
    this.#lastRoundAt = now;
    if (!Number.isFinite(roundMinRttMs)) return;
    this.#recentRtt.update(round, roundMinRttMs);
    this.#longRtt.update(round, roundMinRttMs);
    const queueThreshold = Math.min(
      queuedRttMs(this.#recentRtt.best),
      this.#longRtt.best * (1 + LONG_QUEUE_RTT_FRACTION) + LONG_QUEUE_MARGIN_MS,
    );
    if (roundMinRttMs <= queueThreshold) this.#rounds = 0;
    else if (this.#rounds++ === 0) this.#since = now;
  }

  /** Enough rounds in a row, over enough time, showed a queue: true once, then the count starts over. */
  takeDetection(): boolean {
    if (this.#rounds < STANDING_QUEUE_ROUNDS || this.#lastRoundAt - this.#since < STANDING_QUEUE_MIN_MS) return false;
    this.#rounds = 0;
    return true;
  }
}
