// The start-up warm-up (warm-up.ts): two loopback gateway pairs inside the process, one after the
// other, carry its bytes byte-count-exact through a relay that drops some of their datagrams, with
// the datapath settings of the config it is given, and leave nothing behind; a gateway started
// with it forces no garbage collection afterwards (run.ts says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { validateConfig } from '../../src/gateway/config.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { collectGarbage } from '../../src/gateway/memory-trim.ts';
import { runGateway } from '../../src/gateway/run.ts';
import { warmUpDatapath } from '../../src/gateway/warm-up.ts';
import { makeKeys } from './helpers.ts';

const leftovers = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith('longhaul-warm-up-'));

test('the warm-up carries its bytes through a loopback gateway pair and removes its keys', async () => {
  const keys = makeKeys();
  const before = leftovers();
  for (const compression of ['auto', 'none'] as const) {
    const r = validateConfig({
      wan: '127.0.0.1:0',
      key: keys.aKey,
      peers: [{ name: 'b', publicKey: keys.bPub }],
      compression,
      cipher: 'chacha20-poly1305',
    });
    assert.ok(r.ok);
    const w = await warmUpDatapath(r.config);
    assert.equal(w.error, undefined);
    assert.equal(w.ok, true);
    assert.equal(w.passes, 2, 'two passes, through two fresh pairs (warm-up.ts says why)');
    assert.ok(w.dropped > 0, 'its relay dropped datagrams, and every byte still arrived');
    assert.ok(w.ms > 0);
  }
  assert.deepEqual(leftovers(), before, 'its key directory is deleted');
});

test('the warm-up reports a failure instead of throwing (an MTU its pair cannot use)', async () => {
  const keys = makeKeys();
  const r = validateConfig({ wan: '127.0.0.1:0', key: keys.aKey, peers: [{ name: 'b', publicKey: keys.bPub }] });
  assert.ok(r.ok);
  const w = await warmUpDatapath({ ...r.config, mtu: 70000 });
  assert.equal(w.ok, false);
  assert.equal(w.passes, 0);
  assert.match(w.error ?? '', /mtu/);
});

/** Counts the collections forced from JavaScript (gc(), as collectGarbage does) while `body` runs. */
async function forcedCollectionsDuring(body: () => Promise<void>): Promise<number> {
  let forced = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const flags = (e as { detail?: { flags?: number } }).detail?.flags ?? 0;
      if ((flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0) forced++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    await body();
    await new Promise((r) => setTimeout(r, 50)); // gc entries arrive after the collection
  } finally {
    observer.disconnect();
  }
  return forced;
}

test('a gateway started with the warm-up forces no collection (the first transfer after one cost 5-12% more CPU)', async () => {
  // The probe sees a forced collection, so a start that forced one would fail below.
  assert.equal(await forcedCollectionsDuring(async () => void collectGarbage({ trim: false })), 1);
  const keys = makeKeys();
  const r = validateConfig({ wan: '127.0.0.1:0', control: false, key: keys.aKey, peers: [{ name: 'b', publicKey: keys.bPub }] });
  assert.ok(r.ok);
  const forced = await forcedCollectionsDuring(async () => {
    const g = await runGateway(r.config, { logger: createLogger({ level: 'silent' }), warmUp: true });
    await g.stop(0);
  });
  assert.equal(forced, 0);
});
