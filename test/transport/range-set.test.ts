import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RangeSet } from '../../src/transport/range-set.ts';

function model(ops: Array<[boolean, number, number]>): { set: RangeSet; ref: Set<number>; newCounts: number[]; refNew: number[] } {
  const set = new RangeSet();
  const ref = new Set<number>();
  const newCounts: number[] = [];
  const refNew: number[] = [];
  for (const [isInsert, a, len] of ops) {
    if (isInsert) {
      newCounts.push(set.insert(a, a + len));
      let n = 0;
      for (let v = a; v < a + len; v++)
        if (!ref.has(v)) {
          ref.add(v);
          n++;
        }
      refNew.push(n);
    } else {
      set.remove(a, a + len);
      for (let v = a; v < a + len; v++) ref.delete(v);
    }
  }
  return { set, ref, newCounts, refNew };
}

test('RangeSet matches a Set model under random inserts and removes (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20 })), { maxLength: 60 }),
      (ops) => {
        const { set, ref, newCounts, refNew } = model(ops);
        assert.deepEqual(newCounts, refNew);
        for (let v = 0; v < 230; v++) assert.equal(set.contains(v), ref.has(v), `value ${v}`);
        assert.equal(set.size(), ref.size);
        // Ranges stay sorted, disjoint and non-adjacent.
        for (let i = 0; i < set.count; i++) {
          assert.ok(set.starts[i]! < set.ends[i]!);
          if (i > 0) assert.ok(set.ends[i - 1]! < set.starts[i]!);
        }
      },
    ),
    { numRuns: 1000 },
  );
});

test('RangeSet removeBelow and truncateLow keep the top', () => {
  const s = new RangeSet();
  s.insert(0, 5);
  s.insert(10, 15);
  s.insert(20, 25);
  s.removeBelow(12);
  assert.deepEqual(
    [s.starts, s.ends],
    [
      [12, 20],
      [15, 25],
    ],
  );
  s.truncateLow(1);
  assert.deepEqual([s.starts, s.ends], [[20], [25]]);
});
