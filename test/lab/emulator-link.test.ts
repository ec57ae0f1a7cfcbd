// The link model in isolation (sans-IO, simulated clock): what the emulator promises per
// direction, checked exactly or within statistical bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkDirection, type LinkSettings } from '../../src/lab/emulator-link.ts';
import { WIRE_OVERHEAD_BYTES } from '../../src/link/profiles.ts';
import { parseDuration, parseLoss, parseOutage, parsePorts, parseQueue, parseRate, resolveLink } from '../../src/lab/emulator-config.ts';

const pkt = (len: number): Uint8Array => new Uint8Array(len);

function link(over: Partial<LinkSettings>): LinkSettings {
  return { rateBps: 0, rttMs: 0, lossRate: 0, jitterMs: 0, queueBytes: 1e9, reorder: false, ...over };
}

/** Offers packets at the given times, then drains; returns delivery times (NaN = dropped) by index. */
function simulate(
  settings: LinkSettings,
  arrivals: number[],
  len = 1472,
  seed = 7,
): { at: number[]; dir: LinkDirection<Uint8Array & { idx?: number }> } {
  const dir = new LinkDirection<Uint8Array & { idx?: number }>(settings, seed, 0);
  const at: number[] = new Array(arrivals.length).fill(NaN);
  let now = 0;
  const drain = (t: number): void => {
    while (dir.queued > 0 && dir.nextDueAt() <= t) {
      const due = dir.nextDueAt();
      dir.deliverDue(due, (p) => {
        at[p.idx!] = due;
      });
    }
  };
  arrivals.forEach((t, i) => {
    drain(t);
    now = t;
    const p = Object.assign(pkt(len), { idx: i });
    dir.offer(p, 0, now);
  });
  drain(Infinity);
  return { at, dir };
}

test('one-way delay is half the RTT', () => {
  const { at } = simulate(link({ rttMs: 25 }), [0, 3, 10]);
  assert.deepEqual(at, [12.5, 15.5, 22.5]);
});

test('serialization at the bit rate: back-to-back packets leave one wire time apart', () => {
  const rateBps = 100e6;
  const len = 1472;
  const wireMs = (((len + WIRE_OVERHEAD_BYTES) * 8) / rateBps) * 1000; // 0.12 ms
  const { at } = simulate(link({ rateBps, rttMs: 10 }), [0, 0, 0, 0], len);
  for (const [i, t] of at.entries()) assert.ok(Math.abs(t - (5 + wireMs * (i + 1))) < 1e-9, `packet ${i} at ${t}`);
});

test('sustained overload delivers exactly the link rate and drops the rest at the queue', () => {
  const rateBps = 50e6;
  const len = 1422; // 1450 bytes on the wire
  const queueBytes = 20 * 1450;
  const arrivals = Array.from({ length: 20000 }, (_, i) => i * 0.116); // ~100 Mbit/s offered for 2.3 s
  const { at, dir } = simulate(link({ rateBps, queueBytes }), arrivals, len);
  const delivered = at.filter((t) => !Number.isNaN(t));
  const span = delivered.at(-1)! - delivered[0]!;
  const mbps = ((delivered.length - 1) * 1450 * 8) / (span / 1000) / 1e6;
  assert.ok(Math.abs(mbps - 50) < 0.05, `rate ${mbps}`);
  assert.ok(dir.stats.queueDrops > 9000 && dir.stats.queueDrops < 11000, `queue drops ${dir.stats.queueDrops}`);
  assert.equal(dir.stats.delivered + dir.stats.queueDrops, dir.stats.packetsIn);
  assert.ok(dir.stats.maxQueueBytes <= queueBytes);
});

test('random loss is within binomial bounds over 200k packets and reproducible from the seed', () => {
  const n = 200_000;
  const p = 0.005;
  const arrivals = Array.from({ length: n }, (_, i) => i * 0.01);
  const a = simulate(link({ lossRate: p }), arrivals, 100, 42);
  const b = simulate(link({ lossRate: p }), arrivals, 100, 42);
  const c = simulate(link({ lossRate: p }), arrivals, 100, 43);
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(a.dir.stats.lost - n * p) < 5 * sd, `lost ${a.dir.stats.lost}, expected ${n * p} +- ${5 * sd}`);
  assert.equal(a.dir.stats.lost, b.dir.stats.lost);
  assert.deepEqual(a.at, b.at);
  assert.notDeepEqual(a.at, c.at);
  assert.equal(a.dir.stats.lost + a.dir.stats.delivered, n);
});

test('order-preserving jitter keeps order, keeps the mean delay and varies the delay', () => {
  const arrivals = Array.from({ length: 50_000 }, (_, i) => i * 0.05); // 2.5 s at 20k packets/s
  const { at } = simulate(link({ rttMs: 25, jitterMs: 3 }), arrivals, 200);
  const delays = at.map((t, i) => t - arrivals[i]!);
  for (let i = 1; i < at.length; i++) assert.ok(at[i]! >= at[i - 1]!, `reordered at ${i}`);
  const mean = delays.reduce((s, d) => s + d, 0) / delays.length;
  assert.ok(Math.abs(mean - 12.5) < 0.5, `mean one-way delay ${mean}`);
  assert.ok(Math.min(...delays) >= 12.5 - 3 - 1e-9 && Math.max(...delays) <= 12.5 + 3 + 1e-9);
  assert.ok(Math.max(...delays) - Math.min(...delays) > 3, 'delay must actually vary');
});

test('--reorder jitter reorders packets and stays within the jitter bounds', () => {
  const arrivals = Array.from({ length: 10_000 }, (_, i) => i * 0.05);
  const { at } = simulate(link({ rttMs: 20, jitterMs: 2, reorder: true }), arrivals, 200);
  let inversions = 0;
  for (let i = 1; i < at.length; i++) if (at[i]! < at[i - 1]!) inversions++;
  assert.ok(inversions > 100, `inversions ${inversions}`);
  for (const [i, t] of at.entries()) assert.ok(t - arrivals[i]! >= 8 - 1e-9 && t - arrivals[i]! <= 12 + 1e-9);
});

test('scheduled outage drops exactly the arrivals inside the window', () => {
  const arrivals = Array.from({ length: 3000 }, (_, i) => i); // 1 packet per ms for 3 s
  const { at, dir } = simulate(link({ rttMs: 10, outage: { startMs: 1000, endMs: 2000 } }), arrivals, 100);
  assert.equal(dir.stats.outageDrops, 1000);
  assert.ok(Number.isNaN(at[1500]!) && !Number.isNaN(at[999]!) && !Number.isNaN(at[2000]!));
});

test('CLI units parse, and bad input is an error value', () => {
  assert.deepEqual(parseRate('100mbit'), { ok: true, value: 100e6 });
  assert.deepEqual(parseRate('1gbit'), { ok: true, value: 1e9 });
  assert.equal(parseRate('fast').ok, false);
  assert.deepEqual(parseDuration('25ms'), { ok: true, value: 25 });
  assert.deepEqual(parseDuration('1.5s'), { ok: true, value: 1500 });
  assert.deepEqual(parseLoss('0.05%'), { ok: true, value: 0.0005 });
  assert.equal(parseLoss('150%').ok, false);
  assert.deepEqual(parseQueue('20ms', 100e6), { ok: true, value: 250000 });
  assert.deepEqual(parseQueue('256kb', 100e6), { ok: true, value: 256000 });
  assert.deepEqual(parseOutage('10s-12s'), { ok: true, value: { startMs: 10000, endMs: 12000 } });
  assert.equal(parseOutage('12s-10s').ok, false);
  assert.deepEqual(parsePorts('4789,4500'), { ok: true, value: [4789, 4500] });
  assert.equal(parsePorts('4789,99999').ok, false);
  const mpls = resolveLink({ profile: 'mpls' });
  assert.ok(mpls.ok && mpls.value.link.rateBps === 100e6 && mpls.value.link.rttMs === 25 && mpls.value.link.jitterMs === 3);
  const custom = resolveLink({ profile: 'mpls', loss: '1%' });
  assert.ok(custom.ok && custom.value.link.lossRate === 0.01 && custom.value.link.rttMs === 25);
  assert.equal(resolveLink({ profile: 'nope' }).ok, false);
});
