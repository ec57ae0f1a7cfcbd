import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gatewayFuzz } from './gateway-fuzz.ts';

// 100k here to keep the suite quick; `npm run fuzz:gateway` throws 1M (about 45 s on the 2-core box).
test('live gateway pair: 100k mutated datagrams while verified transfers run; nothing breaks', async () => {
  const r = await gatewayFuzz({ datagrams: 100_000, maxSeconds: 60, transferBytes: 256 * 1024, seed: 9, fixedRateBps: 50e6 });
  assert.equal(r.datagramsSent, 100_000, 'bounded time not exceeded');
  assert.deepEqual(r.failures, []);
  assert.ok(r.exchangesCompleted >= 1);
  assert.equal(r.exchangesVerified, r.exchangesCompleted);
  assert.ok(r.aliveAfter, 'association usable after the storm');
  assert.ok(r.droppedByGateways >= 90_000, `gateways saw ${r.droppedByGateways}`);
  assert.ok(r.authFailures > 0);
  assert.ok(r.heapMaxMB - r.heapStartMB < 200, `heap grew ${r.heapMaxMB - r.heapStartMB} MB`);
});
