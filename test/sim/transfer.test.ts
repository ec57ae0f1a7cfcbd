// The transport core end to end over the simulator: byte-exact delivery of concurrent
// streams on every report profile and the heavy-loss ones, plus extra impairments.
// Sizes are small so the whole file runs in seconds; the benchmark runs 256 MiB.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { FixedRateController } from '../../src/transport/congestion/fixed-rate.ts';
import { ALL_PROFILES, findProfile, type LinkProfile } from '../../src/link/profiles.ts';
import { runBulkTransfer, runFairness, type BulkResult, type ConnectionFactory } from '../../src/sim/scenarios.ts';

const MiB = 1024 * 1024;

const modelBased: ConnectionFactory = (role, now, random) =>
  new Connection({ role, now, config: defaultConnectionConfig({ random, rateController: () => new ModelBasedController({ random }) }) });

function assertDelivered(r: BulkResult): void {
  assert.deepEqual(r.errors, []);
  assert.ok(r.completed, 'transfer completed');
  assert.ok(r.byteExact, 'every stream hash matches');
  assert.equal(r.server.streamBytesReceived, r.bytes);
}

for (const p of ALL_PROFILES) {
  test(`${p.name}: 16 concurrent streams arrive byte-exact`, () => {
    const bytes = p.rateBps >= 1e9 ? 12 * MiB : 4 * MiB;
    const r = runBulkTransfer({ seed: 11, profile: p, bytes, streams: 16, makeConnection: modelBased });
    assertDelivered(r);
    // Retransmissions stay near the link's loss rate. At these small sizes startup's one
    // overshoot into a drop-tail queue shallower than a BDP weighs up to several percent;
    // the 256 MiB benchmark checks the real target (1.5 x loss + 1%).
    assert.ok(r.retransmitRatio <= 1.5 * p.lossRate + 0.08, `retransmit ratio ${r.retransmitRatio}`);
    // No bufferbloat: the bottleneck queue stays below the base RTT (1 ms on the zero-RTT path).
    assert.ok(r.forward.queueDelayMsMean < Math.max(p.rttMs, 1), `queue delay ${r.forward.queueDelayMsMean} ms`);
  });
}

test('loss, reordering, duplication and jitter together: still byte-exact', () => {
  const p: LinkProfile = { name: 'hostile', description: '', rateBps: 200e6, rttMs: 30, lossRate: 0.02, jitterMs: 2, queueMs: 20 };
  const r = runBulkTransfer({
    seed: 5,
    profile: p,
    bytes: 6 * MiB,
    streams: 24,
    makeConnection: modelBased,
    extra: { reorderRate: 0.02, reorderDelayMs: 4, duplicateRate: 0.01 },
  });
  assertDelivered(r);
  assert.ok(r.forward.reordered > 0 && r.forward.duplicated > 0 && r.forward.lost > 0);
});

test('same seed, same run', () => {
  const p = findProfile('loss3')!;
  const a = runBulkTransfer({ seed: 3, profile: p, bytes: 4 * MiB, streams: 4, makeConnection: modelBased });
  const b = runBulkTransfer({ seed: 3, profile: p, bytes: 4 * MiB, streams: 4, makeConnection: modelBased });
  assertDelivered(a);
  assert.equal(a.transferMs, b.transferMs);
  assert.equal(a.events, b.events);
  assert.deepEqual(a.client, b.client);
  assert.deepEqual(a.forward, b.forward);
});

test('random loss of 1% does not cut the rate: steady goodput near the link rate', () => {
  const p = findProfile('loss1')!;
  const r = runBulkTransfer({ seed: 2, profile: p, bytes: 64 * MiB, streams: 8, makeConnection: modelBased });
  assertDelivered(r);
  // Includes ~0.2 s of handshake and startup in a 0.55 s transfer and ~2% header overhead;
  // a sender that halved its rate per loss would reach a few percent.
  assert.ok(r.goodputRatio > 0.7, `goodput ratio ${r.goodputRatio}`);
  // 1% random loss plus startup's one overshoot (~1.5% of a 64 MiB transfer).
  assert.ok(r.retransmitRatio < 0.035, `retransmit ratio ${r.retransmitRatio}`);
});

test('fixed-rate controller paces at the committed rate through random loss', () => {
  const p = findProfile('loss3')!;
  const fixed: ConnectionFactory = (role, now, random) =>
    new Connection({
      role,
      now,
      config: defaultConnectionConfig({ random, rateController: () => new FixedRateController({ rateBps: 500e6 }) }),
    });
  const r = runBulkTransfer({ seed: 4, profile: p, bytes: 16 * MiB, streams: 4, makeConnection: fixed });
  assertDelivered(r);
  // 500 Mbit/s committed on a 1 Gbit/s link with 3% loss: goodput near 500 x 0.97 x headers.
  assert.ok(r.goodputBps > 0.8 * 500e6 * 0.97 && r.goodputBps < 500e6, `goodput ${r.goodputBps}`);
  assert.equal(r.forward.queueDrops, 0);
});

test('two associations sharing a bottleneck converge to fair shares', () => {
  const p: LinkProfile = { name: 'shared', description: '', rateBps: 100e6, rttMs: 20, lossRate: 0, jitterMs: 0, queueMs: 20 };
  const r = runFairness({ seed: 1, profile: p, makeConnection: modelBased, durationMs: 10_000, windowMs: 2_000 });
  for (const s of r.shares) assert.ok(s >= 0.4 && s <= 0.6, `shares ${r.shares}`);
  assert.ok(r.utilization > 0.85, `utilization ${r.utilization}`);
});
