import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fuzzSetup, mutator } from './fuzz-harness.ts';
import { handle } from './pair.ts';

test('fast-check: random and mutated datagrams never throw, never deliver, never change state', () => {
  const { pair, corpus } = fuzzSetup(3);
  const snapA = pair.a.ep.debugSnapshot();
  const snapB = pair.b.ep.debugSnapshot();
  const arbDatagram = fc.oneof(
    fc.uint8Array({ maxLength: 1500 }),
    fc
      .record({
        index: fc.nat(corpus.length - 1),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        cut: fc.option(fc.nat()),
      })
      .map(({ index, flips, cut }) => {
        const d = Uint8Array.from(corpus[index]!.datagram);
        for (const [pos, x] of flips) if (d.length) d[pos % d.length]! ^= x;
        return { index, datagram: cut === null ? d : d.subarray(0, cut % (d.length + 1)) };
      }),
  );
  fc.assert(
    fc.property(arbDatagram, fc.boolean(), (arb, toA) => {
      const datagram = arb instanceof Uint8Array ? arb : arb.datagram;
      const side = arb instanceof Uint8Array ? (toA ? pair.a : pair.b) : corpus[arb.index]!.side;
      const r = handle(side.ep, datagram, '198.18.77.1:5', pair.now);
      assert.ok(r.kind === 'dropped' || r.kind === 'reply' || r.kind === 'handled', r.kind);
      if (r.kind === 'reply') assert.ok(r.data.length <= datagram.length); // only cookie replies
      assert.equal(pair.a.ep.debugSnapshot(), snapA);
      assert.equal(pair.b.ep.debugSnapshot(), snapB);
    }),
    { numRuns: 3000, seed: 42 },
  );
  // The association is unharmed.
  assert.equal(pair.transfer(pair.a, new Uint8Array([7])).result?.kind, 'data');
  assert.equal(pair.transfer(pair.b, new Uint8Array([8])).result?.kind, 'data');
});

// 1M mutated datagrams (~10 s on the shared 2-core box). `npm run fuzz:crypto` runs the same loop
// with other seeds and reports memory.
test('1M seeded mutations interleaved with a live transfer: no throw, transfer intact, state untouched', () => {
  const { pair, corpus } = fuzzSetup(5);
  const mutate = mutator(11);
  let delivered = 0;
  for (let batch = 0; batch < 1000; batch++) {
    const snapA = pair.a.ep.debugSnapshot();
    const snapB = pair.b.ep.debugSnapshot();
    for (let i = 0; i < 1000; i++) {
      const t = mutate(corpus);
      const r = handle(t.side.ep, t.datagram, t.from, pair.now);
      assert.notEqual(r.kind, 'data');
    }
    assert.equal(pair.a.ep.debugSnapshot(), snapA, `batch ${batch}`);
    assert.equal(pair.b.ep.debugSnapshot(), snapB, `batch ${batch}`);
    const chunk = new Uint8Array(1200).fill(batch & 255);
    const { result } = pair.transfer(pair.a, chunk);
    assert.equal(result?.kind, 'data');
    if (result?.kind === 'data') assert.deepEqual(Buffer.from(result.plaintext), Buffer.from(chunk));
    delivered++;
  }
  assert.equal(delivered, 1000);
  const s = pair.b.ep.stats();
  assert.ok(s.authFailures + s.malformed + s.unknownIndex + s.invalidMac1 + s.replays > 400_000);
});
