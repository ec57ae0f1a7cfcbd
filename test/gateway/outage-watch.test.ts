// OutageWatch, sans-IO: silence counts only while the association is in use, from when it was
// first seen in use (an idle spell before a keepalive is not an outage); one 'began' and one
// 'ended' per outage.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutageWatch } from '../../src/gateway/outage.ts';

test('an idle association whose keepalive is answered never counts as unreachable', () => {
  const w = new OutageWatch(2000);
  assert.equal(w.check({ now: 0, lastInputAt: 0, inUse: false }), null);
  // 10 s idle, then a keepalive goes out (in use) and is answered 30 ms later.
  assert.equal(w.check({ now: 10_000, lastInputAt: 0, inUse: true }), null);
  assert.equal(w.check({ now: 11_000, lastInputAt: 10_030, inUse: false }), null);
  assert.equal(w.unreachable, false);
});

test('silence while in use: began after afterMs (since the last packet), ended with the next packet, once each', () => {
  const w = new OutageWatch(2000);
  assert.equal(w.check({ now: 1000, lastInputAt: 1000, inUse: true }), null);
  assert.equal(w.check({ now: 2500, lastInputAt: 1000, inUse: true }), null);
  assert.deepEqual(w.check({ now: 3000, lastInputAt: 1000, inUse: true }), { kind: 'began', since: 1000 });
  assert.equal(w.unreachable, true);
  assert.equal(w.since, 1000);
  assert.equal(w.check({ now: 60_000, lastInputAt: 1000, inUse: true }), null, 'no second line during the outage');
  assert.deepEqual(w.check({ now: 91_500, lastInputAt: 91_000, inUse: true }), { kind: 'ended', since: 1000, lastedMs: 90_000 });
  assert.equal(w.unreachable, false);
  assert.equal(w.since, -1);
});
