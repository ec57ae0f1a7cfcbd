// The model-based controller against the rate targets where they are hardest: the
// mpls profile (3 ms of jitter makes queueing and delivery-rate samples noisy) and two
// associations sharing one bottleneck, on several seeds. Deterministic (virtual time);
// sizes are a fraction of the benchmark's 256 MiB so the file runs in seconds.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { findProfile, type LinkProfile } from '../../src/link/profiles.ts';
import { runBulkTransfer, runFairness, type ConnectionFactory } from '../../src/sim/scenarios.ts';

const MiB = 1024 * 1024;
const MSS = 1452;

const modelBased: ConnectionFactory = (role, now, random) =>
  new Connection({ role, now, config: defaultConnectionConfig({ random, rateController: () => new ModelBasedController({ random }) }) });

const mpls = findProfile('mpls')!;
const oneGig25: LinkProfile = { name: 'fair-1g-25ms', description: '', rateBps: 1e9, rttMs: 25, lossRate: 0, jitterMs: 0, queueMs: 20 };

for (const seed of [1, 2, 3]) {
  test(`mpls (100 Mbit/s, 25 ms, 3 ms jitter, 0.05% loss), seed ${seed}: goodput >= 95% of the link, no bufferbloat`, () => {
    // 96 MiB is 8 s of link time: startup's share is already as small as in the benchmark.
    const r = runBulkTransfer({ seed, profile: mpls, bytes: 96 * MiB, streams: 8, makeConnection: modelBased });
    assert.deepEqual(r.errors, []);
    assert.ok(r.byteExact, 'byte-exact');
    assert.ok(r.goodputRatio >= 0.95, `goodput ratio ${r.goodputRatio}`);
    assert.ok(r.retransmitRatio <= 1.5 * mpls.lossRate + 0.01, `retransmit ratio ${r.retransmitRatio}`);
    assert.ok(r.forward.queueDelayMsMean < mpls.rttMs, `queue delay ${r.forward.queueDelayMsMean} ms`);
  });
}

for (const p of [oneGig25, mpls]) {
  for (const seed of [1, 2, 3]) {
    test(`${p.name}, seed ${seed}: two associations get 40-60% each within 10 s, link kept full`, () => {
      const r = runFairness({ seed, profile: p, makeConnection: modelBased, durationMs: 10_000, windowMs: 2_000 });
      for (const s of r.shares) assert.ok(s >= 0.4 && s <= 0.6, `shares ${r.shares}`);
      assert.ok(r.utilization > 0.9, `utilization ${r.utilization}`);
      assert.ok(r.queueDelayMsMean < p.rttMs, `queue delay ${r.queueDelayMsMean} ms`);
    });
  }
}

/**
 * One round trip of acks at `rateBps` (delivery-rate samples of that rate), RTT `rttMs`,
 * data in flight what the controller allows. Returns the time at the round's end.
 */
function feedRound(c: ModelBasedController, start: number, rateBps: number, rttMs: number): number {
  const packets = Math.max(1, Math.round((rateBps * rttMs) / 8000 / MSS));
  const step = rttMs / packets;
  const inflight = Math.min(c.cwndBytes(), (c.pacingRateBps() * rttMs) / 8000);
  let now = start;
  for (let i = 0; i < packets; i++) {
    now = start + (i + 1) * step;
    c.onPacketSent(now, MSS, inflight, false);
    c.onAck({
      now,
      rttMs,
      bytesAcked: MSS,
      deliveryRateBps: rateBps,
      isAppLimited: false,
      bytesInFlight: inflight - MSS,
      sentAt: now - rttMs,
    });
  }
  return now;
}

function steady(random?: () => number): { c: ModelBasedController; now: number } {
  const c = new ModelBasedController({ mss: MSS, random });
  let now = 0;
  for (let rate = 5e6; rate < 100e6; rate *= 2) now = feedRound(c, now, rate, 25);
  for (let i = 0; i < 30; i++) now = feedRound(c, now, 100e6, 25);
  assert.equal(c.mode, 'probe-bw');
  return { c, now };
}

test('a standing queue cuts the rate by 15% without an extra drain round, and the rate is back within a few rounds', () => {
  const { c, now: t0 } = steady();
  let now = t0;
  // The link is still 100 Mbit/s but a queue stands: every RTT sample 40% above the minimum.
  const paced: number[] = [];
  let cutAt = -1;
  for (let i = 0; i < 8; i++) {
    now = feedRound(c, now, 100e6, 35);
    paced.push(c.pacingRateBps());
    if (cutAt < 0 && c.cuts > 0) cutAt = i;
  }
  assert.ok(cutAt >= 0, 'the standing queue was detected');
  // Right after the cut: 85% of the measured rate, not 0.75 x 85% (which idled the link).
  const after = paced[cutAt]!;
  assert.ok(after >= 0.84 * 100e6 && after <= 0.86 * 100e6, `pacing after the cut ${after}`);
  // The queue is gone (RTT back at the minimum): bw_hi grows back from 8 packets a round,
  // doubling, so within three rounds the rate is the link's again (cruise phases only).
  for (let i = 0; i < 3; i++) now = feedRound(c, now, 100e6, 25);
  const estimate = c.bandwidthEstimateBps();
  assert.ok(estimate >= 0.99 * 100e6, `estimate three rounds after the queue drained ${estimate}`);
});

function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

for (const [what, random] of [
  ['an injected random source', lcg(7)],
  ['no random source (the ack hash)', undefined],
] as const) {
  test(`with ${what} the probe cycle length varies, so two associations cannot stay in step`, () => {
    const { c, now: t0 } = steady(random);
    let now = t0;
    const probeRounds: number[] = [];
    for (let i = 0; i < 120; i++) {
      now = feedRound(c, now, 100e6, 25);
      if (c.pacingRateBps() > 1.1 * c.bandwidthEstimateBps()) probeRounds.push(i);
    }
    const gaps = new Set<number>();
    for (let i = 1; i < probeRounds.length; i++) {
      const gap = probeRounds[i]! - probeRounds[i - 1]!;
      if (gap > 1) gaps.add(gap);
    }
    assert.ok(probeRounds.length >= 10, `probes ${probeRounds.length}`);
    assert.ok(gaps.size >= 2, `cycle lengths ${[...gaps]}`);
  });
}

/** One round in which the acks of `rttMs` worth of packets at `rateBps` arrive `stallMs` late, spread over the stall. */
function feedStalledRound(c: ModelBasedController, start: number, rateBps: number, rttMs: number, stallMs: number): number {
  const packets = Math.max(1, Math.round((rateBps * rttMs) / 8000 / MSS));
  const span = rttMs + stallMs;
  const inflight = c.cwndBytes();
  // Delivery-rate samples over the stretched interval: what a sender measures when its acks stall.
  const sampled = (packets * MSS * 8000) / span;
  let now = start;
  for (let i = 0; i < packets; i++) {
    now = start + ((i + 1) * span) / packets;
    c.onPacketSent(now, MSS, inflight, false);
    c.onAck({
      now,
      rttMs: span,
      bytesAcked: MSS,
      deliveryRateBps: sampled,
      isAppLimited: false,
      bytesInFlight: inflight - MSS,
      sentAt: now - span,
    });
  }
  return now;
}

test('a stalled ack path (a busy gateway) cuts the model by at most 0.7 x 0.85, not down to the stalled rate', () => {
  const { c, now: t0 } = steady();
  let now = t0;
  let rounds = 0;
  // Each round's acks arrive 150 ms late: the four-round rate reads ~14 Mbit/s on a 100 Mbit/s
  // link, and the long RTTs look like a standing queue.
  while (c.cuts === 0 && rounds++ < 10) now = feedStalledRound(c, now, 100e6, 25, 150);
  assert.ok(c.cuts > 0, 'the long RTTs were read as a standing queue');
  const estimate = c.bandwidthEstimateBps();
  assert.ok(estimate >= 0.7 * 0.85 * 100e6 - 1, `estimate after the cut ${estimate}`);
  assert.ok(estimate <= 0.86 * 100e6, `the cut still cut: ${estimate}`);
});

test('once the pipe is full, data in flight stays within 2 BDP even when acks arrive in large batches', () => {
  const { c, now: t0 } = steady();
  let now = t0;
  for (let r = 0; r < 5; r++) {
    // A round's acks held back 20 ms and then delivered at once (aggregation of most of a BDP).
    const packets = Math.round((100e6 * 25) / 8000 / MSS);
    const inflight = c.cwndBytes();
    now += 20;
    for (let i = 0; i < packets; i++) {
      c.onPacketSent(now, MSS, inflight, false);
      c.onAck({
        now,
        rttMs: 25,
        bytesAcked: MSS,
        deliveryRateBps: 100e6,
        isAppLimited: false,
        bytesInFlight: inflight - MSS,
        sentAt: now - 25,
      });
    }
    now = feedRound(c, now, 100e6, 25);
  }
  const bdp = (c.bandwidthEstimateBps() * c.minRttMs) / 8000;
  assert.ok(c.cwndBytes() <= 2 * bdp + 1, `cwnd ${c.cwndBytes()} vs BDP ${bdp}`);
  assert.ok(c.cwndBytes() >= 1.5 * bdp, `cwnd ${c.cwndBytes()} keeps the 1.5-BDP gain`);
});

test('a burst of queue drops (14% of a round, below the heavy-loss cut) does not inflate the bandwidth estimate', () => {
  const { c, now: t0 } = steady();
  let now = t0;
  const packets = Math.round((100e6 * 25) / 8000 / MSS);
  const lost = Math.round(0.14 * packets);
  const inflight = c.cwndBytes();
  for (let i = 0; i < packets; i++) {
    now += 25 / packets;
    c.onPacketSent(now, MSS, inflight, false);
    if (i < lost) c.onLoss({ now, bytesLost: MSS, bytesInFlight: inflight - MSS, lostPacketSentAt: now - 25 });
    else
      c.onAck({
        now,
        rttMs: 25,
        bytesAcked: MSS,
        deliveryRateBps: 100e6,
        isAppLimited: false,
        bytesInFlight: inflight - MSS,
        sentAt: now - 25,
      });
  }
  for (let i = 0; i < 4; i++) now = feedRound(c, now, 100e6, 25);
  const estimate = c.bandwidthEstimateBps();
  // Random-loss credit is meant for loss that used the link; a queue's burst did not.
  assert.ok(estimate <= 1.01 * 100e6, `estimate after the burst ${estimate}`);
});

test('startup keeps doubling through rounds whose RTT a busy sender inflated while the rate still grows; it leaves once the rate stops growing', () => {
  const c = new ModelBasedController({ mss: MSS });
  let now = feedRound(c, 0, 5e6, 5); // base RTT 5 ms
  // A burst of input keeps the sender busy: its acks are read late, RTTs 3x the base, but the
  // delivery rate still doubles every round: the pipe is not full.
  for (let rate = 10e6; rate <= 640e6; rate *= 2) {
    now = feedRound(c, now, rate, 15);
    assert.equal(c.mode, 'startup', `still in startup at ${rate / 1e6} Mbit/s`);
  }
  // The link is full: the rate stops growing (and the RTT stays up): startup ends within a few rounds.
  for (let i = 0; i < 6 && c.mode === 'startup'; i++) now = feedRound(c, now, 1000e6, 15);
  assert.notEqual(c.mode, 'startup');
  assert.ok(c.bandwidthEstimateBps() >= 0.95e9, `estimate ${c.bandwidthEstimateBps()}`);
});
