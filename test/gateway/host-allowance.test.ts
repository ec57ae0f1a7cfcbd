import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HOST_LATENCY_ALLOWANCE_MS, withHostLatencyAllowance } from '../../src/gateway/host-allowance.ts';
import type { RateController } from '../../src/transport/index.ts';

function stub(o: { bandwidthBps: number; pacingBps: number; cwnd: number }): RateController {
  return {
    name: 'stub',
    onPacketSent: () => {},
    onAck: () => {},
    onLoss: () => {},
    pacingRateBps: () => o.pacingBps,
    cwndBytes: () => o.cwnd,
    bandwidthEstimateBps: () => o.bandwidthBps,
  };
}

const allowanceBytes = (bps: number): number => (bps / 8) * (HOST_LATENCY_ALLOWANCE_MS / 1000);

test('on a short path the window is the model plus the host allowance of the estimated bandwidth, also while pacing below it', () => {
  // 1 Gbit/s, 0.4 ms: the model's window is a few packets; pacing in a 0.75 phase.
  const c = withHostLatencyAllowance(() => stub({ bandwidthBps: 1e9, pacingBps: 0.75e9, cwnd: 40_000 }))();
  assert.equal(c.cwndBytes(), 40_000 + allowanceBytes(1e9));
});

test('where the model already spans more than the allowance, the extra shrinks in proportion', () => {
  // 100 Mbit/s, 25 ms: a window of 2 BDPs (625 KB) spans 50 ms, the allowance 8 ms (100 KB).
  const c = withHostLatencyAllowance(() => stub({ bandwidthBps: 100e6, pacingBps: 100e6, cwnd: 625_000 }))();
  const a = allowanceBytes(100e6);
  assert.equal(c.cwndBytes(), 625_000 + (a * a) / 625_000);
  assert.ok(c.cwndBytes() < 625_000 + a / 6);
});

test("startup's pacing rate, above its lagging estimate, keeps 4 ms of itself in the window", () => {
  const pacing = 2.89 * 0.4e9;
  const c = withHostLatencyAllowance(() => stub({ bandwidthBps: 0.1e9, pacingBps: pacing, cwnd: 40_000 }))();
  assert.equal(c.cwndBytes(), (pacing / 8) * 0.004);
});
