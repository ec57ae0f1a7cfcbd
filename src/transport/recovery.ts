// Loss detection (RFC 9002 §6 with RACK-style time threshold), with a delivery-rate sample per
// ACK (delivery-rate.ts). Recovery only reports acks and losses to the rate controller; it
// never decides the rate, so random loss is not treated as congestion here.

import type { Millis } from './types.ts';
import type { AckSample, LossSample, RateController } from './congestion/controller.ts';
import { RttEstimator, TIMER_GRANULARITY_MS } from './rtt.ts';
import { SentPackets, type SentPacket } from './sent-packets.ts';
import { RangeSet } from './range-set.ts';
import { DeliveryRateEstimator } from './delivery-rate.ts';

// RFC 9002 §6.1.1: three later packets acknowledged means a packet is lost, not reordered.
export const PACKET_THRESHOLD = 3;
// RFC 9002 §6.1.2: 9/8 of an RTT tolerates the jitter of ordinary paths.
const TIME_THRESHOLD = 9 / 8;
// When a packet declared lost is acknowledged after all (reordering, RFC 8985 §6.2), the
// thresholds widen: the packet threshold to the observed displacement, the time threshold
// by 1/8 RTT per event up to 2 RTTs, so a reordering path stops paying spurious retransmissions.
const MAX_PACKET_THRESHOLD = 10_000;
const MAX_TIME_THRESHOLD = 2;
// Recently lost packet numbers remembered to recognise spurious losses.
const RECENTLY_LOST_RANGES = 64;
// Consecutive probe timeouts after which the path is treated as reset (RFC 9002 §7.6 spirit).
export const PERSISTENT_PTO_COUNT = 3;
// Exponential PTO backoff is capped so an outage is detected within a bounded time.
const MAX_PTO_BACKOFF = 6;
// During a WAN outage the probes are all that notices the link's return: backed off without
// bound they went out a PTO x 64 apart (6 s on a 25 ms path), so transfers resumed seconds after
// the link did. Two probes every half second cost nothing; paths whose PTO is longer keep it.
const MAX_PROBE_INTERVAL_MS = 500;

export interface RecoveryHandler {
  onPacketAcked(p: SentPacket, now: Millis): void;
  onPacketLost(p: SentPacket, now: Millis): void;
}

export class Recovery {
  readonly rtt = new RttEstimator();
  readonly sent = new SentPackets();
  bytesInFlight = 0;
  ackElicitingInFlight = 0;
  largestAcked = -1;
  ptoCount = 0;
  lastAckElicitingSentAt: Millis = 0;
  /** Peer's max ack delay, from its transport parameters. */
  peerMaxAckDelay: Millis = 25;
  /** Earliest time a packet below largestAcked becomes lost by the time threshold. */
  #lossTime: Millis = Infinity;
  /** Outstanding packet numbers below largestAcked, ascending (few: loss or reordering). */
  #holes: number[] = [];
  readonly #deliveryRate = new DeliveryRateEstimator();
  // Stats.
  packetsLost = 0;
  bytesLost = 0;
  spuriousLosses = 0;
  packetThreshold = PACKET_THRESHOLD;
  timeThreshold = TIME_THRESHOLD;
  readonly #recentlyLost = new RangeSet();

  readonly #controller: RateController;
  readonly #handler: RecoveryHandler;
  // Reused per ACK so the receive path does not allocate.
  readonly #ackSample: AckSample = {
    now: 0,
    rttMs: 0,
    bytesAcked: 0,
    deliveryRateBps: 0,
    isAppLimited: false,
    bytesInFlight: 0,
    sentAt: 0,
  };
  readonly #lossSample: LossSample = { now: 0, bytesLost: 0, bytesInFlight: 0, lostPacketSentAt: 0 };
  // Per-ACK scratch.
  #ackedBytes = 0;
  #lostBytes = 0;
  #lostNewestSentAt: Millis = 0;
  #ackedNewestSentAt: Millis = -Infinity;

  constructor(controller: RateController, handler: RecoveryHandler) {
    this.#controller = controller;
    this.#handler = handler;
  }

  /** Records a packet just sent (fill `p` from sent.acquire() first). */
  onPacketSent(p: SentPacket, now: Millis): void {
    if (p.inFlight) {
      this.#deliveryRate.onPacketSent(p, now, this.bytesInFlight);
      this.bytesInFlight += p.size;
      if (p.ackEliciting) {
        this.ackElicitingInFlight++;
        this.lastAckElicitingSentAt = now;
      }
      this.#controller.onPacketSent(now, p.size, this.bytesInFlight, p.appLimited);
    }
    this.sent.push(p);
  }

  /** The sender has nothing to send although the window allows: samples until now are app-limited. */
  markAppLimited(): void {
    this.#deliveryRate.markAppLimited(this.bytesInFlight);
  }

  /**
   * Processes an ACK frame's ranges (inclusive [high, low] pairs, highest first).
   * Packet numbers we never sent are ignored rather than trusted.
   */
  onAck(ranges: readonly number[], ackDelayMs: Millis, now: Millis): void {
    const end = this.sent.endPn();
    let largest = ranges[0]!;
    if (largest >= end) largest = end - 1;
    if (largest < 0) return;
    this.#ackedBytes = 0;
    this.#ackedNewestSentAt = -Infinity;
    this.#deliveryRate.beginAck();
    let largestSentAt = -1;
    let anyAckEliciting = false;

    // 1. Holes (outstanding packets below the previous largest acked) that this ACK covers.
    if (this.#holes.length > 0) {
      const holes = this.#holes;
      let keep = 0;
      let r = ranges.length - 2; // lowest range first
      for (let h = 0; h < holes.length; h++) {
        const pn = holes[h]!;
        while (r >= 0 && ranges[r]! < pn) r -= 2;
        if (r >= 0 && ranges[r + 1]! <= pn) {
          const p = this.sent.take(pn);
          if (p !== null) {
            if (p.ackEliciting) anyAckEliciting = true;
            this.#ackPacket(p, now);
          }
        } else if (this.sent.get(pn) !== null) {
          holes[keep++] = pn;
        }
      }
      holes.length = keep;
    }

    // 2. Packets above the previous largest acked: acked if in a range, else they become holes.
    if (largest > this.largestAcked) {
      let cursor = Math.max(this.largestAcked + 1, this.sent.lowestPn());
      for (let r = ranges.length - 2; r >= 0 && cursor <= largest; r -= 2) {
        const high = Math.min(ranges[r]!, largest);
        const low = ranges[r + 1]!;
        if (high < cursor) continue;
        for (; cursor < low; cursor++) {
          if (this.sent.get(cursor) !== null) this.#holes.push(cursor);
        }
        for (; cursor <= high; cursor++) {
          const p = this.sent.take(cursor);
          if (p === null) continue;
          if (p.ackEliciting) anyAckEliciting = true;
          if (cursor === largest) largestSentAt = p.timeSent;
          this.#ackPacket(p, now);
        }
      }
      this.largestAcked = largest;
    }

    if (!this.#recentlyLost.isEmpty()) this.#detectSpuriousLosses(ranges);

    if (largestSentAt >= 0 && anyAckEliciting) {
      this.rtt.update(now - largestSentAt, Math.min(ackDelayMs, this.peerMaxAckDelay));
    }
    if (this.#ackedBytes === 0) return;

    this.ptoCount = 0;
    this.detectLosses(now);

    const s = this.#ackSample;
    s.now = now;
    s.rttMs = this.rtt.latest;
    s.bytesAcked = this.#ackedBytes;
    s.isAppLimited = this.#deliveryRate.isAppLimited;
    s.bytesInFlight = this.bytesInFlight;
    // Exact even when the ACK covers only holes (rtt.latest then belongs to an older ACK).
    s.sentAt = this.#ackedNewestSentAt;
    s.deliveryRateBps = this.#deliveryRate.rateBps(this.rtt.min);
    this.#controller.onAck(s);
  }

  /** Acknowledged packet numbers we had declared lost: the path reorders, widen the thresholds. */
  #detectSpuriousLosses(ranges: readonly number[]): void {
    const lost = this.#recentlyLost;
    let found = 0;
    let maxDisplacement = 0;
    for (let r = 0; r < ranges.length; r += 2) {
      const high = ranges[r]!;
      const low = ranges[r + 1]!;
      for (let i = 0; i < lost.count; i++) {
        const s = Math.max(lost.starts[i]!, low);
        const e = Math.min(lost.ends[i]!, high + 1);
        if (s < e) {
          found += e - s;
          maxDisplacement = Math.max(maxDisplacement, this.largestAcked - s);
        }
      }
    }
    if (found === 0) return;
    for (let r = 0; r < ranges.length; r += 2) lost.remove(ranges[r + 1]!, ranges[r]! + 1);
    this.spuriousLosses += found;
    this.packetThreshold = Math.min(MAX_PACKET_THRESHOLD, Math.max(this.packetThreshold, maxDisplacement + 1));
    this.timeThreshold = Math.min(MAX_TIME_THRESHOLD, this.timeThreshold + 0.125);
  }

  #ackPacket(p: SentPacket, now: Millis): void {
    if (p.inFlight) {
      this.bytesInFlight -= p.size;
      if (p.ackEliciting) this.ackElicitingInFlight--;
      this.#ackedBytes += p.size;
      if (p.timeSent > this.#ackedNewestSentAt) this.#ackedNewestSentAt = p.timeSent;
      this.#deliveryRate.onPacketAcked(p, now);
    }
    this.#handler.onPacketAcked(p, now);
    this.sent.release(p);
  }

  /** Declares packets lost by packet or time threshold; reports them to the handler and controller. */
  detectLosses(now: Millis): void {
    this.#lossTime = Infinity;
    const holes = this.#holes;
    if (holes.length === 0) return;
    const rtt = this.rtt;
    const lossDelay = Math.max(this.timeThreshold * Math.max(rtt.latest, rtt.smoothed), TIMER_GRANULARITY_MS);
    const packetThreshold = this.packetThreshold;
    this.#lostBytes = 0;
    let lostCount = 0;
    let i = 0;
    for (; i < holes.length; i++) {
      const pn = holes[i]!;
      const p = this.sent.get(pn);
      if (p === null) continue;
      // Same expression as the loss timer below, so the timer firing always declares the loss.
      if (p.timeSent + lossDelay <= now || this.largestAcked >= pn + packetThreshold) {
        this.sent.take(pn);
        this.#losePacket(p, now);
        lostCount++;
      } else {
        // Holes are in send order: every later one is younger, so none of them is lost yet.
        this.#lossTime = p.timeSent + lossDelay;
        break;
      }
    }
    if (i > 0) holes.splice(0, i);
    if (lostCount > 0 && this.#lostBytes > 0) {
      const s = this.#lossSample;
      s.now = now;
      s.bytesLost = this.#lostBytes;
      s.bytesInFlight = this.bytesInFlight;
      s.lostPacketSentAt = this.#lostNewestSentAt;
      this.#controller.onLoss(s);
    }
  }

  #losePacket(p: SentPacket, now: Millis): void {
    if (p.inFlight) {
      this.bytesInFlight -= p.size;
      if (p.ackEliciting) this.ackElicitingInFlight--;
      // MTU probes are lost for their size, not for congestion (RFC 8899 §3).
      if (!p.isMtuProbe) {
        this.#recentlyLost.insert(p.pn, p.pn + 1);
        if (this.#recentlyLost.count > RECENTLY_LOST_RANGES) this.#recentlyLost.truncateLow(RECENTLY_LOST_RANGES);
        this.#lostBytes += p.size;
        this.#lostNewestSentAt = p.timeSent;
        this.packetsLost++;
        this.bytesLost += p.size;
      }
    }
    this.#handler.onPacketLost(p, now);
    this.sent.release(p);
  }

  /** Loss timer or probe timeout deadline; Infinity when nothing is outstanding. */
  deadline(handshakePending: boolean): Millis {
    if (this.#lossTime !== Infinity) return this.#lossTime;
    if (this.ackElicitingInFlight === 0 && !handshakePending) return Infinity;
    const pto = this.rtt.pto(this.peerMaxAckDelay);
    const interval = Math.min(pto * 2 ** Math.min(this.ptoCount, MAX_PTO_BACKOFF), Math.max(pto, MAX_PROBE_INTERVAL_MS));
    return this.lastAckElicitingSentAt + interval;
  }

  /** Fires the loss timer or the PTO. Returns true when probes should be sent (PTO). */
  onTimeout(now: Millis): boolean {
    if (this.#lossTime !== Infinity) {
      if (now >= this.#lossTime) this.detectLosses(now);
      return false;
    }
    this.ptoCount++;
    if (this.ptoCount === PERSISTENT_PTO_COUNT) this.#controller.onReset?.(now);
    return true;
  }

  /** Forgets everything in flight (connection closing). */
  discardAll(): void {
    this.sent.clear();
    this.#holes.length = 0;
    this.bytesInFlight = 0;
    this.ackElicitingInFlight = 0;
    this.#lossTime = Infinity;
  }
}
