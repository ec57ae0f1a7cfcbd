// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation): each packet records
// how much had been delivered when it left; when it is acknowledged, the bytes delivered since,
// over the longer of the send and the ack intervals, is a rate sample for the controller.

import type { Millis } from './types.ts';
import type { SentPacket } from './sent-packets.ts';

export class DeliveryRateEstimator {
  // The draft's "C." variables.
  #delivered = 0;
  #deliveredTime: Millis = 0;
  #firstSentTime: Millis = 0;
  /** Sampling is application-limited until this much is delivered (0: not limited). */
  #appLimitedUntil = 0;
  // The sample of the ACK being processed (the draft's "rs."), from its newest acked packet.
  #priorDelivered = -1;
  #sendElapsed = 0;
  #ackElapsed = 0;
  #appLimited = false;

  /** Stamps a packet about to go in flight; `bytesInFlight` before it. */
  onPacketSent(p: SentPacket, now: Millis, bytesInFlight: number): void {
    if (bytesInFlight === 0) {
      this.#firstSentTime = now;
      this.#deliveredTime = now;
    }
    p.delivered = this.#delivered;
    p.deliveredTime = this.#deliveredTime;
    p.firstSentTime = this.#firstSentTime;
    p.appLimited = this.#appLimitedUntil !== 0;
  }

  /** The sender has nothing to send although the window allows: samples until now are app-limited. */
  markAppLimited(bytesInFlight: number): void {
    this.#appLimitedUntil = Math.max(this.#delivered + bytesInFlight, 1);
  }

  /** An ACK frame is being processed: onPacketAcked() for each packet in flight it acknowledges, then rateBps(). */
  beginAck(): void {
    this.#priorDelivered = -1;
  }

  onPacketAcked(p: SentPacket, now: Millis): void {
    this.#delivered += p.size;
    this.#deliveredTime = now;
    if (p.delivered >= this.#priorDelivered) {
      this.#priorDelivered = p.delivered;
      this.#appLimited = p.appLimited;
      this.#sendElapsed = p.timeSent - p.firstSentTime;
      this.#ackElapsed = now - p.deliveredTime;
      this.#firstSentTime = p.timeSent;
    }
  }

  /** The ACK's rate sample in bits/s, 0 when it has none (below `minRttMs`: see draft §3.3). */
  rateBps(minRttMs: Millis): number {
    if (this.#appLimitedUntil !== 0 && this.#delivered > this.#appLimitedUntil) this.#appLimitedUntil = 0;
    if (this.#priorDelivered < 0) return 0;
    const interval = Math.max(this.#sendElapsed, this.#ackElapsed);
    // An interval shorter than the min RTT is an ack compression artifact (draft §3.3).
    if (interval > 0 && interval >= minRttMs) return ((this.#delivered - this.#priorDelivered) * 8000) / interval;
    return 0;
  }

  /** The latest sample was taken while the sender was application-limited. */
  get isAppLimited(): boolean {
    return this.#appLimited;
  }
}
