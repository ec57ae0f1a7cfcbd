import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../../src/crypto/replay-window.ts';

test('replay window agrees with a set-based model', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 6000 }), { maxLength: 400 }), fc.nat({ max: 2 ** 47 }), (counters, base) => {
      const w = new ReplayWindow();
      const seen = new Set<number>();
      let highest = -1;
      for (const c0 of counters) {
        const c = base + c0;
        const expected = c <= highest && highest - c >= REPLAY_WINDOW_SIZE ? 'too-old' : seen.has(c) ? 'duplicate' : 'fresh';
        const got = w.check(c);
        // The ring may remember a little more than the guaranteed window but never less.
        if (expected === 'fresh') assert.equal(got, 'fresh');
        else if (expected === 'duplicate') assert.equal(got, 'duplicate');
        else assert.notEqual(got, 'fresh');
        if (got === 'fresh') {
          w.accept(c);
          seen.add(c);
          highest = Math.max(highest, c);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('counter 0 is fresh once, large jumps clear the ring', () => {
  const w = new ReplayWindow();
  assert.equal(w.check(0), 'fresh');
  w.accept(0);
  assert.equal(w.check(0), 'duplicate');
  w.accept(1_000_000);
  assert.equal(w.check(0), 'too-old');
  assert.equal(w.check(1_000_000 - 1), 'fresh');
  assert.equal(w.check(1_000_000 - REPLAY_WINDOW_SIZE), 'too-old');
});
