import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INITIATION } from '../../src/crypto/wire.ts';
import { handle, Pair, seededKeyPair } from './pair.ts';
import { peerIdOf, SecureEndpoint } from '../../src/crypto/secure-endpoint.ts';

// Builds valid-looking initiations (correct mac1: the attacker knows b's public key) from a
// key b does not accept; the flood is sent from many spoofed source addresses.
function attackerInitiations(pair: Pair, count: number): Uint8Array[] {
  const attacker = new SecureEndpoint({ staticKey: seededKeyPair(4242), peers: [{ publicKey: pair.b.key.publicKey }] });
  const id = peerIdOf(pair.b.key.publicKey);
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) out.push(attacker.connect(id, '198.18.2.2:4500', i));
  return out;
}

test('spoofed handshake flood: cookie replies only, no per-source state, no amplification; legit peer connects', () => {
  const pair = new Pair({ limits: { handshakesPerSecondBeforeCookies: 10 } });
  const flood = attackerInitiations(pair, 300);
  const before = pair.b.ep.debugSnapshot();
  let replyBytes = 0;
  let cookieReplies = 0;
  for (let i = 0; i < 20_000; i++) {
    const source = `198.18.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 50_000)}`;
    const datagram = flood[i % flood.length]!;
    const r = handle(pair.b.ep, datagram, source, pair.now);
    assert.notEqual(r.kind, 'data');
    if (r.kind === 'reply') {
      cookieReplies++;
      assert.ok(r.data.length <= datagram.length, 'no amplification');
      replyBytes += r.data.length;
    }
    if (i % 1000 === 999) pair.now += 1; // the flood arrives within ~20 ms
  }
  const s = pair.b.ep.stats();
  assert.equal(s.cookiesSent, cookieReplies);
  assert.ok(cookieReplies >= 20_000 - 10, `cookie replies ${cookieReplies}`);
  assert.ok(s.handshakesFailed <= 10, 'DH work bounded by the load threshold');
  assert.equal(s.rateLimiterEntries, 0);
  assert.equal(s.halfOpen, 0);
  assert.equal(pair.b.ep.debugSnapshot(), before, 'no association or per-source state');
  assert.ok(replyBytes <= 20_000 * INITIATION.size);

  // Still under load: the legitimate peer gets a cookie, resends with mac2 at once, and connects.
  pair.handshake();
  assert.ok(pair.a.ep.isEstablished(pair.a.peer));
  assert.equal(pair.a.ep.stats().cookiesReceived, 1);
  assert.equal(pair.b.ep.stats().rateLimiterEntries, 1); // only the address-proven source
  assert.equal(pair.transfer(pair.a, new Uint8Array([1, 2, 3])).result?.kind, 'data');
});

test('garbage flood with bad mac1 costs one MAC each and changes nothing', () => {
  const pair = new Pair();
  pair.handshake();
  const before = pair.b.ep.debugSnapshot();
  const junk = new Uint8Array(INITIATION.size);
  junk[0] = 1;
  for (let i = 0; i < 10_000; i++) {
    junk[8 + (i % 100)] = i & 255;
    assert.deepEqual(handle(pair.b.ep, junk, `198.18.9.${i & 255}:9`, pair.now), { kind: 'dropped', reason: 'bad-mac1' });
  }
  assert.equal(pair.b.ep.stats().invalidMac1, 10_000);
  assert.equal(pair.b.ep.debugSnapshot(), before);
});

test('with cookies always required (threshold 0) a handshake takes the extra round trip and works', () => {
  const pair = new Pair({ limits: { handshakesPerSecondBeforeCookies: 0 } });
  pair.handshake();
  assert.ok(pair.a.ep.isEstablished(pair.a.peer));
  assert.equal(pair.b.ep.stats().cookiesSent, 1);
});

test('per-source rate limit applies to address-proven sources under load', () => {
  const pair = new Pair({
    limits: { handshakesPerSecondBeforeCookies: 0, sourceHandshakeBurst: 2, sourceHandshakesPerSecond: 1, minInitiationIntervalMs: 0 },
  });
  pair.handshake(); // cookie + 1 token
  let limited = 0;
  for (let i = 0; i < 5; i++) {
    const init = pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now); // carries the fresh cookie
    const r = handle(pair.b.ep, init, pair.a.address, pair.now);
    if (r.kind === 'dropped' && r.reason === 'rate-limited') limited++;
  }
  assert.equal(limited, 4);
  assert.equal(pair.b.ep.stats().rateLimited, 4);
});
