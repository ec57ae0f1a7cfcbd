import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FixedRateController } from '../../src/transport/congestion/fixed-rate.ts';

test('fixed-rate paces at the committed rate whatever happens', () => {
  const c = new FixedRateController({ rateBps: 200e6, mss: 1400 });
  assert.equal(c.pacingRateBps(), 200e6);
  const before = c.cwndBytes();
  assert.ok(before > 0);
  for (let i = 0; i < 1000; i++) {
    c.onPacketSent(i, 1400, 100_000, false);
    c.onAck({ now: i, rttMs: 10, bytesAcked: 1400, deliveryRateBps: 50e6, isAppLimited: false, bytesInFlight: 100_000 });
    c.onLoss({ now: i, bytesLost: 1400 * 10, bytesInFlight: 90_000, lostPacketSentAt: i - 10 });
  }
  assert.equal(c.pacingRateBps(), 200e6);
  assert.equal(c.bandwidthEstimateBps(), 200e6);
  // 3 x rate x minRTT = 3 x 25 MB/s x 10 ms
  assert.equal(c.cwndBytes(), 3 * 25e6 * 0.01);
});

test('fixed-rate window has a floor and follows the minimum RTT', () => {
  const c = new FixedRateController({ rateBps: 1e6, mss: 1000 });
  c.onAck({ now: 0, rttMs: 1, bytesAcked: 1000, deliveryRateBps: 1e6, isAppLimited: false, bytesInFlight: 0 });
  assert.equal(c.cwndBytes(), 16 * 1000);
  const fast = new FixedRateController({ rateBps: 1e9 });
  fast.onAck({ now: 0, rttMs: 30, bytesAcked: 1000, deliveryRateBps: 1e6, isAppLimited: false, bytesInFlight: 0 });
  fast.onAck({ now: 1, rttMs: 20, bytesAcked: 1000, deliveryRateBps: 1e6, isAppLimited: false, bytesInFlight: 0 });
  fast.onAck({ now: 2, rttMs: 40, bytesAcked: 1000, deliveryRateBps: 1e6, isAppLimited: false, bytesInFlight: 0 });
  assert.equal(fast.cwndBytes(), 3 * 125e6 * 0.02);
});

test('fixed-rate rejects a nonsensical rate', () => {
  assert.throws(() => new FixedRateController({ rateBps: 0 }), RangeError);
  assert.throws(() => new FixedRateController({ rateBps: Number.NaN }), RangeError);
});
