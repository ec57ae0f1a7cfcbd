// The idle timeout (RFC 9000 §10.1), and the keepalive that keeps a quiet association from
// reaching it. The idle deadline lives in the connection's timer table.

import type { Millis } from './types.ts';
import { Timer, type TimerTable } from './timer.ts';

export class IdleTimer {
  /** Ours, or the peer's when shorter (0: none). */
  #timeoutMs: number;
  readonly #keepaliveMs: number;
  readonly #timers: TimerTable;
  #elicitingSentSinceReceive = false;
  #lastSentAt: Millis;

  constructor(timeoutMs: number, keepaliveMs: number, timers: TimerTable, now: Millis) {
    this.#timeoutMs = timeoutMs;
    this.#keepaliveMs = keepaliveMs;
    this.#timers = timers;
    this.#lastSentAt = now;
    if (timeoutMs > 0) timers.set(Timer.idle, now + timeoutMs);
  }

  /** The peer's idle timeout, from its transport parameters: the shorter one applies. */
  applyPeerTimeout(timeoutMs: number): void {
    if (timeoutMs > 0 && (this.#timeoutMs === 0 || timeoutMs < this.#timeoutMs)) this.#timeoutMs = timeoutMs;
  }

  /** A packet from the peer was processed: the timeout starts again. */
  onReceived(now: Millis): void {
    if (this.#timeoutMs > 0) this.#timers.set(Timer.idle, now + this.#timeoutMs);
    this.#elicitingSentSinceReceive = false;
  }

  /**
   * A packet left. The first ack-eliciting one since the peer was last heard from also restarts
   * the timeout (RFC 9000 §10.1), so an association that only sends does not time out early.
   */
  onSent(now: Millis, ackEliciting: boolean): void {
    if (ackEliciting && !this.#elicitingSentSinceReceive) {
      this.#elicitingSentSinceReceive = true;
      this.#timers.set(Timer.idle, Math.max(this.#timers.get(Timer.idle), now + this.#timeoutMs));
    }
    this.#lastSentAt = now;
  }

  /** When a keepalive PING falls due (Infinity when keepalives are off). */
  keepaliveAt(): Millis {
    return this.#keepaliveMs > 0 ? this.#lastSentAt + this.#keepaliveMs : Infinity;
  }
}
