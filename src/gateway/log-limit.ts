// Warnings that a peer, a stranger or a crowd of clients can trigger over and over (a wrong key
// retried every few seconds, clients past the connection limit): the first is logged at once, the
// rest at most once per interval, each saying how many were left unlogged meanwhile.

/** Default spacing of one kind of repeated warning: a line a minute is read, a flood is not. */
export const REPEATED_WARNING_INTERVAL_MS = 60_000;

export class LogLimit {
  readonly intervalMs: number;
  #lastAt = -Infinity;
  #suppressed = 0;

  constructor(intervalMs = REPEATED_WARNING_INTERVAL_MS) {
    this.intervalMs = intervalMs;
  }

  /**
   * Whether to log this occurrence now (`now` in ms, any monotonic clock); when it returns a
   * number, log and report it as the occurrences not logged since the last line.
   */
  take(now: number): number | null {
    if (now - this.#lastAt < this.intervalMs) {
      this.#suppressed++;
      return null;
    }
    this.#lastAt = now;
    const s = this.#suppressed;
    this.#suppressed = 0;
    return s;
  }
}
