// The C heap seen and trimmed through the lh_udp addon (memory-trim.ts): /status reports it, and
// the once-a-second trim runs only when enough of it is free.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAddon } from '../../src/native/load.ts';
import {
  COLLECT_INTERVAL_MS,
  cHeapStats,
  collectDue,
  collectGarbage,
  trimMemoryIfWorthIt,
  trimThreshold,
} from '../../src/gateway/memory-trim.ts';

const skip = loadAddon('lh_udp').ok ? false : 'the lh_udp addon is not built (make -C native)';

test('the C heap: what is in use and free is reported, and freed memory is given back only past the threshold', { skip }, () => {
  const before = cHeapStats();
  assert.ok(before.inUseBytes > 0, `in use ${before.inUseBytes}`);
  // 64 MiB of ArrayBuffers in the C heap, then dropped: V8 frees them at its next collection.
  let held: Uint8Array[] | null = Array.from({ length: 256 }, () => new Uint8Array(256 * 1024).fill(1));
  const during = cHeapStats();
  assert.ok(during.inUseBytes + during.mmappedBytes > before.inUseBytes, 'the buffers show in the C heap');
  assert.equal(held.length, 256);
  held = null;
  assert.equal(trimMemoryIfWorthIt(Number.POSITIVE_INFINITY), false, 'below the threshold: nothing is trimmed');
});

test('the trim threshold: an eighth of the budget when quiet, half under traffic, a 32nd after the gateway collected garbage near its budget', () => {
  const MiB = 1024 * 1024;
  const budget = 256 * MiB;
  assert.equal(trimThreshold(budget, true, false), 32 * MiB);
  assert.equal(trimThreshold(budget, false, false), 128 * MiB, 'a bulk transfer keeps its free pages');
  assert.equal(trimThreshold(budget, false, true), 8 * MiB, 'what a collection freed goes back, under traffic too');
});

test('collectGarbage frees dead ArrayBuffers at once (64 MiB of them, old enough to be promoted)', async () => {
  let held: Uint8Array[] | null = [];
  // Old enough to survive the young generation's collections, as a gateway's send rings are.
  for (let i = 0; i < 64; i++) held.push(new Uint8Array(1024 * 1024).fill(1));
  const before = process.memoryUsage().arrayBuffers;
  assert.ok(before >= 64 * 1024 * 1024);
  held = null;
  assert.equal(collectGarbage(), true);
  // V8 releases dead buffers' memory on a background sweeper thread after the collection: on a
  // loaded machine (the whole suite on 2 cores) ~11 of the 64 MiB were still counted right after
  // it. What matters is that this collection frees them, not a later one of V8's own: the wait
  // allocates next to nothing, so none runs meanwhile (without the call above the test fails).
  let after = process.memoryUsage().arrayBuffers;
  for (let waited = 0; after >= before - 60 * 1024 * 1024 && waited < 1000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    after = process.memoryUsage().arrayBuffers;
  }
  assert.ok(after < before - 60 * 1024 * 1024, `${before} -> ${after}`);
});

test('a gateway collects garbage itself only near its budget (15/16 of it), with an eighth of it unaccounted for, and not more often than every few seconds', () => {
  const MiB = 1024 * 1024;
  const budget = 256 * MiB;
  const later = COLLECT_INTERVAL_MS;
  assert.equal(collectDue(budget, 270 * MiB, 120 * MiB, 40 * MiB, later), true, 'past the budget, 80 MiB unaccounted');
  assert.equal(collectDue(budget, 245 * MiB, 120 * MiB, 40 * MiB, later), true, 'short of the budget: before it is passed');
  assert.equal(
    collectDue(budget, 220 * MiB, 120 * MiB, 40 * MiB, later),
    false,
    'below 15/16 of it (a bulk transfer peaks at ~200-216 MiB): V8 decides',
  );
  assert.equal(collectDue(budget, 270 * MiB, 60 * MiB, 40 * MiB, later), false, 'the buffers account for nearly all of it');
  assert.equal(collectDue(budget, 270 * MiB, 120 * MiB, 40 * MiB, later - 1), false, 'collected a moment ago');
});
