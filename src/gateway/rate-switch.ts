// A rate controller whose implementation a config reload can replace under a running
// association: the transport keeps one controller object for its lifetime (Connection, Recovery),
// so the gateway hands it this forwarder and swaps what is behind it.
import type { AckSample, LossSample, RateController } from '../transport/congestion/controller.ts';
import type { Millis } from '../transport/types.ts';

export class SwitchableRateController implements RateController {
  #inner: RateController;

  constructor(inner: RateController) {
    this.#inner = inner;
  }

  /**
   * New settings (rate.controller, committedRate, maxRate): the replacement starts from its own
   * initial state (a model controller probes the path again from committedRate), so a reload
   * that changes the rate costs a few round trips of ramp-up, not a connection.
   */
  replace(inner: RateController): void {
    this.#inner = inner;
  }

  get name(): string {
    return this.#inner.name;
  }

  onPacketSent(now: Millis, bytes: number, bytesInFlight: number, isAppLimited: boolean): void {
    this.#inner.onPacketSent(now, bytes, bytesInFlight, isAppLimited);
  }

  onAck(sample: AckSample): void {
    this.#inner.onAck(sample);
  }

  onLoss(sample: LossSample): void {
    this.#inner.onLoss(sample);
  }

  onReset(now: Millis): void {
    this.#inner.onReset?.(now);
  }

  pacingRateBps(): number {
    return this.#inner.pacingRateBps();
  }

  cwndBytes(): number {
    return this.#inner.cwndBytes();
  }

  bandwidthEstimateBps(): number {
    return this.#inner.bandwidthEstimateBps();
  }
}
