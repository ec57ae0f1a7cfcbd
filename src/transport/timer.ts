// The connection's deadlines in one table (quinn's TimerTable): nextTimeout() is the earliest
// of them, and handleTimeout() asks the same table which have expired, so the two never disagree.

import type { Millis } from './types.ts';

export const Timer = {
  /** The peer was silent for the idle timeout (or the handshake did not complete). */
  idle: 0,
  /** The closing period ends (RFC 9000 §10.2). */
  close: 1,
  /** Recovery's loss timer or probe timeout (RFC 9002 §6). */
  lossDetection: 2,
  /** A delayed ACK falls due. */
  ack: 3,
  /** The pacer releases the next packet. */
  pacing: 4,
  keepalive: 5,
  /** Path MTU discovery's next probe. */
  mtuProbe: 6,
} as const;
export type Timer = (typeof Timer)[keyof typeof Timer];

const TIMER_COUNT = 7;

export class TimerTable {
  readonly #deadlines = new Float64Array(TIMER_COUNT).fill(Infinity);

  get(timer: Timer): Millis {
    return this.#deadlines[timer]!;
  }

  set(timer: Timer, at: Millis): void {
    this.#deadlines[timer] = at;
  }

  stop(timer: Timer): void {
    this.#deadlines[timer] = Infinity;
  }

  stopAll(): void {
    this.#deadlines.fill(Infinity);
  }

  isExpired(timer: Timer, now: Millis): boolean {
    return now >= this.#deadlines[timer]!;
  }

  /** The earliest deadline, Infinity when none is set. */
  next(): Millis {
    const d = this.#deadlines;
    let t = d[0]!;
    for (let i = 1; i < TIMER_COUNT; i++) if (d[i]! < t) t = d[i]!;
    return t;
  }
}
