// Repeated warnings: the first at once, then at most one per interval, each with the count of
// those left unlogged since the previous line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogLimit } from '../../src/gateway/log-limit.ts';

test('LogLimit: logs the first at once, then one per interval with the count left unlogged', () => {
  const l = new LogLimit(1000);
  assert.equal(l.take(0), 0);
  assert.equal(l.take(10), null);
  assert.equal(l.take(999), null);
  assert.equal(l.take(1000), 2);
  assert.equal(l.take(1500), null);
  assert.equal(l.take(5000), 1);
  assert.equal(l.take(7000), 0);
});
