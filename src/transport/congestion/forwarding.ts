// A rate controller that hands every call to another one: the base of wrappers that change one
// answer (the gateway's host-latency window floor) or swap the controller behind them (a config
// reload's new rate settings).
import type { Millis } from '../types.ts';
import type { AckSample, LossSample, RateController } from './controller.ts';

export class ForwardingRateController implements RateController {
  protected inner: RateController;

  constructor(inner: RateController) {
    this.inner = inner;
  }

  get name(): string {
    return this.inner.name;
  }

  onPacketSent(now: Millis, bytes: number, bytesInFlight: number, isAppLimited: boolean): void {
    this.inner.onPacketSent(now, bytes, bytesInFlight, isAppLimited);
  }

  onAck(sample: AckSample): void {
    this.inner.onAck(sample);
  }

  onLoss(sample: LossSample): void {
    this.inner.onLoss(sample);
  }

  onReset(now: Millis): void {
    this.inner.onReset?.(now);
  }

  pacingRateBps(): number {
    return this.inner.pacingRateBps();
  }

  cwndBytes(): number {
    return this.inner.cwndBytes();
  }

  bandwidthEstimateBps(): number {
    return this.inner.bandwidthEstimateBps();
  }
}
