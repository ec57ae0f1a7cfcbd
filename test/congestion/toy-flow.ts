// A minimal rate-controlled packet pump for testing controllers in the simulator without
// the transport core: the sender paces numbered packets at the controller's rate under
// its window, the receiver acks each packet with a 32-packet history (so lost acks are
// harmless), the sender computes delivery-rate samples as the draft does and reports
// losses by packet threshold. No retransmission: it measures what got through.

import type { RateController } from '../../src/transport/congestion/controller.ts';
import type { SimNode } from '../../src/sim/simulation.ts';

const MSS = 1452;
const ACK_SIZE = 40;
const REORDER_THRESHOLD = 3;
const RING = 1 << 20;

export class ToySender implements SimNode {
  readonly controller: RateController;
  #pn = 0;
  #nextSend = 0;
  #inflight = 0;
  #largestAcked = -1;
  #lowestUnresolved = 0;
  #delivered = 0;
  #deliveredTime = 0;
  #firstSentTime = 0;
  #srtt = 0;
  readonly #sentAt = new Float64Array(RING);
  readonly #pDelivered = new Float64Array(RING);
  readonly #pDeliveredTime = new Float64Array(RING);
  readonly #pFirstSent = new Float64Array(RING);
  readonly #state = new Uint8Array(RING); // 0 free, 1 in flight, 2 acked, 3 lost
  readonly #packet = new Uint8Array(MSS);
  readonly #limitBytes: number;
  packetsSent = 0;
  packetsLost = 0;
  bytesDelivered = 0;

  constructor(controller: RateController, limitBytes = Infinity) {
    this.controller = controller;
    this.#limitBytes = limitBytes;
  }

  handleDatagram(data: Uint8Array, now: number): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const largest = view.getUint32(0);
    const history = view.getUint32(4);
    let bytesAcked = 0;
    let rate = 0;
    let rttSample = -1;
    let sentAtNewest = -1;
    for (let k = 0; k < 32; k++) {
      if (k > 0 && ((history >>> (k - 1)) & 1) === 0) continue;
      const pn = largest - k;
      if (pn < 0) break;
      const i = pn & (RING - 1);
      if (this.#state[i] !== 1 && this.#state[i] !== 3) continue;
      const wasInFlight = this.#state[i] === 1;
      this.#state[i] = 2;
      if (!wasInFlight) continue; // late ack of a packet already declared lost
      this.#inflight -= MSS;
      bytesAcked += MSS;
      this.#delivered += MSS;
      this.#deliveredTime = now;
      this.bytesDelivered += MSS;
      const sendElapsed = this.#sentAt[i]! - this.#pFirstSent[i]!;
      const ackElapsed = now - this.#pDeliveredTime[i]!;
      const interval = Math.max(sendElapsed, ackElapsed);
      if (interval > 0) rate = Math.max(rate, ((this.#delivered - this.#pDelivered[i]!) * 8000) / interval);
      if (this.#sentAt[i]! > sentAtNewest) {
        sentAtNewest = this.#sentAt[i]!;
        this.#firstSentTime = sentAtNewest;
        rttSample = now - sentAtNewest;
      }
    }
    if (largest > this.#largestAcked) this.#largestAcked = largest;
    if (bytesAcked > 0) {
      this.#srtt = this.#srtt === 0 ? rttSample : 0.875 * this.#srtt + 0.125 * rttSample;
      this.controller.onAck({
        now,
        rttMs: rttSample,
        bytesAcked,
        deliveryRateBps: rate,
        isAppLimited: false,
        bytesInFlight: this.#inflight,
        sentAt: sentAtNewest,
      });
    }
    this.#detectLosses(now);
  }

  #detectLosses(now: number): void {
    let lost = 0;
    let newestLostSentAt = 0;
    const limit = this.#largestAcked - REORDER_THRESHOLD;
    for (; this.#lowestUnresolved <= limit; this.#lowestUnresolved++) {
      const i = this.#lowestUnresolved & (RING - 1);
      if (this.#state[i] === 1) {
        this.#state[i] = 3;
        this.#inflight -= MSS;
        lost += MSS;
        this.packetsLost++;
        newestLostSentAt = this.#sentAt[i]!;
      }
    }
    if (lost > 0) this.controller.onLoss({ now, bytesLost: lost, bytesInFlight: this.#inflight, lostPacketSentAt: newestLostSentAt });
  }

  handleTimeout(now: number): void {
    // Probe timeout: nothing acked for long, declare everything outstanding lost.
    if (this.#inflight > 0 && now >= this.#ptoAt()) {
      this.#largestAcked = this.#pn - 1 + REORDER_THRESHOLD;
      this.#detectLosses(now);
      this.#largestAcked = this.#pn - 1;
    }
  }

  #lastAckTime(): number {
    return this.#deliveredTime;
  }

  #ptoAt(): number {
    return Math.max(this.#lastAckTime(), this.#lastSendTime) + Math.max(3 * this.#srtt, 20) + 200;
  }

  #lastSendTime = 0;

  pollTransmit(now: number): { data: Uint8Array } | null {
    if (this.packetsSent * MSS >= this.#limitBytes) return null;
    if (this.#inflight + MSS > this.controller.cwndBytes()) return null;
    if (now < this.#nextSend) return null;
    const pn = this.#pn++;
    const i = pn & (RING - 1);
    if (this.#inflight === 0) {
      this.#firstSentTime = now;
      this.#deliveredTime = now;
    }
    this.#sentAt[i] = now;
    this.#pDelivered[i] = this.#delivered;
    this.#pDeliveredTime[i] = this.#deliveredTime;
    this.#pFirstSent[i] = this.#firstSentTime;
    this.#state[i] = 1;
    this.#inflight += MSS;
    this.packetsSent++;
    this.#lastSendTime = now;
    this.controller.onPacketSent(now, MSS, this.#inflight, false);
    const rate = this.controller.pacingRateBps();
    // Small slack so a timer firing exactly at the release time never rounds below it.
    this.#nextSend = Math.max(this.#nextSend, now - 0.05) + (MSS * 8000) / rate;
    const p = this.#packet.slice();
    new DataView(p.buffer).setUint32(0, pn);
    return { data: p };
  }

  nextTimeout(): number | null {
    if (this.packetsSent * MSS >= this.#limitBytes) return this.#inflight > 0 ? this.#ptoAt() : null;
    if (this.#inflight + MSS > this.controller.cwndBytes()) return this.#inflight > 0 ? this.#ptoAt() : null;
    return this.#nextSend;
  }
}

export class ToyReceiver implements SimNode {
  #largest = -1;
  #history = 0;
  #pendingAck = false;
  bytesReceived = 0;

  handleDatagram(data: Uint8Array, _now: number): void {
    const pn = new DataView(data.buffer, data.byteOffset).getUint32(0);
    this.bytesReceived += data.length;
    if (pn > this.#largest) {
      const shift = pn - this.#largest;
      this.#history = shift >= 32 ? 0 : ((this.#history << shift) | (1 << (shift - 1))) >>> 0;
      if (this.#largest < 0) this.#history = 0;
      this.#largest = pn;
    } else {
      const k = this.#largest - pn;
      if (k >= 1 && k <= 32) this.#history = (this.#history | (1 << (k - 1))) >>> 0;
    }
    this.#pendingAck = true;
  }

  handleTimeout(): void {}

  pollTransmit(): { data: Uint8Array } | null {
    if (!this.#pendingAck) return null;
    this.#pendingAck = false;
    const ack = new Uint8Array(ACK_SIZE);
    const v = new DataView(ack.buffer);
    v.setUint32(0, this.#largest);
    v.setUint32(4, this.#history);
    return { data: ack };
  }

  nextTimeout(): number | null {
    return null;
  }
}
