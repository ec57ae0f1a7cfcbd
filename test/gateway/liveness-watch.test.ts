// The restart-detection state machine (src/gateway/liveness.ts) and its wire messages, on a
// virtual clock: when it probes, when it re-handshakes, that it backs off, and that hearing
// from the peer (or not using the association) keeps it quiet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LivenessWatch } from '../../src/gateway/liveness.ts';
import type { LivenessAction } from '../../src/gateway/liveness.ts';
import { LivenessKind, decodeLivenessMessage, encodeLivenessMessage } from '../../src/gateway/liveness-message.ts';

/** Runs ticks every `step` ms from `from` to `to`; returns the times of non-'none' actions. */
function run(
  w: LivenessWatch,
  from: number,
  to: number,
  step: number,
  sample: (now: number) => { lastInputAt: number; inUse: boolean },
): Array<[number, LivenessAction]> {
  const out: Array<[number, LivenessAction]> = [];
  for (let now = from; now <= to; now += step) {
    const a = w.check({ now, rttMs: 10, ...sample(now) });
    if (a !== 'none') out.push([now, a]);
  }
  return out;
}

test('an association in use whose peer went silent: probe at the detection time, then re-handshakes with backoff', () => {
  const w = new LivenessWatch(1000);
  const actions = run(w, 0, 20_000, 50, () => ({ lastInputAt: 0, inUse: true }));
  assert.deepEqual(actions[0], [1000, 'probe']);
  assert.equal(actions[1]![1], 'rehandshake');
  assert.ok(actions[1]![0] >= 1250 && actions[1]![0] <= 1300, `first re-handshake at ${actions[1]![0]}`);
  assert.ok(w.suspect);
  const gaps = actions
    .slice(1)
    .map((a, i, all) => (i === 0 ? 0 : a[0] - all[i - 1]![0]))
    .slice(1);
  assert.deepEqual(gaps, [1000, 2000, 4000, 8000]);
});

test('packets from the peer, or a KNOWN answer, reset the clock; an idle association never probes', () => {
  const w = new LivenessWatch(1000);
  // Input every 400 ms: never silent long enough.
  assert.deepEqual(
    run(w, 0, 10_000, 50, (now) => ({ lastInputAt: now - (now % 400), inUse: true })),
    [],
  );
  // Not in use (nothing awaiting an ack, no streams): silence is just idleness.
  const idle = new LivenessWatch(1000);
  assert.deepEqual(
    run(idle, 0, 10_000, 50, () => ({ lastInputAt: 0, inUse: false })),
    [],
  );
  // Suspect, then the peer answers the probe: back to normal, and the backoff starts over.
  const s = new LivenessWatch(1000);
  run(s, 0, 1500, 50, () => ({ lastInputAt: 0, inUse: true }));
  assert.ok(s.suspect);
  s.heard(1500);
  assert.ok(!s.suspect);
  assert.equal(s.silentMs(1500), 0);
  const again = run(s, 1550, 4000, 50, () => ({ lastInputAt: 0, inUse: true }));
  assert.deepEqual(again[0], [2550, 'probe']);
});

test('silence is counted from when the association was in use, not from the last packet', () => {
  const w = new LivenessWatch(1000);
  // Idle for a minute, then a keepalive goes out at 60 s and is answered 30 ms later.
  const actions = run(w, 0, 70_000, 50, (now) => ({ lastInputAt: now >= 60_050 ? 60_030 : 0, inUse: now >= 60_000 && now < 60_050 }));
  assert.deepEqual(actions, []);
});

test('liveness messages round-trip; anything else is not one', () => {
  for (const kind of [LivenessKind.probe, LivenessKind.known, LivenessKind.unknown]) {
    const m = decodeLivenessMessage(encodeLivenessMessage(kind, 0xdeadbeef, 7));
    assert.deepEqual(m, { kind, cidHi: 0xdeadbeef, cidLo: 7 });
  }
  const good = encodeLivenessMessage(LivenessKind.probe, 1, 2);
  assert.equal(decodeLivenessMessage(good.subarray(0, 9)), null);
  const badKind = Uint8Array.from(good);
  badKind[1] = 9;
  assert.equal(decodeLivenessMessage(badKind), null);
  const transport = Uint8Array.from(good);
  transport[0] = 1; // a transport packet's version byte
  assert.equal(decodeLivenessMessage(transport), null);
});

test('a check before new use of a quiet association: probe now, verdict pending until the peer is heard from', () => {
  const w = new LivenessWatch(1000);
  // Idle, last packet at 0; ticks see nothing to do.
  assert.deepEqual(
    run(w, 0, 3000, 50, () => ({ lastInputAt: 0, inUse: false })),
    [],
  );
  assert.ok(w.quietFor(3000, 0));
  assert.ok(!w.quietFor(3000, 2500), 'heard from recently');
  assert.ok(w.probeNow(3000, 0, 10));
  assert.ok(!w.probeNow(3010, 0, 10), 'one check at a time');
  assert.ok(w.suspect);
  // The old packet does not count as an answer; no answer in 250 ms: re-handshake.
  assert.equal(w.check({ now: 3100, lastInputAt: 0, inUse: true, rttMs: 10 }), 'none');
  assert.ok(w.suspect);
  assert.equal(w.check({ now: 3250, lastInputAt: 0, inUse: true, rttMs: 10 }), 'rehandshake');
  // A packet after the check: verdict "alive".
  assert.equal(w.check({ now: 3300, lastInputAt: 3280, inUse: true, rttMs: 10 }), 'none');
  assert.ok(!w.suspect);
});
