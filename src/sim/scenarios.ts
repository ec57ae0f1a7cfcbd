// Ready-made simulated experiments over a link profile: one bulk transfer (goodput,
// retransmissions, bottleneck queueing delay, byte-exact check) and two associations
// sharing one bottleneck (fairness). Used by the integration tests and the benchmark.

import type { ConnectionStats, TransportConnection } from '../transport/index.ts';
import { BulkReceiver, BulkSender, DataPool } from './bulk-app.ts';
import type { LinkOptions, LinkStats } from './link.ts';
import { Simulation, linkOptionsFromProfile } from './simulation.ts';
import type { LinkProfile } from '../link/profiles.ts';
import { Prng } from './prng.ts';

export type ConnectionFactory = (role: 'client' | 'server', now: number, random: () => number) => TransportConnection;

export interface BulkScenario {
  seed: number;
  profile: LinkProfile;
  /** Total payload, split evenly over `streams`. */
  bytes: number;
  streams: number;
  makeConnection: ConnectionFactory;
  /** Extra impairments on both directions (reordering, duplication). */
  extra?: Partial<LinkOptions>;
  /** Virtual-time cap, ms (default: 20x the ideal transfer time + 10 s). */
  untilMs?: number;
  maxEvents?: number;
  /** Scheduler stalls of both endpoints (a busy machine), see `Stalls`. */
  stalls?: Stalls;
  /** Called for each spell the forward bottleneck sat idle (see Link.onIdle). */
  onForwardIdle?: (fromMs: number, toMs: number) => void;
  /** WAN outages: both directions drop everything from `atMs` for `durationMs` (virtual time). */
  outages?: ReadonlyArray<{ atMs: number; durationMs: number }>;
  /** Called with the receiver's running byte count whenever bytes arrive. */
  onDelivered?: (nowMs: number, bytes: number) => void;
}

/**
 * Each endpoint stalls (gets no CPU) for `ms` at random moments, on average every `everyMs`
 * (exponential gaps, drawn from the seed). The lab's mpls runs on a shared 2-core machine
 * showed gateway stalls of 20-200 ms every few seconds, which the bare simulator never has.
 */
export interface Stalls {
  everyMs: number;
  ms: number;
}

function scheduleStalls(sim: Simulation, node: number, stalls: Stalls, prng: Prng, untilMs: number): void {
  let t = 0;
  for (;;) {
    t += -Math.log(1 - prng.next()) * stalls.everyMs;
    if (t >= untilMs) return;
    const at = t;
    sim.at(at, () => sim.pause(node, at + stalls.ms));
    t += stalls.ms;
  }
}

export interface BulkResult {
  profile: string;
  bytes: number;
  streams: number;
  completed: boolean;
  /** Every stream's receiver digest equals its sender digest. */
  byteExact: boolean;
  errors: string[];
  /** First byte written to last stream finished, virtual ms. */
  transferMs: number;
  goodputBps: number;
  goodputRatio: number;
  retransmitRatio: number;
  client: ConnectionStats;
  server: ConnectionStats;
  forward: LinkStats;
  reverse: LinkStats;
  virtualMs: number;
  events: number;
  wallSeconds: number;
}

export function runBulkTransfer(sc: BulkScenario): BulkResult {
  const wallStart = performance.now();
  const sim = new Simulation({ seed: sc.seed });
  const rng = new Prng(sc.seed ^ 0xc0ffee);
  const client = sc.makeConnection('client', 0, () => rng.next());
  const server = sc.makeConnection('server', 0, () => rng.next());
  const sizes = splitBytes(sc.bytes, sc.streams);
  const sender = new BulkSender(client, { streamSizes: sizes, seed: sc.seed, pool: new DataPool(sc.seed) });
  const receiver = new BulkReceiver(server, sizes.length);
  const c = sim.addNode(client, { onWake: sender.onWake });
  const s = sim.addNode(server, { onWake: receiver.onWake });
  const base = linkOptionsFromProfile(sc.profile);
  const fwd = sim.createLink('forward', { ...base, ...sc.extra });
  const rev = sim.createLink('reverse', { ...base, ...sc.extra });
  sim.route(c, s, fwd);
  sim.route(s, c, rev);
  if (sc.onForwardIdle) fwd.onIdle = sc.onForwardIdle;
  if (sc.onDelivered) receiver.onBytes = sc.onDelivered;
  for (const o of sc.outages ?? []) {
    sim.at(o.atMs, () => {
      fwd.down = true;
      rev.down = true;
    });
    sim.at(o.atMs + o.durationMs, () => {
      fwd.down = false;
      rev.down = false;
    });
  }
  const idealMs = (sc.bytes * 8000) / sc.profile.rateBps;
  const until = sc.untilMs ?? 20 * idealMs + 10_000;
  if (sc.stalls) {
    const stallRng = new Prng(sc.seed ^ 0x57a11);
    // Stalls cover the transfer's likely span, not the whole cap: one event each, up front.
    const span = Math.min(until, 3 * idealMs + 10_000);
    scheduleStalls(sim, c, sc.stalls, stallRng, span);
    scheduleStalls(sim, s, sc.stalls, stallRng, span);
  }
  const r = sim.run({ until, maxEvents: sc.maxEvents, stopWhen: () => receiver.done || client.isClosed || server.isClosed });
  const completed = receiver.done;
  const transferMs = completed ? receiver.doneAt - sender.startedAt : r.now - sender.startedAt;
  const delivered = completed ? sc.bytes : receiver.bytesReceived;
  const goodputBps = transferMs > 0 ? (delivered * 8000) / transferMs : 0;
  const sd = sender.digests();
  const rd = receiver.digests();
  const byteExact = completed && sd.size === sizes.length && [...sd].every(([id, d]) => d !== '' && rd.get(id) === d);
  const cs = client.stats();
  const errors = [...sender.errors, ...receiver.errors];
  if (client.isClosed || server.isClosed) errors.push(`closed: ${JSON.stringify(sender.closed ?? receiver.closed)}`);
  if (!completed) errors.push(`incomplete after ${r.now.toFixed(0)} ms (${r.reason}): ${receiver.bytesReceived}/${sc.bytes} bytes`);
  return {
    profile: sc.profile.name,
    bytes: sc.bytes,
    streams: sizes.length,
    completed,
    byteExact,
    errors,
    transferMs,
    goodputBps,
    goodputRatio: goodputBps / sc.profile.rateBps,
    retransmitRatio: cs.streamBytesSent > 0 ? cs.streamBytesRetransmitted / cs.streamBytesSent : 0,
    client: cs,
    server: server.stats(),
    forward: fwd.stats(),
    reverse: rev.stats(),
    virtualMs: r.now,
    events: r.events,
    wallSeconds: (performance.now() - wallStart) / 1000,
  };
}

export interface FairnessScenario {
  seed: number;
  profile: LinkProfile;
  makeConnection: ConnectionFactory;
  /** The second association starts this much later (ms). */
  staggerMs?: number;
  /** Total run, ms (default 10 s). */
  durationMs?: number;
  /** Shares are measured over the last `windowMs` of the run (default 2 s). */
  windowMs?: number;
}

export interface FairnessResult {
  profile: string;
  durationMs: number;
  windowMs: number;
  /** Each association's share of the bytes delivered in the window. */
  shares: [number, number];
  /** Link utilization by both in the window (delivered payload / link rate). */
  utilization: number;
  /** Per-second delivered payload of each association, bits/s. */
  series: Array<[number, number]>;
  queueDelayMsMean: number;
  queueDelayMsP95: number;
  wallSeconds: number;
}

/** Two associations whose forward paths share one bottleneck link (and the reverse path). */
export function runFairness(sc: FairnessScenario): FairnessResult {
  const wallStart = performance.now();
  const duration = sc.durationMs ?? 10_000;
  const windowMs = sc.windowMs ?? 2_000;
  const stagger = sc.staggerMs ?? 1_000;
  const sim = new Simulation({ seed: sc.seed });
  const rng = new Prng(sc.seed ^ 0xfa1e);
  const base = linkOptionsFromProfile(sc.profile);
  const fwd = sim.createLink('forward', base);
  const rev = sim.createLink('reverse', base);
  // Large enough never to finish within the run.
  const bytes = Math.ceil((sc.profile.rateBps / 8) * (duration / 1000) * 2);
  const seconds = Math.ceil(duration / 1000);
  const perSecond: Array<[number, number]> = Array.from({ length: seconds }, () => [0, 0]);
  const windowBytes: [number, number] = [0, 0];
  const pool = new DataPool(sc.seed);
  for (const k of [0, 1] as const) {
    const startAt = k * stagger;
    sim.at(startAt, () => {
      const client = sc.makeConnection('client', sim.now, () => rng.next());
      const server = sc.makeConnection('server', sim.now, () => rng.next());
      const sender = new BulkSender(client, { streamSizes: [bytes], seed: sc.seed + k, pool });
      const receiver = new BulkReceiver(server, 1);
      let last = 0;
      receiver.onBytes = (now, total) => {
        const got = total - last;
        last = total;
        const sec = Math.floor(now / 1000);
        if (sec < seconds) perSecond[sec]![k] += got;
        if (now >= duration - windowMs) windowBytes[k] += got;
      };
      const c = sim.addNode(client, { onWake: sender.onWake });
      const s = sim.addNode(server, { onWake: receiver.onWake });
      sim.route(c, s, fwd);
      sim.route(s, c, rev);
      sim.wake(c);
    });
  }
  sim.run({ until: duration });
  const total = windowBytes[0] + windowBytes[1];
  const f = fwd.stats();
  return {
    profile: sc.profile.name,
    durationMs: duration,
    windowMs,
    shares: [total > 0 ? windowBytes[0] / total : 0, total > 0 ? windowBytes[1] / total : 0],
    utilization: (total * 8000) / windowMs / sc.profile.rateBps,
    series: perSecond.map(([a, b]) => [a * 8, b * 8]),
    queueDelayMsMean: f.queueDelayMsMean,
    queueDelayMsP95: f.queueDelayMsP95,
    wallSeconds: (performance.now() - wallStart) / 1000,
  };
}

function splitBytes(total: number, streams: number): number[] {
  const n = Math.max(1, Math.floor(streams));
  const each = Math.floor(total / n);
  const sizes = new Array<number>(n).fill(each);
  sizes[n - 1] = total - each * (n - 1);
  return sizes;
}
