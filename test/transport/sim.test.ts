// The core over the seeded network simulator (src/sim) with the default rate controller,
// and random link schedules over the in-memory pair. Deterministic: same seed, same run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import { runBulkTransfer } from '../../src/sim/scenarios.ts';
import { findProfile } from '../../src/link/profiles.ts';
import { Pair } from './helpers.ts';
import { decodeFrames } from '../../src/transport/frame.ts';
import { HEADER_SIZE } from '../../src/transport/packet.ts';
import { Reader, Writer } from './transfer.ts';

const makeConnection = (role: 'client' | 'server', now: number, random: () => number): Connection =>
  new Connection({ role, now, config: defaultConnectionConfig({ random }) });

test('simulated MPLS link with reordering and duplication: many streams byte-exact', () => {
  const r = runBulkTransfer({
    seed: 42,
    profile: findProfile('mpls')!,
    bytes: 8_000_000,
    streams: 16,
    makeConnection,
    extra: { reorderRate: 0.02, reorderDelayMs: 4, duplicateRate: 0.01 },
  });
  assert.deepEqual(r.errors, []);
  assert.ok(r.completed && r.byteExact);
  assert.ok(r.forward.reordered > 0 && r.forward.duplicated > 0, 'the link did reorder and duplicate');
});

test('simulated 1 Gbit/s, 25 ms, 3% loss: byte-exact, retransmissions track the loss', () => {
  const r = runBulkTransfer({ seed: 7, profile: findProfile('loss3')!, bytes: 24_000_000, streams: 4, makeConnection });
  assert.deepEqual(r.errors, []);
  assert.ok(r.completed && r.byteExact);
  const dropped = r.forward.lost + r.forward.queueDrops;
  // Everything declared lost was really lost on the wire or in the queue: no spurious retransmission.
  assert.ok(r.client.packetsLost <= dropped, `declared ${r.client.packetsLost} lost, link dropped ${dropped}`);
});

test('the same seed gives the same run', () => {
  const a = runBulkTransfer({ seed: 3, profile: findProfile('metro')!, bytes: 4_000_000, streams: 3, makeConnection });
  const b = runBulkTransfer({ seed: 3, profile: findProfile('metro')!, bytes: 4_000_000, streams: 3, makeConnection });
  assert.equal(a.events, b.events);
  assert.deepEqual(a.client, b.client);
  assert.deepEqual(a.server, b.server);
});

test('random link schedules (loss, jitter reordering, duplication, delay) deliver byte-exact (property)', () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer({ min: 1, max: 1_000_000 }),
        delayMs: fc.integer({ min: 0, max: 40 }),
        lossRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
        jitterMs: fc.integer({ min: 0, max: 10 }),
        duplicateRate: fc.double({ min: 0, max: 0.1, noNaN: true }),
        sizes: fc.array(fc.integer({ min: 0, max: 60_000 }), { minLength: 1, maxLength: 6 }),
        bidirectional: fc.boolean(),
      }),
      (c) => {
        const p = new Pair({
          seed: c.seed,
          link: { delayMs: c.delayMs, lossRate: c.lossRate, jitterMs: c.jitterMs, duplicateRate: c.duplicateRate },
        });
        // Every datagram either side produces decodes and respects the size ceiling.
        p.tap = (d) => {
          assert.ok(d.length <= 1452 && d.length > HEADER_SIZE, `datagram of ${d.length} bytes`);
          assert.ok(Array.isArray(decodeFrames(d, HEADER_SIZE)), 'undecodable datagram');
        };
        const up = new Writer(c.sizes, c.seed);
        const down = new Writer(c.bidirectional ? c.sizes.slice(0, 2) : [], c.seed + 1);
        const upR = new Reader();
        const downR = new Reader();
        p.onClient = (q) => {
          up.pump(q.client, q.clientEvents);
          downR.pump(q.client, q.clientEvents);
        };
        p.onServer = (q) => {
          down.pump(q.server, q.serverEvents);
          upR.pump(q.server, q.serverEvents);
        };
        const want = c.bidirectional ? Math.min(2, c.sizes.length) : 0;
        const ok = p.runUntil(() => upR.finished.size === c.sizes.length && downR.finished.size === want, 600_000);
        assert.ok(ok, `incomplete: ${JSON.stringify(c)}`);
        assert.deepEqual(upR.digests(), up.digests());
        assert.deepEqual(downR.digests(), down.digests());
      },
    ),
    { numRuns: 25, seed: 20261125 },
  );
});

test('a reordering path widens the loss thresholds: few spurious retransmissions', () => {
  let client: Connection | null = null;
  const r = runBulkTransfer({
    seed: 9,
    profile: findProfile('metro')!,
    bytes: 24_000_000,
    streams: 2,
    extra: { reorderRate: 0.02, reorderDelayMs: 4 },
    makeConnection: (role, now, random) => {
      const c = makeConnection(role, now, random);
      if (role === 'client') client = c;
      return c;
    },
  });
  assert.ok(r.completed && r.byteExact);
  const ext = (client as unknown as Connection).extendedStats();
  assert.ok(r.forward.reordered > 200, `reordered ${r.forward.reordered}`);
  assert.ok(ext.packetThreshold > 3, 'packet threshold adapted');
  assert.ok(ext.spuriousLosses < r.forward.reordered / 5, `spurious ${ext.spuriousLosses} of ${r.forward.reordered} reordered`);
});
