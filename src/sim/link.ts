// One direction of a simulated path: a bottleneck that serializes packets at `rateBps`
// behind a drop-tail queue bounded in bytes, then a wire with one-way delay, jitter,
// random loss, and optional reordering and duplication.
//
// The queue is modelled analytically: the link remembers when its transmitter becomes
// free, so the backlog at any instant is (freeAt - now) x rate. One event per delivered
// packet, nothing else scheduled, nothing allocated per packet.

import type { Prng } from './prng.ts';
import { DelayHistogram } from './histogram.ts';

export interface LinkOptions {
  /** Bottleneck rate, bits/s (Infinity: no serialization delay). */
  rateBps: number;
  /** One-way propagation delay, ms. */
  delayMs: number;
  /**
   * Delay variation: offsets in [-jitterMs, +jitterMs] around delayMs that change smoothly
   * and never reorder (the lab emulator's model, see jitter epochs below).
   */
  jitterMs?: number;
  /** Drop-tail queue limit in bytes (Infinity: unbounded). */
  queueBytes?: number;
  /** Per-packet probability of loss on the wire (after the packet used the link). */
  lossRate?: number;
  /** Probability that a packet escapes order preservation and is delayed by reorderDelayMs extra. */
  reorderRate?: number;
  reorderDelayMs?: number;
  /** Probability that a packet arrives twice. */
  duplicateRate?: number;
  /** Bytes added to each datagram for serialization (IP/UDP headers); 0 measures UDP payload. */
  overheadBytes?: number;
}

export interface LinkStats {
  packetsIn: number;
  bytesIn: number;
  lost: number;
  /** Datagrams sent while the link was down. */
  outageDrops: number;
  queueDrops: number;
  delivered: number;
  bytesDelivered: number;
  duplicated: number;
  reordered: number;
  queueDelayMsMean: number;
  queueDelayMsP95: number;
  queueDelayMsMax: number;
  /** Time the transmitter was busy, ms (utilization = busyMs / elapsed). */
  busyMs: number;
  /** Time the transmitter sat idle between the first and the last packet it carried, ms. */
  idleMs: number;
}

// Order-preserving jitter as the lab emulator models it (src/lab/emulator-link.ts): a new
// target offset is drawn every epoch and the offset moves linearly towards it; with an
// epoch of at least 4x the jitter, delay never falls faster than half the elapsed time, so
// packets keep their order and the mean delay stays delayMs. (Independent draws clamped to
// FIFO order would push nearly every packet to the maximum delay at high packet rates.)
const MIN_JITTER_EPOCH_MS = 10;
const JITTER_EPOCH_PER_JITTER = 4;

/** Schedules a packet's arrival at the far end (provided by the simulation). */
export type ArrivalScheduler = (time: number, link: Link, data: Uint8Array, tag: number) => void;

export class Link {
  readonly name: string;
  #rateBytesPerMs: number;
  readonly #delayMs: number;
  readonly #jitterMs: number;
  readonly #queueBytes: number;
  readonly #lossRate: number;
  readonly #reorderRate: number;
  readonly #reorderDelayMs: number;
  readonly #duplicateRate: number;
  readonly #overheadBytes: number;
  readonly #prng: Prng;
  readonly #schedule: ArrivalScheduler;

  #freeAt = 0;
  #lastArrival = 0;
  readonly #jitterEpochMs: number;
  #jitterEpochStart = -Infinity;
  #jitterFrom = 0;
  #jitterTo = 0;
  readonly #queueDelay = new DelayHistogram();
  #packetsIn = 0;
  #bytesIn = 0;
  #lost = 0;
  #queueDrops = 0;
  #delivered = 0;
  #bytesDelivered = 0;
  #duplicated = 0;
  #reordered = 0;
  #busyMs = 0;
  #idleMs = 0;
  #carried = false;

  /**
   * Called for each spell the transmitter sat idle before a packet started (its start and
   * end, ms), so a scenario can charge the lost link time to whatever the sender was doing.
   */
  onIdle: ((fromMs: number, toMs: number) => void) | null = null;

  /** A WAN outage: every datagram entering the link meanwhile is lost (counted as `outageDrops`). */
  down = false;
  #outageDrops = 0;

  /** Set by the simulation: receives each arriving datagram with the tag it was sent with. */
  sink: (data: Uint8Array, now: number, tag: number) => void = () => {};

  constructor(name: string, opts: LinkOptions, prng: Prng, schedule: ArrivalScheduler) {
    if (!(opts.rateBps > 0)) throw new RangeError(`link ${name}: rateBps must be > 0`);
    if (!(opts.delayMs >= 0)) throw new RangeError(`link ${name}: delayMs must be >= 0`);
    this.name = name;
    this.#rateBytesPerMs = opts.rateBps / 8000;
    this.#delayMs = opts.delayMs;
    this.#jitterMs = opts.jitterMs ?? 0;
    this.#queueBytes = opts.queueBytes ?? Infinity;
    this.#lossRate = opts.lossRate ?? 0;
    this.#reorderRate = opts.reorderRate ?? 0;
    this.#reorderDelayMs = opts.reorderDelayMs ?? 0;
    this.#duplicateRate = opts.duplicateRate ?? 0;
    this.#overheadBytes = opts.overheadBytes ?? 0;
    this.#prng = prng;
    this.#schedule = schedule;
    this.#jitterEpochMs = Math.max(MIN_JITTER_EPOCH_MS, JITTER_EPOCH_PER_JITTER * this.#jitterMs);
  }

  /**
   * A datagram enters the link at `now`. The link keeps the reference (no copy). `tag` is
   * handed back on arrival (the simulation uses it for the destination node).
   */
  send(data: Uint8Array, now: number, tag = 0): void {
    this.#packetsIn++;
    this.#bytesIn += data.length;
    if (this.down) {
      this.#outageDrops++;
      return;
    }
    const size = data.length + this.#overheadBytes;
    const waitMs = this.#freeAt > now ? this.#freeAt - now : 0;
    if (waitMs * this.#rateBytesPerMs + size > this.#queueBytes) {
      this.#queueDrops++;
      return;
    }
    this.#queueDelay.add(waitMs);
    if (this.#carried && this.#freeAt < now) {
      this.#idleMs += now - this.#freeAt;
      this.onIdle?.(this.#freeAt, now);
    }
    this.#carried = true;
    const txMs = size / this.#rateBytesPerMs;
    const txEnd = now + waitMs + txMs;
    this.#freeAt = txEnd;
    this.#busyMs += txMs;

    const prng = this.#prng;
    if (this.#lossRate > 0 && prng.next() < this.#lossRate) {
      this.#lost++;
      return;
    }
    let arrival = txEnd + this.#delayMs;
    if (this.#jitterMs > 0) arrival = Math.max(txEnd, arrival + this.#smoothJitter(txEnd));
    if (this.#reorderRate > 0 && prng.next() < this.#reorderRate) {
      // Escapes the order-preserving rule: later packets may overtake it.
      this.#reordered++;
      arrival += this.#reorderDelayMs;
    } else {
      if (arrival < this.#lastArrival) arrival = this.#lastArrival;
      this.#lastArrival = arrival;
    }
    this.#schedule(arrival, this, data, tag);
    if (this.#duplicateRate > 0 && prng.next() < this.#duplicateRate) {
      this.#duplicated++;
      // A copy, since the receiver may decrypt or parse the first one in place.
      this.#schedule(arrival + txMs, this, data.slice(), tag);
    }
  }

  #smoothJitter(t: number): number {
    const j = this.#jitterMs;
    let elapsed = t - this.#jitterEpochStart;
    if (elapsed >= this.#jitterEpochMs) {
      if (elapsed >= 2 * this.#jitterEpochMs) {
        // Idle for a while: restart the process from a fresh point.
        this.#jitterTo = (this.#prng.next() * 2 - 1) * j;
        this.#jitterEpochStart = t;
      } else {
        this.#jitterEpochStart += this.#jitterEpochMs;
      }
      this.#jitterFrom = this.#jitterTo;
      this.#jitterTo = (this.#prng.next() * 2 - 1) * j;
      elapsed = t - this.#jitterEpochStart;
    }
    return this.#jitterFrom + (this.#jitterTo - this.#jitterFrom) * (elapsed / this.#jitterEpochMs);
  }

  /** Changes the bottleneck rate for packets entering from now on (a path change). */
  setRate(rateBps: number): void {
    if (!(rateBps > 0)) throw new RangeError(`link ${this.name}: rateBps must be > 0`);
    this.#rateBytesPerMs = rateBps / 8000;
  }

  /** Queueing delay a packet entering now would see, ms. */
  backlogMs(now: number): number {
    return this.#freeAt > now ? this.#freeAt - now : 0;
  }

  /** Called by the simulation when a scheduled arrival fires. */
  arrive(data: Uint8Array, now: number, tag: number): void {
    this.#delivered++;
    this.#bytesDelivered += data.length;
    this.sink(data, now, tag);
  }

  stats(): LinkStats {
    return {
      packetsIn: this.#packetsIn,
      bytesIn: this.#bytesIn,
      lost: this.#lost,
      outageDrops: this.#outageDrops,
      queueDrops: this.#queueDrops,
      delivered: this.#delivered,
      bytesDelivered: this.#bytesDelivered,
      duplicated: this.#duplicated,
      reordered: this.#reordered,
      queueDelayMsMean: this.#queueDelay.mean,
      queueDelayMsP95: this.#queueDelay.quantile(0.95),
      queueDelayMsMax: this.#queueDelay.max,
      busyMs: this.#busyMs,
      idleMs: this.#idleMs,
    };
  }
}
