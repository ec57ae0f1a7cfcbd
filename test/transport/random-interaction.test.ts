// Random interleavings of application calls on both ends over a lossy, reordering link
// (quinn's random_interaction idea): nothing throws, the state machines never spin, and
// every stream that was neither reset nor cut by a close arrives byte-exact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Pair, randomBytes, sha256 } from './helpers.ts';
import type { Connection } from '../../src/transport/connection.ts';

type Op =
  | { op: 'open'; side: 0 | 1; size: number }
  | { op: 'reset'; side: 0 | 1; pick: number; code: number }
  | { op: 'read'; side: 0 | 1; pick: number; max: number }
  | { op: 'finish-reply'; side: 0 | 1; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'outage'; ms: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('open' as const), side: fc.constantFrom(0 as const, 1 as const), size: fc.integer({ min: 0, max: 40_000 }) }),
  fc.record({
    op: fc.constant('reset' as const),
    side: fc.constantFrom(0 as const, 1 as const),
    pick: fc.nat(),
    code: fc.integer({ min: 0, max: 1000 }),
  }),
  fc.record({
    op: fc.constant('read' as const),
    side: fc.constantFrom(0 as const, 1 as const),
    pick: fc.nat(),
    max: fc.integer({ min: 1, max: 5000 }),
  }),
  fc.record({ op: fc.constant('finish-reply' as const), side: fc.constantFrom(0 as const, 1 as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 200 }) }),
  fc.record({ op: fc.constant('outage' as const), ms: fc.integer({ min: 1, max: 4000 }) }),
);

interface Side {
  conn: Connection;
  sending: Map<number, { data: Uint8Array; off: number; finished: boolean }>;
  received: Map<number, Uint8Array[]>;
  finished: Set<number>;
  reset: Set<number>;
}

test('random application interleavings over a bad link (property)', () => {
  let verified = 0;
  let verifiedBytes = 0;
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1e6 }), fc.array(arbOp, { minLength: 5, maxLength: 40 }), (seed, ops) => {
      const p = new Pair({
        seed,
        link: { delayMs: 5, lossRate: 0.05, jitterMs: 4, duplicateRate: 0.03 },
        client: { streamReceiveWindow: 20_000, connectionReceiveWindow: 50_000 },
        server: { streamReceiveWindow: 30_000, connectionReceiveWindow: 60_000, maxStreams: 8 },
      });
      const sides: Side[] = [p.client, p.server].map((conn) => ({
        conn,
        sending: new Map(),
        received: new Map(),
        finished: new Set(),
        reset: new Set(),
      }));
      const seen = [0, 0];
      const pump = (i: 0 | 1): void => {
        const s = sides[i]!;
        const events = i === 0 ? p.clientEvents : p.serverEvents;
        for (; seen[i]! < events.length; seen[i]!++) {
          const e = events[seen[i]!]!;
          if (e.type === 'stream-opened') s.received.set(e.streamId, []);
          if (e.type === 'stream-finished') s.finished.add(e.streamId);
          if (e.type === 'stream-reset') s.reset.add(e.streamId);
        }
        for (const [id, st] of s.sending) {
          while (st.off < st.data.length) {
            const n = s.conn.write(id, st.data.subarray(st.off));
            if (n === 0) break;
            st.off += n;
          }
          if (st.off === st.data.length && !st.finished) {
            s.conn.finish(id);
            st.finished = true;
          }
        }
      };
      p.onClient = () => pump(0);
      p.onServer = () => pump(1);
      p.connect();
      let n = 0;
      for (const o of ops) {
        n++;
        if (o.op === 'advance') {
          p.runUntil(() => false, p.now + o.ms);
          continue;
        }
        if (o.op === 'outage') {
          p.toServer.down = true;
          p.toClient.down = true;
          p.runUntil(() => false, p.now + o.ms);
          p.toServer.down = false;
          p.toClient.down = false;
          continue;
        }
        const s = sides[o.side]!;
        if (o.op === 'open') {
          const id = s.conn.openStream();
          if (id >= 0) {
            s.sending.set(id, { data: randomBytes(seed + n, o.size), off: 0, finished: false });
            s.received.set(id, []);
          }
        } else {
          const ids = [...s.received.keys()];
          if (ids.length === 0) continue;
          const id = ids[o.pick % ids.length]!;
          if (o.op === 'reset') {
            s.conn.resetStream(id, o.code);
            s.reset.add(id);
          } else if (o.op === 'read') {
            const c = s.conn.read(id, o.max);
            if (c) s.received.get(id)!.push(c);
          } else if (!s.sending.has(id)) {
            s.sending.set(id, { data: randomBytes(seed + n, o.pick % 3000), off: 0, finished: false });
          }
        }
        p.service();
      }
      // Drain: everyone reads everything until quiet.
      const drainAll = (): void => {
        for (const s of sides)
          for (const [id, list] of s.received) {
            let c: Uint8Array | null;
            while ((c = s.conn.read(id)) !== null) list.push(c);
          }
      };
      p.onClient = () => {
        pump(0);
        drainAll();
      };
      p.onServer = () => {
        pump(1);
        drainAll();
      };
      p.runUntil(() => false, p.now + 30_000);
      assert.ok(p.client.isConnected && p.server.isConnected, 'association survived');
      for (const [i, s] of sides.entries()) {
        const peer = sides[1 - i]!;
        for (const [id, st] of s.sending) {
          if (s.reset.has(id) || peer.reset.has(id)) continue;
          assert.ok(peer.finished.has(id), `stream ${id} from side ${i} not finished`);
          assert.equal(sha256(peer.received.get(id)!), sha256([st.data]), `stream ${id} from side ${i} differs`);
          verified++;
          verifiedBytes += st.data.length;
        }
      }
    }),
    { numRuns: Number(process.env.LH_FUZZ_RUNS ?? 150), seed: Number(process.env.LH_FUZZ_SEED ?? 77) },
  );
  // The schedules did move data (not only resets and empty streams).
  assert.ok(verified > 100 && verifiedBytes > 1_000_000, `verified ${verified} streams, ${verifiedBytes} bytes`);
});
