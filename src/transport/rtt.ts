// RTT estimator (RFC 9002 §5): smoothed RTT, variation, and the minimum RTT seen.

import type { Millis } from './types.ts';

// Before the first sample: a WAN-ish guess. Lower than QUIC's 333 ms because gateways run on
// provisioned links, higher than any metro RTT so the first probe timeout is not spurious.
export const INITIAL_RTT_MS = 100;
// Timer granularity (RFC 9002 kGranularity); Node timers are no finer than 1 ms.
export const TIMER_GRANULARITY_MS = 1;

export class RttEstimator {
  latest = 0;
  smoothed = INITIAL_RTT_MS;
  variation = INITIAL_RTT_MS / 2;
  min = Infinity;
  hasSample = false;

  /** `ackDelay` is what the peer reported (already capped at its max ack delay by the caller). */
  update(sample: Millis, ackDelay: Millis): void {
    if (sample < 0) sample = 0;
    this.latest = sample;
    if (sample < this.min) this.min = sample;
    if (!this.hasSample) {
      this.hasSample = true;
      this.smoothed = sample;
      this.variation = sample / 2;
      return;
    }
    // Subtract the peer's ack delay unless that would go below the minimum (RFC 9002 §5.3).
    const adjusted = sample - ackDelay >= this.min ? sample - ackDelay : sample;
    this.variation = 0.75 * this.variation + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** Probe timeout before backoff (RFC 9002 §6.2.1). */
  pto(maxAckDelay: Millis): Millis {
    return this.smoothed + Math.max(4 * this.variation, TIMER_GRANULARITY_MS) + maxAckDelay;
  }

  minOrSmoothed(): Millis {
    return this.hasSample ? this.min : this.smoothed;
  }
}
