// What the sender waits for between transmissions, as time: the congestion window (acks), the
// pacer (its rate), or data (nothing written). Diagnostics for "why is the link not full": a
// sender that waits mostly for data is application-limited, one that waits for the window is
// ack-limited. Pure: time is the caller's.
import type { Millis } from './types.ts';

export const SendWait = { none: -1, window: 0, pacing: 1, data: 2 } as const;
export type SendWait = (typeof SendWait)[keyof typeof SendWait];

export class SendWaits {
  readonly #ms: [number, number, number] = [0, 0, 0];
  #state: SendWait = SendWait.none;
  #since: Millis = 0;

  /** From `now` on the sender waits for `kind` (or, with none, sends). */
  note(kind: SendWait, now: Millis): void {
    if (kind === this.#state) return;
    if (this.#state !== SendWait.none && now > this.#since) this.#ms[this.#state] += now - this.#since;
    this.#state = kind;
    this.#since = now;
  }

  /** Totals up to `now`, the current wait included. */
  totals(now: Millis): { windowMs: number; pacingMs: number; dataMs: number } {
    const open = this.#state !== SendWait.none && now > this.#since ? now - this.#since : 0;
    const [w, p, d] = this.#ms;
    return {
      windowMs: w + (this.#state === SendWait.window ? open : 0),
      pacingMs: p + (this.#state === SendWait.pacing ? open : 0),
      dataMs: d + (this.#state === SendWait.data ? open : 0),
    };
  }
}
