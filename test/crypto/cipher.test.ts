// The configured cipher: both ciphers run the whole protocol end to end through an endpoint pair,
// a cipher mismatch fails the handshake without any association (and the responder says why), and
// the gateway config key / CLI flag select it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PACKET_CIPHER, PACKET_CIPHERS } from '../../src/crypto/aead.ts';
import { REFERENCE_AEAD } from '../../src/crypto/aead-backend.ts';
import { NOISE_SUITES } from '../../src/crypto/handshake.ts';
import { SecureEndpoint } from '../../src/crypto/secure-endpoint.ts';
import { configFromFlags, validateConfig } from '../../src/gateway/config.ts';
import { Pair, seededKeyPair } from './pair.ts';

const payload = (n: number) => Uint8Array.from({ length: 1 + ((n * 97) % 1400) }, (_, i) => (n + i) & 0xff);

for (const cipher of PACKET_CIPHERS) {
  test(`${cipher}: handshake, data both ways, rekey; stats name the cipher`, () => {
    const pair = new Pair({ cipher, limits: { rekeyAfterMessages: 40 } });
    pair.handshake();
    assert.ok(pair.a.ep.isEstablished(pair.a.peer) && pair.b.ep.isEstablished(pair.b.peer));
    for (let i = 0; i < 100; i++) {
      for (const from of [pair.a, pair.b]) {
        const r = pair.transfer(from, payload(i)).result;
        assert.equal(r?.kind, 'data', `packet ${i}`);
        if (r?.kind === 'data') assert.deepEqual(Uint8Array.from(r.plaintext), payload(i));
      }
    }
    const a = pair.a.ep.stats();
    const b = pair.b.ep.stats();
    assert.ok(a.handshakesCompleted >= 2, 'rekeyed under the same cipher');
    assert.equal(a.authFailures + b.authFailures, 0);
    assert.equal(a.cipher, cipher);
    assert.equal(b.cipher, cipher);
  });

  test(`${cipher}: the fallback backend (${REFERENCE_AEAD[cipher].name}) interoperates with the default one`, () => {
    const pair = new Pair({ aeadA: REFERENCE_AEAD[cipher], cipher });
    pair.handshake();
    assert.equal(pair.a.ep.stats().aeadBackend, REFERENCE_AEAD[cipher].name);
    for (let i = 0; i < 30; i++) {
      for (const from of [pair.a, pair.b]) {
        const r = pair.transfer(from, payload(i)).result;
        assert.equal(r?.kind, 'data');
        if (r?.kind === 'data') assert.deepEqual(Uint8Array.from(r.plaintext), payload(i));
      }
    }
  });
}

test('the default cipher is AES-256-GCM, Noise_IKpsk2_25519_AESGCM_SHA256', () => {
  assert.equal(DEFAULT_PACKET_CIPHER, 'aes-256-gcm');
  assert.equal(new Pair().a.ep.stats().cipher, 'aes-256-gcm');
  assert.equal(NOISE_SUITES['aes-256-gcm'].protocolName, 'Noise_IKpsk2_25519_AESGCM_SHA256');
  assert.equal(NOISE_SUITES['chacha20-poly1305'].protocolName, 'Noise_IKpsk2_25519_ChaChaPoly_SHA256');
});

for (const [cipherA, cipherB] of [
  ['aes-256-gcm', 'chacha20-poly1305'],
  ['chacha20-poly1305', 'aes-256-gcm'],
] as const) {
  test(`cipher mismatch (initiator ${cipherA}, responder ${cipherB}): no association, no response, counted as a mismatch`, () => {
    const pair = new Pair({ cipherA, cipherB });
    const before = pair.b.ep.debugSnapshot();
    const r = pair.send(pair.a, pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now));
    assert.deepEqual(r, { kind: 'dropped', reason: 'cipher-mismatch' });
    const b = pair.b.ep.stats();
    assert.equal(b.cipherMismatches, 1);
    assert.equal(b.handshakesFailed, 1);
    assert.equal(b.handshakeResponsesSent, 0);
    assert.equal(b.halfOpen, 0);
    assert.equal(pair.b.ep.debugSnapshot(), before, 'the responder keeps no state');
    assert.equal(pair.a.ep.isEstablished(pair.a.peer), false);
    assert.equal(pair.b.ep.isEstablished(pair.b.peer), false);
    assert.equal(pair.a.ep.seal(pair.a.peer, payload(1), pair.now), null);
    // Retransmissions fail the same way until the attempt gives up.
    pair.now += 6_000;
    pair.timeout(pair.a);
    assert.equal(pair.b.ep.stats().cipherMismatches, 2);
    assert.equal(pair.b.received.length, 0);
  });
}

test('a wrong key under the same cipher is not reported as a cipher mismatch', () => {
  const stranger = seededKeyPair(4242);
  const pair = new Pair({ bAllows: [stranger.publicKey], cipher: 'aes-256-gcm' });
  pair.handshake();
  assert.equal(pair.b.ep.stats().unknownPeers, 1);
  assert.equal(pair.b.ep.stats().cipherMismatches, 0);
  const psk = new Pair({ pskA: new Uint8Array(32).fill(1), pskB: new Uint8Array(32).fill(2) });
  psk.handshake(); // the psk enters at the response, so the initiator is the side that fails
  assert.equal(psk.b.ep.stats().cipherMismatches, 0);
  assert.equal(psk.a.ep.stats().handshakesFailed, 1);
});

test('an injected AEAD backend must match the cipher', () => {
  const key = seededKeyPair(5);
  assert.throws(
    () => new SecureEndpoint({ staticKey: key, peers: [], cipher: 'aes-256-gcm', aead: REFERENCE_AEAD['chacha20-poly1305'] }),
    /cipher/,
  );
  assert.equal(new SecureEndpoint({ staticKey: key, peers: [], aead: REFERENCE_AEAD['chacha20-poly1305'] }).cipher, 'chacha20-poly1305');
});

test('config: cipher defaults to aes-256-gcm, accepts both ciphers, and names the key on a bad value', () => {
  const base = { wan: '0.0.0.0:4500', key: 'a.key', peers: [{ name: 'b', publicKey: 'b.pub' }] };
  const def = validateConfig(base);
  assert.ok(def.ok);
  assert.equal(def.config.cipher, 'aes-256-gcm');
  for (const cipher of PACKET_CIPHERS) {
    const r = validateConfig({ ...base, cipher });
    assert.ok(r.ok);
    assert.equal(r.config.cipher, cipher);
  }
  const bad = validateConfig({ ...base, cipher: 'aes-128-gcm' }, { source: 'site-a.yaml' });
  assert.ok(!bad.ok);
  assert.equal(bad.errors.length, 1);
  assert.match(bad.errors[0]!, /^site-a\.yaml: cipher: expected aes-256-gcm or chacha20-poly1305/);
  const flag = configFromFlags({ wan: '0.0.0.0:4500', key: 'a.key', peerKey: 'b.pub', cipher: 'chacha20-poly1305' });
  assert.ok(flag.ok);
  assert.equal(flag.config.cipher, 'chacha20-poly1305');
  const badFlag = configFromFlags({ wan: '0.0.0.0:4500', key: 'a.key', peerKey: 'b.pub', cipher: 'rot13' });
  assert.ok(!badFlag.ok);
  assert.match(badFlag.errors[0]!, /^cipher: /);
});
