import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, type SimNode } from '../../src/sim/simulation.ts';
import { DelayHistogram } from '../../src/sim/histogram.ts';
import { EventQueue } from '../../src/sim/event-queue.ts';

/** Sends `count` numbered packets, one every `intervalMs` (a timer-driven pacer), and records what it receives. */
class Pinger implements SimNode {
  sent = 0;
  readonly received: Array<[number, number]> = [];
  #nextSend: number;
  readonly #count: number;
  readonly #interval: number;
  readonly #echo: boolean;
  #pendingEcho: number[] = [];

  constructor(count: number, intervalMs: number, echo: boolean) {
    this.#count = count;
    this.#interval = intervalMs;
    this.#echo = echo;
    this.#nextSend = count > 0 ? 0 : Infinity;
  }

  handleDatagram(data: Uint8Array, now: number): void {
    const id = new DataView(data.buffer, data.byteOffset).getUint32(0);
    this.received.push([id, now]);
    if (this.#echo) this.#pendingEcho.push(id);
  }

  handleTimeout(_now: number): void {}

  pollTransmit(now: number): { data: Uint8Array } | null {
    const echo = this.#pendingEcho.shift();
    if (echo !== undefined) return { data: packet(echo) };
    if (this.sent < this.#count && now >= this.#nextSend) {
      this.#nextSend += this.#interval;
      return { data: packet(this.sent++) };
    }
    return null;
  }

  nextTimeout(): number | null {
    return this.sent < this.#count ? this.#nextSend : null;
  }
}

function packet(id: number): Uint8Array {
  const p = new Uint8Array(1000);
  new DataView(p.buffer).setUint32(0, id);
  return p;
}

function pingRun(seed: number): { a: Pinger; b: Pinger; sim: Simulation } {
  const sim = new Simulation({ seed });
  const a = new Pinger(500, 0.5, false);
  const b = new Pinger(0, 0, true);
  const ia = sim.addNode(a);
  const ib = sim.addNode(b);
  sim.route(ia, ib, sim.createLink('ab', { rateBps: 20e6, delayMs: 10, jitterMs: 1, lossRate: 0.05, queueBytes: 50_000 }));
  sim.route(ib, ia, sim.createLink('ba', { rateBps: 20e6, delayMs: 10, lossRate: 0.05 }));
  const r = sim.run({ until: 10_000 });
  assert.equal(r.reason, 'idle');
  return { a, b, sim };
}

test('two nodes exchange packets over links in virtual time', () => {
  const { a, b } = pingRun(1);
  assert.equal(a.sent, 500);
  // ~5% lost each way.
  assert.ok(b.received.length > 450 && b.received.length < 500);
  assert.ok(a.received.length > 400 && a.received.length < b.received.length);
  // An echo comes back after two one-way delays plus serialization and at most jitter.
  const [id, at] = a.received[0]!;
  const sentAt = id * 0.5;
  assert.ok(at - sentAt >= 19 && at - sentAt <= 21.5, `rtt ${at - sentAt}`);
});

test('same seed, same run; another seed, another run', () => {
  const x = pingRun(3);
  const y = pingRun(3);
  const z = pingRun(4);
  assert.deepEqual(x.a.received, y.a.received);
  assert.equal(x.sim.events, y.sim.events);
  assert.notDeepEqual(x.a.received, z.a.received);
});

test('run stops at until, at stopWhen and at maxEvents, and resumes', () => {
  const sim = new Simulation({ seed: 1 });
  const a = new Pinger(100, 1, false);
  const b = new Pinger(0, 0, false);
  const ia = sim.addNode(a);
  const ib = sim.addNode(b);
  sim.route(ia, ib, sim.createLink('ab', { rateBps: 1e9, delayMs: 5 }));
  assert.equal(sim.run({ until: 20 }).reason, 'until');
  assert.equal(sim.now, 20);
  assert.ok(b.received.length >= 14 && b.received.length <= 16);
  assert.equal(sim.run({ stopWhen: () => b.received.length >= 50 }).reason, 'stopped');
  assert.equal(b.received.length, 50);
  assert.equal(sim.run({ maxEvents: 3 }).reason, 'max-events');
  assert.equal(sim.run().reason, 'idle');
  assert.equal(b.received.length, 100);
});

test('scheduled callbacks run in time order and may wake a node', () => {
  const sim = new Simulation({ seed: 1 });
  const log: number[] = [];
  sim.at(5, (now) => log.push(now));
  sim.at(1, (now) => log.push(now));
  sim.at(5, (now) => log.push(now + 0.5));
  sim.run();
  assert.deepEqual(log, [1, 5, 5.5]);
});

test('a node whose timer never makes progress is reported, not spun on forever', () => {
  const sim = new Simulation({ seed: 1 });
  const stuck: SimNode = {
    handleDatagram() {},
    handleTimeout() {},
    pollTransmit: () => null,
    nextTimeout: () => 1,
  };
  sim.addNode(stuck);
  assert.throws(() => sim.run(), /without progress/);
});

test('event queue orders by time, then by insertion', () => {
  const q = new EventQueue();
  const times = [5, 1, 3, 1, 9, 0, 3, 7, 2, 2];
  for (const [i, t] of times.entries()) q.push(t, i, null, null);
  const out: Array<[number, number]> = [];
  for (let e = q.pop(); e; e = q.pop()) {
    out.push([e.time, e.kind]);
    q.release(e);
  }
  assert.deepEqual(out, [
    [0, 5],
    [1, 1],
    [1, 3],
    [2, 8],
    [2, 9],
    [3, 2],
    [3, 6],
    [5, 0],
    [7, 7],
    [9, 4],
  ]);
});

test('delay histogram mean and percentiles', () => {
  const h = new DelayHistogram();
  for (let i = 1; i <= 1000; i++) h.add(i / 100); // 0.01 .. 10 ms
  assert.ok(Math.abs(h.mean - 5.005) < 1e-9);
  assert.ok(Math.abs(h.quantile(0.95) - 9.5) <= 0.011);
  assert.equal(h.max, 10);
});

test('a paused node handles nothing until it resumes, then everything that arrived, in order; links keep running', () => {
  const sim = new Simulation({ seed: 1 });
  const a = new Pinger(20, 1, false); // one packet a ms from t=0
  const b = new Pinger(0, 0, false);
  const ia = sim.addNode(a);
  const ib = sim.addNode(b);
  sim.route(ia, ib, sim.createLink('ab', { rateBps: 1e9, delayMs: 2 }));
  sim.at(5, () => sim.pause(ib, 12)); // the receiver stalls from 5 to 12 ms
  sim.at(14, () => sim.pause(ia, 17.5)); // the sender stalls from 14 to 17.5 ms
  sim.run();
  const ids = b.received.map(([id]) => id);
  assert.deepEqual(
    ids,
    Array.from({ length: 20 }, (_, i) => i),
    'all arrived, in order',
  );
  for (const [id, at] of b.received) {
    // One-way delay + 1000 B at 1 Gbit/s; the four packets due during the sender's stall
    // leave together when it resumes, back to back on the link.
    const arrived = id >= 14 && id <= 17 ? 17.5 + 2 + 0.008 * (id - 13) : id + 2 + 0.008;
    const expected = arrived >= 5 && arrived < 12 ? 12 : arrived;
    assert.ok(Math.abs(at - expected) < 1e-6, `packet ${id} handled at ${at}, expected ${expected}`);
  }
});
