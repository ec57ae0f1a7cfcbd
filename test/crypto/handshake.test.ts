import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handle, Pair, seededKeyPair } from './pair.ts';
import { SecureEndpoint } from '../../src/crypto/secure-endpoint.ts';

const hello = new TextEncoder().encode('hello over the WAN');

test('handshake establishes both sides and data flows both ways', () => {
  const pair = new Pair();
  pair.handshake();
  assert.deepEqual(
    pair.a.events.map((e) => e.type),
    ['established'],
  );
  assert.deepEqual(
    pair.b.events.map((e) => e.type),
    ['established'],
  ); // confirmed by a's keepalive
  assert.ok(pair.a.ep.isEstablished(pair.a.peer) && pair.b.ep.isEstablished(pair.b.peer));

  const ab = pair.transfer(pair.a, hello);
  assert.equal(ab.result?.kind, 'data');
  assert.deepEqual(Buffer.from(pair.b.received[0]!), Buffer.from(hello));
  const ba = pair.transfer(pair.b, hello);
  assert.equal(ba.result?.kind, 'data');
  assert.equal(ba.datagram!.length, hello.length + pair.b.ep.overhead);
  assert.equal(pair.b.ep.peerAddress(pair.b.peer), pair.a.address);
  assert.equal(pair.a.ep.stats().handshakesCompleted, 1);
  assert.equal(pair.b.ep.stats().handshakesCompleted, 1);
  assert.equal(pair.b.ep.stats().packetsOpened, 2); // keepalive + hello
});

test('handshake with matching pre-shared keys succeeds', () => {
  const psk = new Uint8Array(32).fill(7);
  const pair = new Pair({ pskA: psk, pskB: psk });
  pair.handshake();
  assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
});

test('mismatched pre-shared keys cannot establish', () => {
  const pair = new Pair({ pskA: new Uint8Array(32).fill(7), pskB: new Uint8Array(32).fill(8) });
  pair.handshake();
  assert.equal(pair.a.ep.isEstablished(pair.a.peer), false);
  assert.equal(pair.a.ep.stats().handshakesFailed, 1);
  assert.equal(pair.a.ep.seal(pair.a.peer, hello, pair.now), null);
});

test('an initiator not in the allowed list cannot establish or send data', () => {
  const stranger = seededKeyPair(999);
  const pair = new Pair({ bAllows: [stranger.publicKey] });
  pair.handshake();
  assert.equal(pair.b.ep.stats().unknownPeers, 1);
  assert.equal(pair.b.ep.stats().handshakeResponsesSent, 0);
  assert.equal(pair.a.ep.isEstablished(pair.a.peer), false);
  assert.equal(pair.a.ep.seal(pair.a.peer, hello, pair.now), null);
  assert.equal(pair.b.received.length, 0);
});

test('an initiator with the wrong responder key gets nowhere', () => {
  const wrong = seededKeyPair(1234);
  const pair = new Pair({ aExpects: wrong.publicKey });
  pair.handshake();
  // mac1 is keyed to the responder's real static key, so b drops it before any DH.
  assert.equal(pair.b.ep.stats().invalidMac1, 1);
  assert.equal(pair.b.ep.stats().handshakeResponsesSent, 0);
  assert.equal(pair.a.ep.isEstablished(pair.a.peer), false);
});

test('replayed initiation is rejected by its timestamp and does not disturb the session', () => {
  const pair = new Pair();
  const initiation = pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now);
  pair.send(pair.a, initiation);
  const before = pair.b.ep.debugSnapshot();
  pair.now += 1000;
  const r = handle(pair.b.ep, initiation, pair.a.address, pair.now);
  assert.deepEqual(r, { kind: 'dropped', reason: 'stale-timestamp' });
  assert.equal(pair.b.ep.stats().staleTimestamps, 1);
  assert.equal(pair.b.ep.debugSnapshot(), before);
  assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
});

test('handshake retransmits until answered, then gives up after rekeyAttemptMs', () => {
  const pair = new Pair({ limits: { rekeyTimeoutMs: 5000, rekeyAttemptMs: 20_000 } });
  pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now); // lost
  let sent = 0;
  for (let i = 0; i < 10; i++) {
    const t = pair.a.ep.nextTimeout();
    assert.ok(t !== null && t > pair.now);
    pair.now = t;
    pair.a.ep.handleTimeout(pair.now);
    while (pair.a.ep.pollTransmit() !== null) sent++; // all lost
    const failed = pair.a.ep.pollEvent();
    if (failed) {
      assert.equal(failed.type, 'handshake-failed');
      break;
    }
  }
  assert.ok(sent >= 3, `retransmitted ${sent} times`);
  assert.equal(pair.a.ep.stats().handshakeTimeouts, 1);
  assert.equal(pair.a.ep.nextTimeout(), null);
  // A later connect still works.
  pair.handshake();
  assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
});

test('simultaneous initiations from both sides converge: data flows both ways', () => {
  const pair = new Pair();
  const fromA = pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now);
  const fromB = pair.b.ep.connect(pair.b.peer, pair.a.address, pair.now);
  // Both initiations cross on the wire before either response arrives.
  const rB = handle(pair.b.ep, fromA, pair.a.address, pair.now);
  const rA = handle(pair.a.ep, fromB, pair.b.address, pair.now);
  assert.equal(rA.kind, 'reply');
  assert.equal(rB.kind, 'reply');
  if (rA.kind === 'reply') pair.send(pair.a, rA.data);
  if (rB.kind === 'reply') pair.send(pair.b, rB.data);
  for (let i = 0; i < 3; i++) {
    assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
    assert.equal(pair.transfer(pair.b, hello).result?.kind, 'data');
  }
  assert.equal(pair.a.ep.stats().authFailures + pair.b.ep.stats().authFailures, 0);
});

test('a restarted initiator (fresh endpoint, same key) reconnects; its old session is replaced', () => {
  const pair = new Pair();
  pair.handshake();
  assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
  pair.now += 5000;
  pair.wallMs += 5000; // the restarted process's timestamps come from the wall clock
  pair.a.ep = new SecureEndpoint({ staticKey: pair.a.key, peers: [{ publicKey: pair.b.key.publicKey }], wallClockMs: () => pair.wallMs });
  pair.handshake();
  assert.equal(pair.transfer(pair.a, hello).result?.kind, 'data');
  assert.equal(pair.transfer(pair.b, hello).result?.kind, 'data');
});
