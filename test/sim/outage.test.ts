// A WAN outage in the middle of a transfer (issue #14): the association outlives it (the
// outage budget, not the 30 s it once had), probes often enough while the link is down to
// notice its return at once, and is back near its old rate within 2 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { DEFAULT_PEER_TIMEOUT_MS } from '../../src/gateway/config.ts';
import { findProfile } from '../../src/link/profiles.ts';
import { runBulkTransfer, type ConnectionFactory } from '../../src/sim/scenarios.ts';

const MiB = 1024 * 1024;

// The gateway's transport settings for a silent peer: its default outage budget.
const gatewayLike: ConnectionFactory = (role, now, random) =>
  new Connection({
    role,
    now,
    config: defaultConnectionConfig({
      random,
      idleTimeoutMs: DEFAULT_PEER_TIMEOUT_MS,
      rateController: () => new ModelBasedController({ random }),
    }),
  });

for (const [profileName, outageS, bytes] of [
  ['mpls', 90, 96 * MiB],
  ['metro', 30, 640 * MiB],
] as const) {
  test(`${profileName}: a ${outageS} s outage mid-transfer: byte-exact, resumes within 1 s, above 80% of the old rate within 2 s`, () => {
    const profile = findProfile(profileName)!;
    const atMs = 3_000;
    const endMs = atMs + outageS * 1000;
    const samples: Array<[number, number]> = [];
    const r = runBulkTransfer({
      seed: 21,
      profile,
      bytes,
      streams: 8,
      makeConnection: gatewayLike,
      outages: [{ atMs, durationMs: outageS * 1000 }],
      untilMs: endMs + 60_000,
      onDelivered: (now, total) => samples.push([now, total]),
    });
    assert.deepEqual(r.errors, []);
    assert.ok(r.completed && r.byteExact, 'transfer completed byte-exact');
    const bytesAt = (t: number): number => {
      let b = 0;
      for (const [at, total] of samples)
        if (at <= t) b = total;
        else break;
      return b;
    };
    const rate = (from: number, to: number): number => ((bytesAt(to) - bytesAt(from)) * 8000) / (to - from);
    const before = rate(atMs - 1000, atMs);
    const firstAfter = samples.find(([at]) => at > endMs)?.[0] ?? Infinity;
    const after = rate(endMs + 1500, endMs + 2000);
    assert.ok(before > 0.7 * profile.rateBps, `pre-outage rate ${(before / 1e6).toFixed(0)} Mbit/s`);
    assert.ok(firstAfter - endMs <= 1000, `first bytes ${(firstAfter - endMs).toFixed(0)} ms after the link returned`);
    assert.ok(
      after >= 0.8 * before,
      `rate 1.5-2 s after the outage ${(after / 1e6).toFixed(0)} Mbit/s, before ${(before / 1e6).toFixed(0)}`,
    );
  });
}
