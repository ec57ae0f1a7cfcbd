// WAN outage detection for one association, on both sides: sans-IO, driven by the gateway's
// liveness tick. The peer is unreachable once the association is in use (data or a keepalive
// awaiting its ack, or streams open) and nothing has come back for `afterMs`; reachable again
// with the next authenticated packet. An outage is not a restart: the association and its
// connections are kept for the outage budget (limits.peerTimeoutMs), and only the liveness
// probes (LivenessWatch) can prove the peer restarted.

export type OutageChange = { kind: 'began'; since: number } | { kind: 'ended'; since: number; lastedMs: number };

export interface OutageSample {
  now: number;
  /** When the association last received an authenticated packet (same clock as `now`). */
  lastInputAt: number;
  inUse: boolean;
}

export class OutageWatch {
  readonly afterMs: number;
  /** Silence counts from when the association was last seen in use, never from an idle spell. */
  #busySince = -1;
  #lastInput = Number.NEGATIVE_INFINITY;
  /** Start of the current outage (the last packet heard), or -1. */
  #since = -1;

  constructor(afterMs: number) {
    this.afterMs = afterMs;
  }

  get unreachable(): boolean {
    return this.#since >= 0;
  }

  /** When the peer was last heard, if it is unreachable now (else -1). */
  get since(): number {
    return this.#since;
  }

  check(s: OutageSample): OutageChange | null {
    if (s.lastInputAt > this.#lastInput) {
      this.#lastInput = s.lastInputAt;
      this.#busySince = -1;
      if (this.#since >= 0) {
        const since = this.#since;
        this.#since = -1;
        return { kind: 'ended', since, lastedMs: s.lastInputAt - since };
      }
    }
    if (this.#since >= 0) return null;
    if (!s.inUse) {
      this.#busySince = -1;
      return null;
    }
    if (this.#busySince < 0) this.#busySince = s.now;
    const silentFrom = Math.max(this.#busySince, this.#lastInput);
    if (s.now - silentFrom < this.afterMs) return null;
    this.#since = silentFrom;
    return { kind: 'began', since: this.#since };
  }
}
