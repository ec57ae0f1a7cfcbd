// Conformance of the handshake core with the Cacophony test vectors for
// Noise_IKpsk2_25519_ChaChaPoly_SHA256 and Noise_IKpsk2_25519_AESGCM_SHA256 (public-domain vectors,
// vectors/cacophony.txt): with the vector's keys, prologue, psk, ephemerals and payloads, every
// handshake ciphertext, the handshake hash (given for ChaChaPoly), and the transport keys and
// nonces (checked through the vector's transport messages, counters 0 and 1, sealed by every
// per-packet AEAD backend of the cipher) must match byte for byte. The Longhaul framing (type,
// indices, macs) wraps these same Noise messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PacketAead, PacketCipher } from '../../src/crypto/aead.ts';
import { REFERENCE_AEAD } from '../../src/crypto/aead-backend.ts';
import { loadOpensslAead } from '../../src/crypto/aead-openssl.ts';
import {
  consumeInitiatorMessage,
  consumeResponderMessage,
  initialHashFor,
  initiatorMessage,
  NOISE_SUITES,
  responderMessage,
  type LocalIdentity,
  type NoiseSuite,
  type RemoteIdentity,
} from '../../src/crypto/handshake.ts';
import { keyPairFromPrivate } from '../../src/crypto/keys.ts';
import { dh, x25519PrivateKeyObject, x25519PublicKeyObject } from '../../src/crypto/primitives.ts';
import { sodium } from '../../src/crypto/sodium.ts';

const hex = (s: string) => Buffer.from(s, 'hex');
const vector = {
  prologue: hex('4a6f686e2047616c74'),
  psk: hex('54686973206973206d7920417573747269616e20706572737065637469766521'),
  initStatic: hex('e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1'),
  initEphemeral: hex('893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a'),
  initRemoteStatic: hex('31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62'),
  respStatic: hex('4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893'),
  respEphemeral: hex('bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b'),
  messages: [
    [
      '4c756477696720766f6e204d69736573',
      'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79442ec9b09893d0f510791784c10cbc959f25b1766e0def6e301d14fbca1c7790ac829b8b3674f5f649a5f0e98479662cbfbf2b2c47cd4b09fcd266cd29d7cb675f1808849707847840f6d178ec4d3733aa',
    ],
    [
      '4d757272617920526f746862617264',
      '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088439a1b3cebf680b2c74217fcb5eba4ff58a9468cd90c4aca6194f57479b379a7',
    ],
    ['462e20412e20486179656b', 'a8fde7a0accec190cd306c5950d4fd8e04a205ec288aa747d8b347'],
    ['4361726c204d656e676572', '59caddd9984a3bbe24c4fb31a2bd455b7eba3fa0980674b1a3a5f9'],
    ['4a65616e2d426170746973746520536179', '3b9bfebd210c22ba0cff9de79b4007d7a552fffbf92616881faa8a883e25b80258'],
    ['457567656e2042f6686d20766f6e2042617765726b', 'f37512df1043d564d7c46ac85c53d3b6a9a05724bc297e7142808f217561651217fe85b782'],
  ].map(([p, c]) => ({ payload: hex(p!), ciphertext: c! })),
  handshakeHash: '8310f86394dc0dabb40beb8210031556db4403ab1202db7034c526232147a700',
};

// Noise_IKpsk2_25519_AESGCM_SHA256: same keys and payloads; Cacophony gives no handshake hash for it.
const aesGcmCiphertexts = [
  'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79445a1baf339186d7867062b0dd31f5de322d370165d217939b2b7ed9e2bae7840458ea65c2ce1554e0e8077fe7334c4bd514c658fd04d97b86d216f58f59714a7e24144155045c8f36bed85a2cb0fd9af7',
  '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088432fe8d675e949799d2a968211a66cc7ba2b0f4cad8eda3c2bd37eae737bbf88',
  '38cbf3835c78b7802df0dd0d9640ff8575debd0cb61cfb52590da1',
  'ffc365ff6955fc66c5d809b31ac995f812c5770bd29f0df12f0ffd',
  'a7f2828174c4ead2491ffeb77c41c890fd1229ee36f23ccb9066a795daff1cad6b',
  '3b86963d5c0e6e3b4153d77153836606393eefc4e5e6dae97796552d1265839ee3825cb80c',
];

function identity(suite: NoiseSuite, privateRaw: Uint8Array): LocalIdentity {
  const pair = keyPairFromPrivate(privateRaw);
  const publicKey = Buffer.from(pair.publicKey);
  return {
    privateKey: x25519PrivateKeyObject(privateRaw),
    publicKey,
    suite,
    initialHash: initialHashFor(suite, publicKey, vector.prologue),
  };
}

function remoteOf(local: LocalIdentity, remotePublic: Uint8Array): RemoteIdentity {
  const publicKey = Buffer.from(remotePublic);
  const publicKeyObject = x25519PublicKeyObject(publicKey);
  return {
    publicKey,
    publicKeyObject,
    psk: vector.psk,
    staticShared: dh(local.privateKey, publicKeyObject)!,
    initialHash: initialHashFor(local.suite, publicKey, vector.prologue),
  };
}

function transportCiphertext(key: Uint8Array, counter: number, payload: Uint8Array): string {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(counter, 4);
  const out = Buffer.alloc(payload.length + 16);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, payload, null, null, nonce, key);
  return out.toString('hex');
}

test('Cacophony vector Noise_IKpsk2_25519_ChaChaPoly_SHA256 matches byte for byte', () => {
  const suite = NOISE_SUITES['chacha20-poly1305'];
  const initiator = identity(suite, vector.initStatic);
  const responder = identity(suite, vector.respStatic);
  assert.equal(responder.publicKey.toString('hex'), vector.initRemoteStatic.toString('hex'));
  const m = vector.messages;

  const msg1 = initiatorMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), m[0]!.payload, (out) =>
    out.set(vector.initEphemeral),
  );
  assert.ok(msg1);
  assert.equal(msg1.message.toString('hex'), m[0]!.ciphertext);

  const read1 = consumeInitiatorMessage(responder, msg1.message, (pub) =>
    pub.equals(initiator.publicKey) ? remoteOf(responder, pub) : null,
  );
  assert.ok(read1.ok);
  assert.deepEqual(read1.value.timestamp, m[0]!.payload);

  const msg2 = responderMessage(read1.value, m[1]!.payload, (out) => out.set(vector.respEphemeral));
  assert.ok(msg2);
  assert.equal(msg2.message.toString('hex'), m[1]!.ciphertext);

  const read2 = consumeResponderMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), msg1.state, msg2.message);
  assert.ok(read2);
  assert.deepEqual(read2.payload, m[1]!.payload);
  assert.equal(read2.keys.handshakeHash.toString('hex'), vector.handshakeHash);
  assert.equal(msg2.keys.handshakeHash.toString('hex'), vector.handshakeHash);

  // Transport messages alternate initiator, responder, ... with per-direction counters from 0.
  assert.equal(transportCiphertext(read2.keys.sendKey, 0, m[2]!.payload), m[2]!.ciphertext);
  assert.equal(transportCiphertext(msg2.keys.sendKey, 0, m[3]!.payload), m[3]!.ciphertext);
  assert.equal(transportCiphertext(read2.keys.sendKey, 1, m[4]!.payload), m[4]!.ciphertext);
  assert.equal(transportCiphertext(msg2.keys.sendKey, 1, m[5]!.payload), m[5]!.ciphertext);
  assert.deepEqual(read2.keys.recvKey, msg2.keys.sendKey);
});

/** Transport message = the packet AEAD with an empty header (no AAD), as every backend of the cipher seals it. */
function transportWith(aead: PacketAead, key: Uint8Array, counter: number, payload: Uint8Array): string {
  const k = aead.create(key);
  const out = new Uint8Array(payload.length + 16);
  aead.seal(k, counter, out, 0, payload);
  const opened = Uint8Array.from(out);
  assert.equal(aead.open(k, counter, opened, 0, null), payload.length);
  assert.deepEqual(opened.subarray(0, payload.length), Uint8Array.from(payload));
  aead.free(k);
  return Buffer.from(out).toString('hex');
}

function backendsOf(cipher: PacketCipher): PacketAead[] {
  const openssl = loadOpensslAead();
  return openssl.ok ? [openssl.aeads[cipher], REFERENCE_AEAD[cipher]] : [REFERENCE_AEAD[cipher]];
}

test('Cacophony vector Noise_IKpsk2_25519_AESGCM_SHA256 matches byte for byte (handshake, keys, big-endian nonces)', () => {
  const suite = NOISE_SUITES['aes-256-gcm'];
  assert.equal(suite.protocolName, 'Noise_IKpsk2_25519_AESGCM_SHA256');
  const initiator = identity(suite, vector.initStatic);
  const responder = identity(suite, vector.respStatic);
  const m = vector.messages;

  const msg1 = initiatorMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), m[0]!.payload, (out) =>
    out.set(vector.initEphemeral),
  );
  assert.ok(msg1);
  assert.equal(msg1.message.toString('hex'), aesGcmCiphertexts[0]);
  const read1 = consumeInitiatorMessage(responder, msg1.message, (pub) =>
    pub.equals(initiator.publicKey) ? remoteOf(responder, pub) : null,
  );
  assert.ok(read1.ok);
  assert.deepEqual(read1.value.timestamp, m[0]!.payload);

  const msg2 = responderMessage(read1.value, m[1]!.payload, (out) => out.set(vector.respEphemeral));
  assert.ok(msg2);
  assert.equal(msg2.message.toString('hex'), aesGcmCiphertexts[1]);
  const read2 = consumeResponderMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), msg1.state, msg2.message);
  assert.ok(read2);
  assert.deepEqual(read2.payload, m[1]!.payload);
  assert.deepEqual(read2.keys.handshakeHash, msg2.keys.handshakeHash);

  // Counter 1 tells the nonce layouts apart: a little-endian counter would give other bytes.
  for (const aead of backendsOf('aes-256-gcm')) {
    assert.equal(transportWith(aead, read2.keys.sendKey, 0, m[2]!.payload), aesGcmCiphertexts[2], aead.name);
    assert.equal(transportWith(aead, msg2.keys.sendKey, 0, m[3]!.payload), aesGcmCiphertexts[3], aead.name);
    assert.equal(transportWith(aead, read2.keys.sendKey, 1, m[4]!.payload), aesGcmCiphertexts[4], aead.name);
    assert.equal(transportWith(aead, msg2.keys.sendKey, 1, m[5]!.payload), aesGcmCiphertexts[5], aead.name);
  }
});

test('ChaChaPoly transport messages of the vector through every ChaCha20-Poly1305 packet backend', () => {
  const suite = NOISE_SUITES['chacha20-poly1305'];
  const initiator = identity(suite, vector.initStatic);
  const responder = identity(suite, vector.respStatic);
  const m = vector.messages;
  const msg1 = initiatorMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), m[0]!.payload, (out) =>
    out.set(vector.initEphemeral),
  )!;
  const read1 = consumeInitiatorMessage(responder, msg1.message, (pub) => remoteOf(responder, pub));
  assert.ok(read1.ok);
  const msg2 = responderMessage(read1.value, m[1]!.payload, (out) => out.set(vector.respEphemeral))!;
  const read2 = consumeResponderMessage(initiator, remoteOf(initiator, vector.initRemoteStatic), msg1.state, msg2.message)!;
  for (const aead of backendsOf('chacha20-poly1305')) {
    assert.equal(transportWith(aead, read2.keys.sendKey, 0, m[2]!.payload), m[2]!.ciphertext, aead.name);
    assert.equal(transportWith(aead, msg2.keys.sendKey, 0, m[3]!.payload), m[3]!.ciphertext, aead.name);
    assert.equal(transportWith(aead, read2.keys.sendKey, 1, m[4]!.payload), m[4]!.ciphertext, aead.name);
    assert.equal(transportWith(aead, msg2.keys.sendKey, 1, m[5]!.payload), m[5]!.ciphertext, aead.name);
  }
});
