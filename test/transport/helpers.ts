// In-memory pair of connections over deterministic lossy links (virtual time), plus a tiny
// rate controller so these tests exercise the core, not a particular controller.

import { createHash } from 'node:crypto';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import type { ConnectionConfig, ConnectionEvent } from '../../src/transport/types.ts';
import type { AckSample, LossSample, RateController } from '../../src/transport/congestion/controller.ts';
import { Prng } from '../../src/sim/prng.ts';

/** Paces at a fixed rate with a fixed window; records what the core reported. */
export class TestController implements RateController {
  readonly name = 'test';
  acks = 0;
  losses = 0;
  bytesLost = 0;
  rateSamples = 0;
  resets = 0;
  private readonly rate: number;
  private readonly cwnd: number;
  constructor(rate = 400e6, cwnd = 4 * 1024 * 1024) {
    this.rate = rate;
    this.cwnd = cwnd;
  }
  onPacketSent(): void {}
  onAck(s: AckSample): void {
    this.acks++;
    if (s.deliveryRateBps > 0) this.rateSamples++;
  }
  onLoss(s: LossSample): void {
    this.losses++;
    this.bytesLost += s.bytesLost;
  }
  onReset(): void {
    this.resets++;
  }
  pacingRateBps(): number {
    return this.rate;
  }
  cwndBytes(): number {
    return this.cwnd;
  }
  bandwidthEstimateBps(): number {
    return this.rate;
  }
}

export interface LinkOpts {
  delayMs: number;
  lossRate: number;
  jitterMs: number; // uniform extra delay in [0, jitterMs): reorders packets
  duplicateRate: number;
  /** Datagrams larger than this are dropped (path MTU). */
  mtu: number;
  /** Drop everything (outage). */
  down: boolean;
}

// Events at one instant: thousands of queued datagrams can legitimately arrive together,
// a million means a deadline that never clears.
const MAX_SAME_TIME_STEPS = 1_000_000;

const DEFAULT_LINK: LinkOpts = { delayMs: 10, lossRate: 0, jitterMs: 0, duplicateRate: 0, mtu: 65535, down: false };

interface InFlight {
  at: number;
  seq: number;
  toServer: boolean;
  data: Uint8Array;
}

export interface PairOptions {
  seed?: number;
  client?: Partial<ConnectionConfig>;
  server?: Partial<ConnectionConfig>;
  link?: Partial<LinkOpts>;
  /** Use the default (model-based) controller instead of TestController. */
  defaultController?: boolean;
  /**
   * Both sides send with pollTransmitInto at shifting offsets of one buffer (as a gateway writes
   * into its send queue); every byte around each datagram is checked untouched.
   */
  transmitInto?: boolean;
}

export class Pair {
  now = 0;
  readonly client: Connection;
  readonly server: Connection;
  readonly clientCtl = new TestController();
  readonly serverCtl = new TestController();
  readonly toServer: LinkOpts;
  readonly toClient: LinkOpts;
  readonly clientEvents: ConnectionEvent[] = [];
  readonly serverEvents: ConnectionEvent[] = [];
  /** Hooks run after each side's events are collected (the "application"). */
  onClient: ((p: Pair) => void) | null = null;
  onServer: ((p: Pair) => void) | null = null;
  /** Optional tap on every datagram put on the wire. */
  tap: ((data: Uint8Array, toServer: boolean) => void) | null = null;
  private readonly rng: Prng;
  private readonly transmitInto: boolean;
  private readonly txBuf = new Uint8Array(8192);
  private txAt = 0;
  private queue: InFlight[] = [];
  private seq = 0;
  steps = 0;
  private sameTimeSteps = 0;

  constructor(opts: PairOptions = {}) {
    this.rng = new Prng(opts.seed ?? 1);
    const crng = new Prng((opts.seed ?? 1) * 7 + 1);
    const srng = new Prng((opts.seed ?? 1) * 7 + 2);
    const ccfg = defaultConnectionConfig({
      random: () => crng.next(),
      ...(opts.defaultController ? {} : { rateController: () => this.clientCtl }),
      ...opts.client,
    });
    const scfg = defaultConnectionConfig({
      random: () => srng.next(),
      ...(opts.defaultController ? {} : { rateController: () => this.serverCtl }),
      ...opts.server,
    });
    this.client = new Connection({ role: 'client', config: ccfg, now: 0 });
    this.server = new Connection({ role: 'server', config: scfg, now: 0 });
    this.toServer = { ...DEFAULT_LINK, ...opts.link };
    this.toClient = { ...DEFAULT_LINK, ...opts.link };
    this.transmitInto = opts.transmitInto ?? false;
  }

  /** The side's next datagram (a copy it owns), by pollTransmit or pollTransmitInto. */
  private poll(conn: Connection): Uint8Array | null {
    if (!this.transmitInto) return conn.pollTransmit(this.now)?.data ?? null;
    const buf = this.txBuf;
    buf.fill(0xee);
    const at = (this.txAt = (this.txAt + 13) % 97);
    const n = conn.pollTransmitInto(this.now, buf, at);
    if (n === 0) return null;
    for (let i = 0; i < buf.length; i++) {
      if ((i < at || i >= at + n) && buf[i] !== 0xee)
        throw new Error(`pollTransmitInto wrote outside its datagram (byte ${i}, datagram ${at}+${n})`);
    }
    return buf.slice(at, at + n);
  }

  /** Delivers a datagram to a side directly (bypassing links), then services it. */
  inject(toServer: boolean, data: Uint8Array): void {
    (toServer ? this.server : this.client).handleDatagram(data, this.now);
    this.service();
  }

  private send(data: Uint8Array, toServer: boolean): void {
    this.tap?.(data, toServer);
    const link = toServer ? this.toServer : this.toClient;
    if (link.down || data.length > link.mtu) return;
    if (this.rng.next() < link.lossRate) return;
    const copies = this.rng.next() < link.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + link.delayMs + (link.jitterMs > 0 ? this.rng.next() * link.jitterMs : 0);
      this.push({ at, seq: this.seq++, toServer, data });
    }
  }

  private push(e: InFlight): void {
    const q = this.queue;
    let i = q.length;
    while (i > 0 && (q[i - 1]!.at > e.at || (q[i - 1]!.at === e.at && q[i - 1]!.seq > e.seq))) i--;
    q.splice(i, 0, e);
  }

  /** Collects events, runs the app hooks, drains transmits of both sides. */
  service(): void {
    for (let round = 0; round < 4; round++) {
      let e: ConnectionEvent | null;
      while ((e = this.client.pollEvent()) !== null) this.clientEvents.push(e);
      while ((e = this.server.pollEvent()) !== null) this.serverEvents.push(e);
      this.onClient?.(this);
      this.onServer?.(this);
      let t: Uint8Array | null;
      while ((t = this.poll(this.client)) !== null) this.send(t, true);
      while ((t = this.poll(this.server)) !== null) this.send(t, false);
    }
  }

  /** Advances virtual time to the next event (not beyond `limit`) and processes it; false when none is due. */
  step(limit = Infinity): boolean {
    this.steps++;
    const ct = this.client.nextTimeout() ?? Infinity;
    const st = this.server.nextTimeout() ?? Infinity;
    const qt = this.queue.length > 0 ? this.queue[0]!.at : Infinity;
    const next = Math.min(ct, st, qt);
    if (next > limit) {
      if (limit !== Infinity && limit > this.now) this.now = limit;
      return false;
    }
    if (next === Infinity) return false;
    if (next > this.now) {
      this.now = next;
      this.sameTimeSteps = 0;
    } else if (++this.sameTimeSteps > MAX_SAME_TIME_STEPS) {
      // A deadline that keeps coming due without progress is a core bug (a busy loop in a driver).
      throw new Error(`timer spin at t=${this.now}: client ${ct}, server ${st}, queue ${qt}`);
    }
    if (qt === next) {
      const e = this.queue.shift()!;
      (e.toServer ? this.server : this.client).handleDatagram(e.data, this.now);
    } else if (ct === next) {
      this.client.handleTimeout(this.now);
    } else {
      this.server.handleTimeout(this.now);
    }
    this.service();
    return true;
  }

  /** Runs until `done()` or virtual time passes `untilMs`; returns whether `done()` held. */
  runUntil(done: () => boolean, untilMs: number, maxSteps = 5_000_000): boolean {
    this.service();
    const startSteps = this.steps;
    while (!done()) {
      if (this.now >= untilMs || this.steps - startSteps > maxSteps) return false;
      if (!this.step(untilMs)) return done();
    }
    return true;
  }

  connect(): void {
    const ok = this.runUntil(() => this.client.isConnected && this.server.isConnected, 10_000);
    if (!ok) throw new Error('handshake did not complete');
  }
}

export function sha256(chunks: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** Deterministic pseudo-random bytes. */
export function randomBytes(seed: number, n: number): Uint8Array {
  const rng = new Prng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextU32() & 0xff;
  return out;
}

/** Reads everything readable on `streamId` of `conn` into `sink`. */
export function drain(conn: Connection, streamId: number, sink: Uint8Array[]): number {
  let n = 0;
  let chunk: Uint8Array | null;
  while ((chunk = conn.read(streamId)) !== null) {
    sink.push(chunk);
    n += chunk.length;
  }
  return n;
}
