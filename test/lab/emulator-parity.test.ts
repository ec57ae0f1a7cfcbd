// The two engines implement one link model twice (emulator-link.ts and native/lh-emud.c).
// Replaying the same arrivals through both must give the same fate to every packet: same
// drops, same delivery times, same order, same counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { LinkDirection, type DirectionStats, type LinkSettings } from '../../src/lab/emulator-link.ts';
import { NATIVE_BINARY, nativeArgs, nativeEmulatorAvailable } from '../../src/lab/emulator-native.ts';
import { Sfc32 } from '../../src/lab/emulator-rng.ts';

interface Arrival {
  t: number;
  len: number;
}
interface Outcome {
  deliveries: Map<number, number>;
  order: number[];
  stats: DirectionStats;
}

/** Bursty traffic: packets mostly back to back, sometimes a pause. */
function arrivals(n: number, meanGapMs: number, seed: number): Arrival[] {
  const rng = new Sfc32(seed);
  const out: Arrival[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += rng.next() < 0.002 ? 20 + rng.next() * 30 : -Math.log(1 - rng.next()) * meanGapMs;
    out.push({ t, len: rng.next() < 0.7 ? 1472 : 40 + Math.floor(rng.next() * 1400) });
  }
  return out;
}

function runTs(link: LinkSettings, seed: number, input: Arrival[]): Outcome {
  const dir = new LinkDirection<{ length: number; idx: number }>(link, seed, 0);
  const deliveries = new Map<number, number>();
  const order: number[] = [];
  const drain = (t: number): void => {
    while (dir.queued > 0 && dir.nextDueAt() <= t) {
      const due = dir.nextDueAt();
      dir.deliverDue(due, (p) => {
        deliveries.set(p.idx, due);
        order.push(p.idx);
      });
    }
  };
  input.forEach((a, idx) => {
    drain(a.t);
    dir.offer({ length: a.len, idx }, 0, a.t);
  });
  drain(Infinity);
  return { deliveries, order, stats: dir.stats };
}

function runNative(link: LinkSettings, seed: number, input: Arrival[]): Outcome {
  const args = nativeArgs({
    profileName: 'parity',
    link,
    ports: [],
    seed,
    a: { listen: '127.0.0.1', peer: '127.0.0.1' },
    b: { listen: '127.0.0.1', peer: '127.0.0.1' },
    statsIntervalMs: 0,
    reportIntervalMs: 0,
    durationMs: 0,
  });
  const r = spawnSync(NATIVE_BINARY, ['replay=1', ...args], {
    input: `${input.map((a) => `${a.t} ${a.len}`).join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const stats = (JSON.parse(lines.pop()!) as { stats: DirectionStats }).stats;
  const deliveries = new Map<number, number>();
  const order: number[] = [];
  for (const line of lines) {
    const [idx, at] = line.split(' ');
    deliveries.set(Number(idx), Number(at));
    order.push(Number(idx));
  }
  return { deliveries, order, stats };
}

const base: LinkSettings = { rateBps: 0, rttMs: 0, lossRate: 0, jitterMs: 0, queueBytes: 0, reorder: false };
const cases: { name: string; link: LinkSettings; gapMs: number }[] = [
  {
    name: 'mpls-like: 100 Mbit/s overloaded, 25 ms, 0.5% loss, 3 ms jitter, outage',
    link: { ...base, rateBps: 100e6, rttMs: 25, lossRate: 0.005, jitterMs: 3, queueBytes: 250_000, outage: { startMs: 300, endMs: 500 } },
    gapMs: 0.08,
  },
  {
    name: '1 Gbit/s, 10 ms, 1% loss, 2 ms reordering jitter',
    link: { ...base, rateBps: 1e9, rttMs: 10, lossRate: 0.01, jitterMs: 2, queueBytes: 2_500_000, reorder: true },
    gapMs: 0.01,
  },
  { name: 'unlimited rate, no delay, 5% loss', link: { ...base, lossRate: 0.05 }, gapMs: 0.005 },
];

const skip = nativeEmulatorAvailable() ? false : 'native engine not built';

for (const c of cases) {
  test(`TS and native models agree packet for packet: ${c.name}`, { skip }, () => {
    const input = arrivals(30_000, c.gapMs, 5);
    const ts = runTs(c.link, 77, input);
    const nat = runNative(c.link, 77, input);
    assert.deepEqual(nat.stats, ts.stats);
    assert.equal(nat.deliveries.size, ts.deliveries.size);
    assert.deepEqual(nat.order, ts.order);
    for (const [idx, at] of ts.deliveries) {
      const other = nat.deliveries.get(idx);
      assert.ok(other !== undefined && Math.abs(other - at) < 1e-6, `packet ${idx}: ts ${at} ms, native ${other} ms`);
    }
    // The case exercises what it names.
    assert.ok(ts.stats.lost > 0);
    if (c.link.rateBps === 100e6) assert.ok(ts.stats.queueDrops > 0 && ts.stats.outageDrops > 0);
  });
}
