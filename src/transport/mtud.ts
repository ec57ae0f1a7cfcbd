// Datagram packetization-layer path MTU discovery (RFC 8899 style): start at a size every
// path carries, probe upward with padded PING packets, and fall back when large packets
// stop getting through (black hole).

import type { Millis } from './types.ts';

// RFC 8899 MAX_PROBES: a size is declared too big after this many probe losses in a row.
export const MAX_PROBES = 3;
// Search stops when the unknown interval is this small (a few bytes of payload are not worth more probes).
const SEARCH_PRECISION = 16;
// RFC 8899 PMTU_RAISE_TIMER: re-probe for a larger MTU after 10 minutes.
export const RAISE_INTERVAL_MS = 600_000;
// Consecutive losses of packets above the base size, with no large packet acknowledged in
// between, that mean a black hole. At 3% random loss eight in a row happen with p ~ 7e-13;
// a queue overflow can drop more in a burst, so the losses must also span a probe timeout
// without any large packet getting through (a burst drop is followed by acks within an RTT).
export const BLACK_HOLE_LOSSES = 8;
// After a black hole, wait before searching again (the path may be flapping).
const BLACK_HOLE_RETRY_MS = 30_000;

export class MtuDiscovery {
  /** Largest size confirmed to get through: what the connection uses. */
  current: number;
  readonly #base: number;
  #max: number;
  /** Largest size confirmed; smallest size known (or assumed) not to fit, minus one. */
  #low: number;
  #high: number;
  #inFlightProbe = 0;
  #lossesAtSize = 0;
  #nextProbeAt: Millis;
  #largeLossesInARow = 0;
  #lastLargeAckAt: Millis;
  probesSent = 0;
  probesLost = 0;
  blackHoles = 0;

  constructor(base: number, max: number, now: Millis) {
    this.#base = base;
    this.current = base;
    this.#low = base;
    this.#max = Math.max(base, max);
    this.#high = this.#max;
    this.#nextProbeAt = now;
    this.#lastLargeAckAt = now;
  }

  /** The peer's transport parameters may lower the ceiling. */
  setMax(max: number): void {
    this.#max = Math.max(this.#base, Math.min(this.#max, max));
    this.#high = Math.min(this.#high, this.#max);
    if (this.current > this.#max) this.current = this.#max;
  }

  #searching(): boolean {
    return this.#high - this.#low >= SEARCH_PRECISION;
  }

  /** When the next probe becomes due (Infinity when none is planned or one is outstanding). */
  nextProbeTime(): Millis {
    return this.#inFlightProbe !== 0 || !this.#searching() ? Infinity : this.#nextProbeAt;
  }

  /** Size of the probe to send now, or 0. */
  probeSize(now: Millis): number {
    if (this.#inFlightProbe !== 0 || !this.#searching() || now < this.#nextProbeAt) return 0;
    // A lost probe is retried at the same size (random loss is not a size verdict).
    if (this.#lossesAtSize > 0 && this.#lastProbe > 0) return this.#lastProbe;
    // Try the ceiling first (most paths carry it), then bisect.
    return this.#high === this.#max ? this.#max : this.#low + Math.ceil((this.#high - this.#low) / 2);
  }
  #lastProbe = 0;

  onProbeSent(size: number): void {
    this.#inFlightProbe = size;
    this.#lastProbe = size;
    this.probesSent++;
  }

  onProbeAcked(size: number, now: Millis): void {
    this.#lastLargeAckAt = now;
    if (size === this.#inFlightProbe) this.#inFlightProbe = 0;
    this.#lossesAtSize = 0;
    if (size > this.#low) this.#low = size;
    if (size > this.current) this.current = size;
    this.#largeLossesInARow = 0;
  }

  onProbeLost(size: number, now: Millis): void {
    if (size === this.#inFlightProbe) this.#inFlightProbe = 0;
    this.probesLost++;
    this.#lossesAtSize++;
    if (this.#lossesAtSize >= MAX_PROBES) {
      this.#lossesAtSize = 0;
      this.#high = Math.min(this.#high, size - 1);
      this.#lastProbe = 0;
    }
    if (!this.#searching()) this.#nextProbeAt = now + RAISE_INTERVAL_MS;
  }

  /** An ordinary packet of `size` was acknowledged. */
  onPacketAcked(size: number, now: Millis): void {
    if (size > this.#base) {
      this.#largeLossesInARow = 0;
      this.#lastLargeAckAt = now;
    }
  }

  /** An ordinary packet of `size` was declared lost. Returns true when falling back to the base size. */
  onPacketLost(size: number, now: Millis, ptoMs: Millis): boolean {
    // Only packets of the current size count: larger ones were sent before a fallback.
    if (size <= this.#base || size > this.current) return false;
    if (++this.#largeLossesInARow < BLACK_HOLE_LOSSES || now - this.#lastLargeAckAt < ptoMs) return false;
    this.#largeLossesInARow = 0;
    this.blackHoles++;
    this.#high = Math.min(this.current, size) - 1;
    this.current = this.#base;
    this.#low = this.#base;
    this.#lossesAtSize = 0;
    this.#lastProbe = 0;
    this.#inFlightProbe = 0;
    this.#nextProbeAt = now + BLACK_HOLE_RETRY_MS;
    return true;
  }

  /** Periodic re-probe: after the raise timer, search up to the ceiling again. */
  maybeRaise(now: Millis): void {
    if (!this.#searching() && this.current < this.#max && now >= this.#nextProbeAt) {
      this.#high = this.#max;
      this.#nextProbeAt = now;
    }
  }
}
