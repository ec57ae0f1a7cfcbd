// Fixed-rate controller: paces at the operator's committed rate (a dedicated link whose
// rate is known and guaranteed) and never reacts to loss, random or not. It still caps
// data in flight so a wrong rate or a dead path cannot queue unbounded data.

import type { Millis } from '../types.ts';
import type { AckSample, LossSample, RateController } from './controller.ts';

export interface FixedRateOptions {
  /** Committed rate, bits/s. */
  rateBps: number;
  /** Packet size used for the window floor (bytes). */
  mss?: number;
}

// Generous: three BDPs cover delayed acks, jitter and the retransmissions of a lossy line,
// while a committed rate above the real one still cannot queue more than two BDPs.
const CWND_BDP_MULTIPLE = 3;
// Before the first RTT sample, assume this RTT for the window (a long intercontinental path).
const ASSUMED_RTT_MS = 100;
const MIN_CWND_PACKETS = 16;
const DEFAULT_MSS = 1452;

export class FixedRateController implements RateController {
  readonly name = 'fixed-rate';
  readonly #rateBps: number;
  readonly #mss: number;
  #minRttMs = Infinity;

  constructor(opts: FixedRateOptions) {
    if (!(opts.rateBps > 0) || !Number.isFinite(opts.rateBps)) {
      throw new RangeError(`FixedRateController: rateBps must be a positive number, got ${opts.rateBps}`);
    }
    this.#rateBps = opts.rateBps;
    this.#mss = opts.mss ?? DEFAULT_MSS;
  }

  onPacketSent(_now: Millis, _bytes: number, _bytesInFlight: number, _isAppLimited: boolean): void {}

  onAck(s: AckSample): void {
    if (s.rttMs >= 0 && s.rttMs < this.#minRttMs) this.#minRttMs = s.rttMs;
  }

  onLoss(_s: LossSample): void {}

  onReset(_now: Millis): void {
    this.#minRttMs = Infinity;
  }

  pacingRateBps(): number {
    return this.#rateBps;
  }

  cwndBytes(): number {
    const rtt = Number.isFinite(this.#minRttMs) ? this.#minRttMs : ASSUMED_RTT_MS;
    return Math.max(MIN_CWND_PACKETS * this.#mss, (CWND_BDP_MULTIPLE * this.#rateBps * rtt) / 8000);
  }

  bandwidthEstimateBps(): number {
    return this.#rateBps;
  }
}

/** Factory for ConnectionConfig.rateController. */
export function fixedRateController(opts: FixedRateOptions): () => RateController {
  return () => new FixedRateController(opts);
}
