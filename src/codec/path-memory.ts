// What `auto` has learned about one path, shared by the encoders of all of an association's
// streams. Each stream's encoder used to start knowing nothing: on a link where the arbiter had
// already found raw faster, every new connection compressed again for the seconds its own
// arbiter took to find out, and on incompressible traffic every new connection paid for the
// three failed blocks its own back-off needs before it pauses (5000 echo connections of random
// data: up to 70 MB of discarded lz4 output at the sending gateway, bench/results/
// reliability-2026-12-06-memory-breakdown.md). The arbiter's verdict is a fact about the link
// and the machine, so the next stream starts from it. Whether data compresses is a fact about
// each stream's data: on a path of failures a stream's block that samples as random is not
// compressed, one that samples compressible is tried, and a failure pauses the stream at once
// (encoder.ts, backoff.ts).

import type { ArbiterChoice } from './arbiter.ts';

/** A settled arbiter decision: the choice, and until when it stands unchallenged (ms, the encoders' clock). */
export interface ArbiterVerdict {
  choice: ArbiterChoice;
  /** The hold after which the deciding arbiter itself would have asked again. */
  holdMs: number;
  untilMs: number;
}

export class PathMemory {
  #verdict: ArbiterVerdict | null = null;
  #failStreak = 0;

  /** An arbiter settled (a trial judged, or raw found filling the link). */
  recordVerdict(choice: ArbiterChoice, holdMs: number, nowMs: number): void {
    this.#verdict = { choice, holdMs, untilMs: nowMs + holdMs };
  }

  /**
   * The last verdict while it still stands (null: none, or its hold is over and the question is
   * open again). Past its hold a new stream starts from the model's figures, as the first did.
   */
  verdictAt(nowMs: number): ArbiterVerdict | null {
    const v = this.#verdict;
    return v !== null && nowMs < v.untilMs ? v : null;
  }

  /** A block was tried with a codec on this path: `ok` if it met the 80% rule. */
  recordAttempt(ok: boolean): void {
    this.#failStreak = ok ? 0 : this.#failStreak + 1;
  }

  /** Blocks in a row, across the path's streams, that failed the 80% rule. */
  get failStreak(): number {
    return this.#failStreak;
  }
}
