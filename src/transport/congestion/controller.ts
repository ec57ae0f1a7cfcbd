import type { Millis } from '../types.ts';

/** One acknowledged packet's delivery-rate sample (RFC-draft "delivery rate estimation"). */
export interface AckSample {
  now: Millis;
  rttMs: number; // this packet's RTT sample (ack delay already subtracted)
  bytesAcked: number; // size of the newly acknowledged packet(s)
  deliveryRateBps: number; // bits/s, 0 when no valid sample
  isAppLimited: boolean; // sample taken while the sender had nothing to send
  bytesInFlight: number; // after removing the acked bytes
  /** Send time of the newest acked packet; lets the controller count round trips exactly
   *  (without it, `now - rttMs` is used, which is late by the ack delay). */
  sentAt?: Millis;
}

export interface LossSample {
  now: Millis;
  bytesLost: number;
  bytesInFlight: number; // after removing the lost bytes
  /** Send time of the newest lost packet: one reaction per round trip uses it. */
  lostPacketSentAt: Millis;
}

/**
 * Rate controllers are pluggable: the core reports sends, acks and losses; the
 * controller answers with a pacing rate and a cap on data in flight. Always paced.
 */
export interface RateController {
  readonly name: string;
  onPacketSent(now: Millis, bytes: number, bytesInFlight: number, isAppLimited: boolean): void;
  onAck(sample: AckSample): void;
  onLoss(sample: LossSample): void;
  /** Persistent congestion / path reset (e.g. a long outage): start over. */
  onReset?(now: Millis): void;
  pacingRateBps(): number;
  cwndBytes(): number;
  /** Controller's bottleneck-bandwidth estimate for stats (bits/s). */
  bandwidthEstimateBps(): number;
}
