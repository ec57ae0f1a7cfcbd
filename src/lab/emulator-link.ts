// One direction of the emulated link, sans-IO: datagrams and `now` (ms) in, datagrams due
// for delivery out. The I/O runtime (emulator.ts) owns the sockets and the single timer.
//
// Model, in the order a datagram meets it:
//   outage (link down: dropped) -> drop-tail queue in front of the serializer (bytes) ->
//   serialization at the bit rate -> random loss on the wire (the packet still used the
//   wire) -> propagation (rtt/2) plus jitter -> delivery.

import { WIRE_OVERHEAD_BYTES } from '../link/profiles.ts';
import { Sfc32 } from './emulator-rng.ts';

export interface LinkSettings {
  /** Bit rate of the link; 0 means unlimited (no serialization delay, no queue). */
  rateBps: number;
  /** Round trip; each direction adds rttMs / 2. */
  rttMs: number;
  /** Per packet, 0..1. */
  lossRate: number;
  /** Delay variation amplitude: offsets lie in [-jitterMs, +jitterMs] around rtt/2. */
  jitterMs: number;
  /** Drop-tail limit on the bytes waiting for (or being put on) the wire. */
  queueBytes: number;
  /** Independent per-packet jitter that may reorder; otherwise jitter keeps order. */
  reorder: boolean;
  /** Link down from startMs to endMs after the emulator started (arrivals dropped). */
  outage?: { startMs: number; endMs: number } | undefined;
}

export interface DirectionStats {
  packetsIn: number;
  bytesIn: number;
  /** Random loss on the wire. */
  lost: number;
  /** Arrived while the link was down (scheduled outage). */
  outageDrops: number;
  /** Drop-tail queue overflow. */
  queueDrops: number;
  delivered: number;
  bytesDelivered: number;
  /** Largest queue seen, bytes (a bufferbloat witness). */
  maxQueueBytes: number;
}

export function emptyDirectionStats(): DirectionStats {
  return { packetsIn: 0, bytesIn: 0, lost: 0, outageDrops: 0, queueDrops: 0, delivered: 0, bytesDelivered: 0, maxQueueBytes: 0 };
}

/**
 * Order-preserving jitter changes the delay smoothly: a new target offset is drawn every
 * epoch and the offset moves linearly towards it. With an epoch of at least 4x the jitter
 * the delay never falls faster than half the elapsed time, so later packets never overtake
 * earlier ones and the mean delay stays rtt/2 (independent draws clamped to FIFO order would
 * instead push nearly every packet to the maximum delay at high packet rates).
 */
const MIN_JITTER_EPOCH_MS = 10;
const JITTER_EPOCH_PER_JITTER = 4;

const INITIAL_CAPACITY = 1024;

export type DeliverFn<T> = (packet: T, tag: number) => void;

export class LinkDirection<T extends { length: number }> {
  readonly stats: DirectionStats = emptyDirectionStats();
  #settings!: LinkSettings;
  #bytesPerMs = 0;
  #owdMs = 0;
  readonly #rng: Sfc32;
  readonly #startMs: number;
  #linkFreeAt = 0;
  #lastDeliverAt = 0;

  // Jitter process state (order-preserving mode).
  #jitterEpochMs = MIN_JITTER_EPOCH_MS;
  #jitterEpochStart = -Infinity;
  #jitterFrom = 0;
  #jitterTo = 0;

  // Delay line: a ring sorted by delivery time (appends at the tail in FIFO mode).
  #packets: (T | null)[] = new Array(INITIAL_CAPACITY).fill(null);
  #dueAt = new Float64Array(INITIAL_CAPACITY);
  #tags = new Uint16Array(INITIAL_CAPACITY);
  #head = 0;
  #size = 0;
  #mask = INITIAL_CAPACITY - 1;

  constructor(settings: LinkSettings, seed: number, startMs: number) {
    this.#rng = new Sfc32(seed);
    this.#startMs = startMs;
    this.configure(settings);
  }

  /** Changes the link in place; packets already scheduled keep their delivery times. */
  configure(settings: LinkSettings): void {
    this.#settings = settings;
    this.#bytesPerMs = settings.rateBps > 0 ? settings.rateBps / 8000 : 0;
    this.#owdMs = settings.rttMs / 2;
    this.#jitterEpochMs = Math.max(MIN_JITTER_EPOCH_MS, JITTER_EPOCH_PER_JITTER * settings.jitterMs);
    this.#jitterEpochStart = -Infinity;
  }

  get queued(): number {
    return this.#size;
  }

  /** Earliest delivery time, or Infinity when nothing is in flight. */
  nextDueAt(): number {
    return this.#size > 0 ? this.#dueAt[this.#head]! : Infinity;
  }

  offer(packet: T, tag: number, now: number): void {
    const s = this.stats;
    const len = packet.length;
    s.packetsIn++;
    s.bytesIn += len;
    const outage = this.#settings.outage;
    if (outage !== undefined) {
      const t = now - this.#startMs;
      if (t >= outage.startMs && t < outage.endMs) {
        s.outageDrops++;
        return;
      }
    }
    let sentAt = now;
    if (this.#bytesPerMs > 0) {
      const wire = len + WIRE_OVERHEAD_BYTES;
      const backlogMs = this.#linkFreeAt - now;
      if (backlogMs > 0) {
        const backlogBytes = backlogMs * this.#bytesPerMs;
        if (backlogBytes + wire > this.#settings.queueBytes) {
          s.queueDrops++;
          return;
        }
        if (backlogBytes + wire > s.maxQueueBytes) s.maxQueueBytes = Math.round(backlogBytes + wire);
        sentAt = this.#linkFreeAt + wire / this.#bytesPerMs;
      } else {
        sentAt = now + wire / this.#bytesPerMs;
      }
      this.#linkFreeAt = sentAt;
    }
    if (this.#settings.lossRate > 0 && this.#rng.next() < this.#settings.lossRate) {
      s.lost++;
      return;
    }
    let at = sentAt + this.#owdMs;
    const jitter = this.#settings.jitterMs;
    if (this.#settings.reorder) {
      if (jitter > 0) at += (this.#rng.next() * 2 - 1) * jitter;
      if (at < sentAt) at = sentAt;
      this.#insertSorted(packet, tag, at);
    } else {
      if (jitter > 0) at += this.#smoothJitter(sentAt);
      if (at < sentAt) at = sentAt;
      if (at < this.#lastDeliverAt) at = this.#lastDeliverAt;
      this.#lastDeliverAt = at;
      this.#append(packet, tag, at);
    }
  }

  /** Hands every packet due at or before `now` to `deliver`, in delivery order. */
  deliverDue(now: number, deliver: DeliverFn<T>): number {
    let n = 0;
    const s = this.stats;
    while (this.#size > 0 && this.#dueAt[this.#head]! <= now) {
      const i = this.#head;
      const packet = this.#packets[i]!;
      this.#packets[i] = null;
      this.#head = (i + 1) & this.#mask;
      this.#size--;
      s.delivered++;
      s.bytesDelivered += packet.length;
      n++;
      deliver(packet, this.#tags[i]!);
    }
    return n;
  }

  #smoothJitter(t: number): number {
    const j = this.#settings.jitterMs;
    let elapsed = t - this.#jitterEpochStart;
    if (elapsed >= this.#jitterEpochMs) {
      if (elapsed >= 2 * this.#jitterEpochMs) {
        // Idle for a while: restart the process from a fresh point.
        this.#jitterTo = (this.#rng.next() * 2 - 1) * j;
        this.#jitterEpochStart = t;
      } else {
        this.#jitterEpochStart += this.#jitterEpochMs;
      }
      this.#jitterFrom = this.#jitterTo;
      this.#jitterTo = (this.#rng.next() * 2 - 1) * j;
      elapsed = t - this.#jitterEpochStart;
    }
    return this.#jitterFrom + (this.#jitterTo - this.#jitterFrom) * (elapsed / this.#jitterEpochMs);
  }

  #append(packet: T, tag: number, at: number): void {
    if (this.#size === this.#packets.length) this.#grow();
    const i = (this.#head + this.#size) & this.#mask;
    this.#packets[i] = packet;
    this.#dueAt[i] = at;
    this.#tags[i] = tag;
    this.#size++;
  }

  #insertSorted(packet: T, tag: number, at: number): void {
    if (this.#size === this.#packets.length) this.#grow();
    const mask = this.#mask;
    let pos = this.#size;
    // Shift later packets back by one; stable for equal times (arrival order kept).
    while (pos > 0) {
      const prev = (this.#head + pos - 1) & mask;
      if (this.#dueAt[prev]! <= at) break;
      const cur = (this.#head + pos) & mask;
      this.#packets[cur] = this.#packets[prev]!;
      this.#dueAt[cur] = this.#dueAt[prev]!;
      this.#tags[cur] = this.#tags[prev]!;
      pos--;
    }
    const i = (this.#head + pos) & mask;
    this.#packets[i] = packet;
    this.#dueAt[i] = at;
    this.#tags[i] = tag;
    this.#size++;
  }

  #grow(): void {
    const oldCap = this.#packets.length;
    const cap = oldCap * 2;
    const packets: (T | null)[] = new Array(cap).fill(null);
    const dueAt = new Float64Array(cap);
    const tags = new Uint16Array(cap);
    for (let k = 0; k < this.#size; k++) {
      const i = (this.#head + k) & this.#mask;
      packets[k] = this.#packets[i]!;
      dueAt[k] = this.#dueAt[i]!;
      tags[k] = this.#tags[i]!;
    }
    this.#packets = packets;
    this.#dueAt = dueAt;
    this.#tags = tags;
    this.#head = 0;
    this.#mask = cap - 1;
  }
}
