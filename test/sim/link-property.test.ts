// Property tests of the simulated link over random options and packet schedules.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Link } from '../../src/sim/link.ts';
import { Prng } from '../../src/sim/prng.ts';

const options = fc.record({
  rateBps: fc.double({ min: 1e6, max: 1e10, noNaN: true }),
  delayMs: fc.double({ min: 0, max: 100, noNaN: true }),
  jitterMs: fc.double({ min: 0, max: 10, noNaN: true }),
  queueBytes: fc.integer({ min: 1500, max: 10_000_000 }),
  lossRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
  overheadBytes: fc.integer({ min: 0, max: 64 }),
});

// Packet sizes and gaps between sends (ms).
const schedule = fc.array(fc.tuple(fc.integer({ min: 1, max: 1500 }), fc.double({ min: 0, max: 2, noNaN: true })), {
  minLength: 1,
  maxLength: 400,
});

test('every packet is delivered once, lost or dropped; FIFO order; never early', () => {
  fc.assert(
    fc.property(options, schedule, fc.integer(), (opts, sched, seed) => {
      const arrivals: Array<{ time: number; id: number }> = [];
      const sentAt: number[] = [];
      const link = new Link('p', opts, new Prng(seed), (time, _l, data) => {
        arrivals.push({ time, id: new DataView(data.buffer, data.byteOffset).getUint32(0) });
      });
      let now = 0;
      sched.forEach(([size, gap], id) => {
        now += gap;
        const p = new Uint8Array(Math.max(4, size));
        new DataView(p.buffer).setUint32(0, id);
        sentAt[id] = now;
        link.send(p, now);
      });
      const s = link.stats();
      assert.equal(s.packetsIn, sched.length);
      assert.equal(arrivals.length + s.lost + s.queueDrops, sched.length);
      for (let i = 0; i < arrivals.length; i++) {
        const a = arrivals[i]!;
        if (i > 0) {
          assert.ok(a.id > arrivals[i - 1]!.id, 'FIFO: ids increase');
          assert.ok(a.time >= arrivals[i - 1]!.time, 'FIFO: times do not go back');
        }
        // Never before the propagation delay minus the jitter amplitude.
        assert.ok(a.time >= sentAt[a.id]! + opts.delayMs - opts.jitterMs - 1e-9);
      }
      // Drop-tail: the queue never holds more than its limit.
      assert.ok(s.queueDelayMsMax * (opts.rateBps / 8000) <= opts.queueBytes + 1e-6);
    }),
    { numRuns: 200 },
  );
});
