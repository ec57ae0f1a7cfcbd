import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PACKET_CIPHERS, type PacketCipher } from '../../src/crypto/aead.ts';
import { REPLAY_WINDOW_SIZE } from '../../src/crypto/replay-window.ts';
import { handle, Pair } from './pair.ts';

function established(cipher?: PacketCipher): Pair {
  const pair = new Pair(cipher ? { cipher } : {});
  pair.handshake();
  return pair;
}

const payload = (n: number) => new TextEncoder().encode(`packet ${n} `.padEnd(200, '.'));

// Tampering, truncation, replay and reordering are rejected under either cipher.
for (const cipher of PACKET_CIPHERS) {
  test(`${cipher}: tampered packets (every byte position) are rejected and counted; state unchanged; session continues`, () => {
    const pair = established(cipher);
    const datagram = pair.a.ep.seal(pair.a.peer, payload(1), pair.now)!;
    const before = pair.b.ep.debugSnapshot();
    for (let i = 0; i < datagram.length; i++) {
      const bad = Uint8Array.from(datagram);
      bad[i]! ^= 0x40;
      const r = handle(pair.b.ep, bad, pair.a.address, pair.now);
      assert.equal(r.kind, 'dropped', `byte ${i}`);
    }
    const s = pair.b.ep.stats();
    // Bytes 0..3 -> malformed, 4..7 -> unknown index, 14..15 -> counter >= 2^48 (refused before
    // decryption), the rest fail authentication.
    assert.equal(s.malformed, 4);
    assert.equal(s.unknownIndex, 4);
    assert.equal(s.expiredKey, 2);
    assert.equal(s.authFailures, datagram.length - 10);
    assert.equal(pair.b.ep.debugSnapshot(), before);
    assert.equal(pair.send(pair.a, datagram).kind, 'data'); // the original still opens
  });

  test(`${cipher}: truncated and extended packets are rejected`, () => {
    const pair = established(cipher);
    const datagram = pair.a.ep.seal(pair.a.peer, payload(2), pair.now)!;
    const before = pair.b.ep.debugSnapshot();
    for (let len = 0; len < datagram.length; len++) {
      assert.equal(handle(pair.b.ep, datagram.subarray(0, len), pair.a.address, pair.now).kind, 'dropped');
    }
    const extended = new Uint8Array(datagram.length + 1);
    extended.set(datagram);
    assert.deepEqual(handle(pair.b.ep, extended, pair.a.address, pair.now), { kind: 'dropped', reason: 'auth-failed' });
    assert.equal(pair.b.ep.debugSnapshot(), before);
    assert.equal(pair.send(pair.a, datagram).kind, 'data');
  });

  test(`${cipher}: replayed packets are rejected and counted; the session continues`, () => {
    const pair = established(cipher);
    const { datagram, result } = pair.transfer(pair.a, payload(3));
    assert.equal(result?.kind, 'data');
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(handle(pair.b.ep, datagram!, pair.a.address, pair.now), { kind: 'dropped', reason: 'duplicate' });
    }
    assert.equal(pair.b.ep.stats().replays, 5);
    assert.equal(pair.transfer(pair.a, payload(4)).result?.kind, 'data');
  });

  test(`${cipher}: reordering inside the window is accepted; beyond the window rejected and counted`, () => {
    const pair = established(cipher);
    const held: Uint8Array[] = [];
    for (let i = 0; i < 10; i++) held.push(pair.a.ep.seal(pair.a.peer, payload(i), pair.now)!);
    // Advance the receiver REPLAY_WINDOW_SIZE packets past the held ones.
    for (let i = 0; i < REPLAY_WINDOW_SIZE + 5; i++) assert.equal(pair.transfer(pair.a, payload(i)).result?.kind, 'data');
    for (const d of held) {
      assert.deepEqual(handle(pair.b.ep, d, pair.a.address, pair.now), { kind: 'dropped', reason: 'too-old' });
    }
    assert.equal(pair.b.ep.stats().tooOld, held.length);

    // Reordered but within the window: all accepted once, in any order.
    const window: Uint8Array[] = [];
    for (let i = 0; i < 100; i++) window.push(pair.a.ep.seal(pair.a.peer, payload(i), pair.now)!);
    window.reverse();
    for (const d of window) assert.equal(handle(pair.b.ep, d, pair.a.address, pair.now).kind, 'data');
    for (const d of window) assert.equal(handle(pair.b.ep, d, pair.a.address, pair.now).kind, 'dropped');
    assert.equal(pair.transfer(pair.a, payload(5)).result?.kind, 'data');
  });
}

test('packets under an unknown receiver index or of unknown type are dropped', () => {
  const pair = established();
  const d = Uint8Array.from(pair.a.ep.seal(pair.a.peer, payload(6), pair.now)!);
  d[4]! ^= 1;
  assert.deepEqual(handle(pair.b.ep, d, pair.a.address, pair.now), { kind: 'dropped', reason: 'unknown-index' });
  assert.deepEqual(handle(pair.b.ep, new Uint8Array([9, 0, 0, 0, 1, 2]), pair.a.address, pair.now), {
    kind: 'dropped',
    reason: 'malformed',
  });
});

test('rekey after rekeyAfterMessages: new keys take over, in-flight packets under the old keys still open', () => {
  const pair = new Pair({ limits: { rekeyAfterMessages: 50 } });
  pair.handshake();
  const inFlight: Uint8Array[] = [];
  for (let i = 0; i < 60; i++) {
    const d = pair.a.ep.seal(pair.a.peer, payload(i), pair.now)!;
    assert.ok(d);
    inFlight.push(d);
  }
  // Sealing the 50th packet queued a new initiation.
  const tx = pair.a.ep.pollTransmit();
  assert.ok(tx, 'rekey initiation queued');
  pair.now += 100; // b accepts a peer's initiations at most every minInitiationIntervalMs
  pair.send(pair.a, tx.data);
  assert.equal(pair.a.events.at(-1)?.type, 'established');
  assert.deepEqual(pair.a.events.at(-1), { type: 'established', peer: pair.a.peer, address: pair.b.address, rekey: true });
  // Old-key packets delivered after the rekey still decrypt (previous slot).
  for (const d of inFlight) assert.equal(handle(pair.b.ep, d, pair.a.address, pair.now).kind, 'data');
  assert.equal(pair.transfer(pair.a, payload(99)).result?.kind, 'data');
  assert.equal(pair.transfer(pair.b, payload(99)).result?.kind, 'data');
  assert.equal(pair.a.ep.stats().handshakesCompleted, 2);
});

test('rekey after rekeyAfterMs when sending; keys expire after rejectAfterMs', () => {
  const pair = new Pair({ limits: { rekeyAfterMs: 1000, rejectAfterMs: 3000 } });
  pair.handshake();
  pair.now += 1500;
  // transfer() also delivers the initiation this seal queues, and the rest of the handshake.
  assert.equal(pair.transfer(pair.a, payload(1)).result?.kind, 'data');
  assert.equal(pair.a.ep.stats().handshakeInitiationsSent, 2);
  assert.equal(pair.a.ep.stats().handshakesCompleted, 2);
  assert.equal(pair.b.ep.stats().handshakesCompleted, 2);
  // Idle past rejectAfterMs: keys are dropped, seal refuses and starts a handshake.
  pair.now += 5000;
  pair.a.ep.handleTimeout(pair.now);
  pair.b.ep.handleTimeout(pair.now);
  assert.equal(pair.a.ep.isEstablished(pair.a.peer), false);
  assert.equal(pair.a.ep.seal(pair.a.peer, payload(2), pair.now), null);
  const again = pair.a.ep.pollTransmit();
  assert.ok(again);
  pair.send(pair.a, again.data);
  assert.equal(pair.a.ep.stats().handshakesCompleted, 3);
  assert.equal(pair.transfer(pair.a, payload(3)).result?.kind, 'data');
});

test('responder cannot send before the initiator confirms, then can', () => {
  const pair = new Pair();
  const init = pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now);
  const r = handle(pair.b.ep, init, pair.a.address, pair.now);
  assert.equal(r.kind, 'reply');
  assert.equal(pair.b.ep.seal(pair.b.peer, payload(1), pair.now), null);
  assert.equal(pair.b.ep.stats().halfOpen, 1);
  if (r.kind !== 'reply') return;
  handle(pair.a.ep, r.data, pair.b.address, pair.now);
  const confirm = pair.a.ep.pollTransmit()!;
  assert.equal(handle(pair.b.ep, confirm.data, pair.a.address, pair.now).kind, 'handled');
  assert.equal(pair.b.ep.stats().halfOpen, 0);
  assert.ok(pair.b.ep.seal(pair.b.peer, payload(1), pair.now));
});

test('time-based rekey also fires from handleTimeout for keys in use; idle keys are left to expire', () => {
  const pair = new Pair({ limits: { rekeyAfterMs: 1000, rejectAfterMs: 3000 } });
  pair.handshake();
  const due = pair.a.ep.nextTimeout();
  assert.equal(due, pair.now + 1000);
  pair.now += 800; // in use: sealed within the last rekeyAfterMs / 2
  assert.equal(pair.transfer(pair.a, payload(1)).result?.kind, 'data');
  assert.equal(pair.a.ep.stats().handshakeInitiationsSent, 1);
  pair.now = due!;
  pair.timeout(pair.a); // delivers the initiation it queues, and the rest of the handshake
  assert.equal(pair.a.ep.stats().handshakesCompleted, 2);
  assert.equal(pair.b.ep.stats().handshakesCompleted, 2);
  // The new keys are idle: the rekey check runs once, starts nothing, and is not rescheduled.
  pair.now += 1000;
  pair.timeout(pair.a);
  assert.equal(pair.a.ep.stats().handshakeInitiationsSent, 2);
  const next = pair.a.ep.nextTimeout();
  assert.ok(next !== null && next > pair.now, 'no busy loop on a past deadline');
});
