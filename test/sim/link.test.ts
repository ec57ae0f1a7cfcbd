import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Link, type LinkOptions } from '../../src/sim/link.ts';
import { Prng } from '../../src/sim/prng.ts';

interface Arrival {
  time: number;
  id: number;
}

/** A link whose arrivals are recorded instead of scheduled; packet i carries id i in byte 0..3. */
function recordingLink(opts: LinkOptions, seed = 1): { link: Link; arrivals: Arrival[] } {
  const arrivals: Arrival[] = [];
  const link = new Link('test', opts, new Prng(seed), (time, _link, data) => {
    arrivals.push({ time, id: new DataView(data.buffer, data.byteOffset).getUint32(0) });
  });
  return { link, arrivals };
}

function packet(id: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  new DataView(p.buffer).setUint32(0, id);
  return p;
}

test('serialization: a burst leaves at exactly the link rate, after the one-way delay', () => {
  const { link, arrivals } = recordingLink({ rateBps: 10e6, delayMs: 7 });
  for (let i = 0; i < 1000; i++) link.send(packet(i, 1250), 0); // 1250 B at 10 Mbit/s = 1 ms each
  assert.equal(arrivals.length, 1000);
  for (let i = 0; i < 1000; i++) assert.ok(Math.abs(arrivals[i]!.time - (7 + (i + 1))) < 1e-9);
  const s = link.stats();
  assert.equal(s.packetsIn, 1000);
  assert.equal(s.lost + s.queueDrops, 0);
  assert.ok(Math.abs(s.busyMs - 1000) < 1e-6);
  // Queueing delay: packet i waited i ms.
  assert.ok(Math.abs(s.queueDelayMsMean - 499.5) < 1e-6);
  assert.ok(Math.abs(s.queueDelayMsP95 - 950) <= 1);
});

test('paced packets do not queue', () => {
  const { link, arrivals } = recordingLink({ rateBps: 10e6, delayMs: 5 });
  for (let i = 0; i < 100; i++) link.send(packet(i, 1250), i * 1.5);
  assert.equal(arrivals.length, 100);
  assert.equal(link.stats().queueDelayMsMax, 0);
  assert.ok(Math.abs(arrivals[99]!.time - (99 * 1.5 + 1 + 5)) < 1e-9);
});

test('drop-tail queue bounded in bytes', () => {
  const { link, arrivals } = recordingLink({ rateBps: 10e6, delayMs: 1, queueBytes: 10 * 1250 });
  for (let i = 0; i < 100; i++) link.send(packet(i, 1250), 0);
  const s = link.stats();
  assert.equal(arrivals.length, 10);
  assert.equal(s.queueDrops, 90);
  assert.deepEqual(
    arrivals.map((a) => a.id),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  // Once the queue drains, packets are accepted again.
  link.send(packet(100, 1250), 10);
  assert.equal(arrivals.length, 11);
});

test('random loss matches its rate and happens after serialization', () => {
  const { link, arrivals } = recordingLink({ rateBps: 1e9, delayMs: 1, lossRate: 0.03 }, 42);
  const n = 200_000;
  for (let i = 0; i < n; i++) link.send(packet(i, 1000), i * 0.01);
  const s = link.stats();
  assert.equal(s.lost + arrivals.length, n);
  const rate = s.lost / n;
  // 3 standard deviations of a binomial(200000, 0.03) is about 0.0011.
  assert.ok(Math.abs(rate - 0.03) < 0.0015, `loss rate ${rate}`);
  assert.ok(Math.abs(s.busyMs - n * 0.008) < 1e-6, 'lost packets used the link');
});

test('jitter preserves order by default and stays within the delay bounds', () => {
  const { link, arrivals } = recordingLink({ rateBps: 100e6, delayMs: 12.5, jitterMs: 3 }, 7);
  for (let i = 0; i < 10_000; i++) link.send(packet(i, 1250), i * 0.1);
  let spread = 0;
  for (let i = 0; i < arrivals.length; i++) {
    const a = arrivals[i]!;
    assert.equal(a.id, i);
    if (i > 0) assert.ok(a.time >= arrivals[i - 1]!.time);
    const oneWay = a.time - (i * 0.1 + 0.1);
    assert.ok(oneWay >= 12.5 - 3 - 1e-9 && oneWay <= 12.5 + 3 + 1e-9, `one-way ${oneWay}`);
    spread = Math.max(spread, oneWay - 9.5);
  }
  assert.ok(spread > 5, 'delays vary');
});

test('reordering and duplication happen at their rates', () => {
  const { link, arrivals } = recordingLink({ rateBps: 1e9, delayMs: 5, reorderRate: 0.05, reorderDelayMs: 2, duplicateRate: 0.02 }, 9);
  const n = 20_000;
  for (let i = 0; i < n; i++) link.send(packet(i, 1000), i * 0.01);
  const s = link.stats();
  assert.ok(Math.abs(s.reordered / n - 0.05) < 0.006, `reordered ${s.reordered}`);
  assert.ok(Math.abs(s.duplicated / n - 0.02) < 0.004, `duplicated ${s.duplicated}`);
  assert.equal(arrivals.length, n + s.duplicated);
  arrivals.sort((a, b) => a.time - b.time);
  let outOfOrder = 0;
  let maxId = -1;
  for (const a of arrivals) {
    if (a.id < maxId) outOfOrder++;
    maxId = Math.max(maxId, a.id);
  }
  assert.ok(outOfOrder > 0.04 * n, `out of order ${outOfOrder}`);
});

test('same seed, same arrivals; another seed, other arrivals', () => {
  const opts: LinkOptions = {
    rateBps: 50e6,
    delayMs: 10,
    jitterMs: 2,
    lossRate: 0.01,
    reorderRate: 0.01,
    reorderDelayMs: 1,
    duplicateRate: 0.01,
    queueBytes: 20_000,
  };
  const run = (seed: number): string => {
    const { link, arrivals } = recordingLink(opts, seed);
    for (let i = 0; i < 5000; i++) link.send(packet(i, 1200), i * 0.15);
    return JSON.stringify([arrivals, link.stats()]);
  };
  assert.equal(run(5), run(5));
  assert.notEqual(run(5), run(6));
});

test('idle accounting: the gaps between packets, not the time before the first, each reported as a spell', () => {
  const { link } = recordingLink({ rateBps: 10e6, delayMs: 5 });
  const spells: Array<[number, number]> = [];
  link.onIdle = (from, to) => spells.push([from, to]);
  link.send(packet(0, 1250), 3); // busy 3..4: the 3 ms before it are not idle time
  link.send(packet(1, 1250), 3.5); // queued behind it: busy 4..5
  link.send(packet(2, 1250), 7); // idle 5..7
  link.send(packet(3, 1250), 10); // idle 8..10
  const s = link.stats();
  assert.deepEqual(spells, [
    [5, 7],
    [8, 10],
  ]);
  assert.ok(Math.abs(s.idleMs - 4) < 1e-9);
  assert.ok(Math.abs(s.busyMs - 4) < 1e-9);
});
