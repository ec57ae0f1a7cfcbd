// Ack aggregation (BBR's extra_acked): bytes acked beyond what the estimated bandwidth explains
// since an epoch began. Delayed acks and batched receive deliver acks in bursts; the window must
// hold that much extra or the sender stalls between them.

import type { Millis } from '../types.ts';
import { WindowedFilter } from './windowed-filter.ts';

// Ack aggregation is tracked over ten rounds, as in BBR.
const EXTRA_ACKED_WINDOW_ROUNDS = 10;
// The allowance for it is capped at a BDP or this much time at the estimated rate, whichever is
// more. Acks leave a gateway in batches paced by its receive coalescing (~1 ms) and event loop,
// plus the peer's delayed-ack timer: on a sub-millisecond path that is several BDPs, and a cap of
// one BDP left the sender waiting for acks with the link idle (the lab's 0 ms baseline: ~0.3 ms
// minimum RTT, acks every ~1 ms). 8 ms covers the 5 ms max ack delay and the batching; on the
// 5-25 ms paths the BDP is the larger cap anyway (Linux BBR caps this at 100 ms of rate).
const EXTRA_ACKED_CAP_MS = 8;

export class AckAggregation {
  readonly #extraAcked = new WindowedFilter(EXTRA_ACKED_WINDOW_ROUNDS, 'max');
  #epochStartMs: Millis;
  #epochBytes = 0;

  constructor(now: Millis) {
    this.#epochStartMs = now;
  }

  /** The window's allowance for aggregated acks (bytes): the largest excess of recent rounds. */
  get extraAcked(): number {
    return this.#extraAcked.best;
  }

  /**
   * `bytesAcked` arrived in round `round`. `bw`: the bandwidth max filter's estimate; `bdp` and
   * `minBytes` bound the excess from below (with the time cap above).
   */
  onAck(now: Millis, bytesAcked: number, bw: number, bdp: number, minBytes: number, round: number): void {
    if (bw <= 0) return;
    const expected = (bw * (now - this.#epochStartMs)) / 8000;
    if (this.#epochBytes <= expected) {
      this.#epochStartMs = now;
      this.#epochBytes = 0;
    }
    this.#epochBytes += bytesAcked;
    const cap = Math.max(bdp, (bw * EXTRA_ACKED_CAP_MS) / 8000, minBytes);
    const extra = Math.min(this.#epochBytes - Math.max(expected, 0), cap);
    if (extra > 0) this.#extraAcked.update(round, extra);
  }
}
