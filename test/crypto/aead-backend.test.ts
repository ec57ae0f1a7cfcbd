// The per-packet AEAD backends: the OpenSSL addon (native/lh_aead.c) must produce exactly the
// reference bytes of each cipher (libsodium for ChaCha20-Poly1305, node:crypto for AES-256-GCM),
// reject every tampering, decrypt in place, refuse misuse, and the process must fall back to the
// reference backend when the addon is absent or wrong.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createCipheriv } from 'node:crypto';
import { PACKET_CIPHERS, type AeadKey, type PacketAead } from '../../src/crypto/aead.ts';
import { agreesWithReference, defaultPacketAead, pickAead, REFERENCE_AEAD } from '../../src/crypto/aead-backend.ts';
import { nodeAesGcmAead } from '../../src/crypto/aead-node.ts';
import { loadOpensslAead } from '../../src/crypto/aead-openssl.ts';
import { sodiumAead } from '../../src/crypto/aead-sodium.ts';
import { Keypair } from '../../src/crypto/keypair.ts';
import { handle, Pair } from './pair.ts';

const TAG = 16;
const loaded = loadOpensslAead();
const openssl: PacketAead | null = loaded.ok ? loaded.aeads['chacha20-poly1305'] : null;
const opensslGcm: PacketAead | null = loaded.ok ? loaded.aeads['aes-256-gcm'] : null;
// The addon is built by `npm install` (postinstall); without a C compiler only the fallbacks are tested.
const needsAddon = openssl === null ? `OpenSSL addon not built: ${loaded.ok ? '' : loaded.error}` : false;
const backends: PacketAead[] = [...(openssl && opensslGcm ? [opensslGcm, openssl] : []), nodeAesGcmAead, sodiumAead];
const label = (aead: PacketAead) => `${aead.name} ${aead.cipher}`;

const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 });
const arbCounter = fc.maxSafeNat();
const arbHeader = fc.uint8Array({ minLength: 0, maxLength: 64 });
const arbPlaintext = fc.uint8Array({ minLength: 0, maxLength: 2000 });

function sealWith(aead: PacketAead, key: AeadKey, counter: number, header: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const packet = new Uint8Array(header.length + plaintext.length + TAG);
  packet.set(header);
  assert.equal(aead.seal(key, counter, packet, header.length, plaintext), packet.length);
  return packet;
}

for (const cipher of PACKET_CIPHERS) {
  const reference = REFERENCE_AEAD[cipher];
  test(`OpenSSL addon ${cipher} seals byte-identically to ${reference.name}, and each opens the other's packets`, {
    skip: needsAddon,
  }, () => {
    const o = loaded.ok ? loaded.aeads[cipher] : null;
    assert.ok(o);
    assert.equal(o.cipher, cipher);
    fc.assert(
      fc.property(arbKey, arbCounter, arbHeader, arbPlaintext, (keyBytes, counter, header, plaintext) => {
        const ko = o.create(keyBytes);
        const kr = reference.create(keyBytes);
        const fromOpenssl = sealWith(o, ko, counter, header, plaintext);
        const fromReference = sealWith(reference, kr, counter, header, plaintext);
        assert.deepEqual(fromOpenssl, fromReference);
        const out = new Uint8Array(plaintext.length);
        assert.equal(reference.open(kr, counter, fromOpenssl, header.length, out), plaintext.length);
        assert.deepEqual(out, plaintext);
        out.fill(0);
        assert.equal(o.open(ko, counter, fromReference, header.length, out), plaintext.length);
        assert.deepEqual(out, plaintext);
        o.free(ko);
        reference.free(kr);
      }),
      { numRuns: 400 },
    );
  });
}

test('AES-256-GCM: every backend equals node:crypto aes-256-gcm with nonce 4 zero bytes || counter BE, AAD = header', () => {
  fc.assert(
    fc.property(arbKey, arbCounter, arbHeader, arbPlaintext, (keyBytes, counter, header, plaintext) => {
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64BE(BigInt(counter), 4);
      const c = createCipheriv('aes-256-gcm', keyBytes, nonce, { authTagLength: 16 });
      c.setAAD(header);
      const expected = Buffer.concat([header, c.update(plaintext), c.final(), c.getAuthTag()]);
      for (const aead of backends.filter((b) => b.cipher === 'aes-256-gcm')) {
        const k = aead.create(keyBytes);
        assert.deepEqual(Buffer.from(sealWith(aead, k, counter, header, plaintext)), expected, aead.name);
        aead.free(k);
      }
    }),
    { numRuns: 300 },
  );
});

test('the ChaChaPoly nonce is 4 zero bytes || counter LE (Noise): the addon agrees with libsodium called directly', {
  skip: needsAddon,
}, async () => {
  const { sodium } = await import('../../src/crypto/sodium.ts');
  const key = new Uint8Array(32).fill(9);
  const plaintext = new TextEncoder().encode('counter layout');
  const counter = 0x0102030405 * 256 + 0x06; // bytes 06 05 04 03 02 01 00 00 on the wire
  const nonce = Uint8Array.from([0, 0, 0, 0, 6, 5, 4, 3, 2, 1, 0, 0]);
  const header = new Uint8Array(16).fill(0xaa);
  const expected = new Uint8Array(plaintext.length + TAG);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(expected, plaintext, header, null, nonce, key);
  const k = openssl!.create(key);
  assert.deepEqual(sealWith(openssl!, k, counter, header, plaintext).subarray(16), expected);
});

for (const aead of backends) {
  test(`${label(aead)}: open in place, open into a buffer, seal in place`, () => {
    const key = aead.create(new Uint8Array(32).fill(3));
    const header = Uint8Array.from({ length: 16 }, (_, i) => i);
    const plaintext = Uint8Array.from({ length: 1400 }, (_, i) => (i * 13) & 0xff);
    const sealed = sealWith(aead, key, 5, header, plaintext);

    const untouched = Uint8Array.from(sealed);
    const out = new Uint8Array(1400);
    assert.equal(aead.open(key, 5, untouched, 16, out), 1400);
    assert.deepEqual(out, plaintext);
    assert.deepEqual(untouched, sealed, 'opening into a buffer leaves the packet as it was');

    const inPlace = Uint8Array.from(sealed);
    assert.equal(aead.open(key, 5, inPlace, 16, null), 1400);
    assert.deepEqual(inPlace.subarray(16, 1416), plaintext);
    assert.deepEqual(inPlace.subarray(0, 16), header, 'the header is only read');

    const packet = new Uint8Array(16 + 1400 + TAG);
    packet.set(header);
    packet.set(plaintext, 16);
    assert.equal(aead.seal(key, 5, packet, 16, packet.subarray(16, 1416)), packet.length);
    assert.deepEqual(packet, sealed, 'sealing in place gives the same bytes');

    const empty = sealWith(aead, key, 6, header, new Uint8Array(0));
    assert.equal(empty.length, 32);
    assert.equal(aead.open(key, 6, empty, 16, null), 0, 'an empty payload (keepalive) authenticates');
    aead.free(key);
  });

  test(`${label(aead)}: sealing at an offset of a larger buffer (a send queue) gives the same bytes and touches nothing else`, () => {
    const key = aead.create(new Uint8Array(32).fill(3));
    const header = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);
    for (const [at, len] of [
      [0, 1400],
      [1, 1400],
      [3000, 0],
      [7, 64],
    ] as const) {
      const plaintext = Uint8Array.from({ length: len }, (_, i) => (i * 29 + at) & 0xff);
      const expected = sealWith(aead, key, 9 + at, header, plaintext);
      const queue = new Uint8Array(at + expected.length + 50).fill(0xee);
      queue.set(header, at);
      assert.equal(aead.seal(key, 9 + at, queue, 16, plaintext, at), expected.length);
      assert.deepEqual(queue.subarray(at, at + expected.length), expected, `at ${at}: the packet`);
      assert.ok(
        queue.subarray(0, at).every((b) => b === 0xee) && queue.subarray(at + expected.length).every((b) => b === 0xee),
        `at ${at}: only the packet is written`,
      );
    }
    const small = new Uint8Array(100);
    assert.throws(() => aead.seal(key, 1, small, 16, new Uint8Array(60), 20), RangeError, 'no room after the offset');
    assert.throws(() => aead.seal(key, 1, small, 16, new Uint8Array(0), 101), RangeError, 'offset beyond the buffer');
    aead.free(key);
  });

  test(`${label(aead)}: any flipped bit, a wrong counter or a wrong key fails to open, and the output is zeroed`, () => {
    fc.assert(
      fc.property(
        arbKey,
        arbCounter,
        arbHeader,
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (keyBytes, counter, header, plaintext, where, bit) => {
          const key = aead.create(keyBytes);
          const sealed = sealWith(aead, key, counter, header, plaintext);
          const bad = Uint8Array.from(sealed);
          const at = where % bad.length; // header (AAD), ciphertext or tag
          bad[at]! ^= 1 << bit;
          const out = new Uint8Array(plaintext.length).fill(0xee);
          assert.equal(aead.open(key, counter, bad, header.length, out), -1);
          assert.ok(
            out.every((b) => b === 0),
            'no unauthenticated plaintext left behind',
          );
          const inPlace = Uint8Array.from(bad);
          assert.equal(aead.open(key, counter, inPlace, header.length, null), -1);
          assert.ok(inPlace.subarray(header.length, header.length + plaintext.length).every((b) => b === 0));

          const otherCounter = counter === 0 ? 1 : counter - 1;
          assert.equal(aead.open(key, otherCounter, Uint8Array.from(sealed), header.length, null), -1);
          const otherKeyBytes = Uint8Array.from(keyBytes);
          otherKeyBytes[0]! ^= 0x80;
          const otherKey = aead.create(otherKeyBytes);
          assert.equal(aead.open(otherKey, counter, Uint8Array.from(sealed), header.length, null), -1);
          // A header length that moves the AAD/ciphertext boundary is a different message.
          if (header.length > 0) assert.equal(aead.open(key, counter, Uint8Array.from(sealed), header.length - 1, null), -1);
          assert.equal(aead.open(key, counter, Uint8Array.from(sealed), header.length, null), plaintext.length);
          aead.free(key);
          aead.free(otherKey);
        },
      ),
      { numRuns: 300 },
    );
  });

  test(`${label(aead)}: packets shorter than header + tag do not open; misuse throws`, () => {
    const key = aead.create(new Uint8Array(32));
    for (let n = 16; n < 32; n++) assert.equal(aead.open(key, 0, new Uint8Array(n), 16, null), -1, `${n} bytes`);
    assert.throws(() => aead.create(new Uint8Array(31)), RangeError);
    assert.throws(() => aead.seal(key, 0, new Uint8Array(16 + 10 + TAG - 1), 16, new Uint8Array(10)), RangeError);
    assert.throws(() => aead.open(key, 0, new Uint8Array(100), 16, new Uint8Array(10)), RangeError);
    aead.free(key);
    aead.free(key); // idempotent
    assert.throws(() => aead.seal(key, 0, new Uint8Array(64), 16, new Uint8Array(8)), /after free/);
    assert.throws(() => aead.open(key, 0, new Uint8Array(64), 16, null), /after free/);
  });
}

test('OpenSSL addon: argument checks (overlap, counter range, foreign objects, cipher id)', { skip: needsAddon }, async () => {
  const { loadAddon } = await import('../../src/native/load.ts');
  const raw = loadAddon<{ create(key: Uint8Array, id?: unknown): AeadKey }>('lh_aead');
  assert.ok(raw.ok);
  assert.throws(() => raw.addon.create(new Uint8Array(32), 2), RangeError);
  assert.throws(() => raw.addon.create(new Uint8Array(32), 'aes'), TypeError);
  const o = openssl!;
  const key = o.create(new Uint8Array(32));
  const packet = new Uint8Array(16 + 100 + TAG);
  // Plaintext overlapping the output other than exactly in place would be read after it is written.
  assert.throws(() => o.seal(key, 0, packet, 16, packet.subarray(8, 108)), RangeError);
  assert.throws(() => o.seal(key, 0, packet, 16, packet.subarray(0, 50)), RangeError);
  assert.throws(() => o.seal(key, -1, packet, 16, new Uint8Array(100)), RangeError);
  assert.throws(() => o.seal(key, 2 ** 53, packet, 16, new Uint8Array(100)), RangeError);
  assert.throws(() => o.seal(key, 0, packet, packet.length + 1, new Uint8Array(0)), RangeError);
  assert.throws(() => o.seal({} as AeadKey, 0, packet, 16, new Uint8Array(100)), TypeError);
  assert.throws(() => o.seal(key, 0, [1, 2, 3] as unknown as Uint8Array, 0, new Uint8Array(0)), TypeError);
  o.seal(key, 0, packet, 16, new Uint8Array(100));
  assert.throws(() => o.open(key, 0, packet, 16, packet.subarray(20)), RangeError);
  o.free(key);
});

for (const cipher of PACKET_CIPHERS) {
  test(`backend choice ${cipher}: OpenSSL when the addon loads and agrees with ${REFERENCE_AEAD[cipher].name}, the reference backend otherwise`, {
    skip: needsAddon,
  }, () => {
    assert.ok(loaded.ok);
    const o = loaded.aeads[cipher];
    const reference = REFERENCE_AEAD[cipher];
    assert.equal(defaultPacketAead(cipher), o);
    assert.deepEqual(pickAead(loaded, cipher), { aead: o, fallbackReason: null });
    const missing = pickAead({ ok: false, error: 'native addon lh_aead not available (test)' }, cipher);
    assert.equal(missing.aead, reference);
    assert.match(missing.fallbackReason!, /not available/);
    // A build whose output differs (e.g. compiled against an incompatible OpenSSL) is not trusted.
    const broken: PacketAead = {
      ...o,
      seal: (k, c, p, h, m) => {
        const n = o.seal(k, c, p, h, m);
        p[n - 1]! ^= 1;
        return n;
      },
    };
    assert.match(agreesWithReference(broken)!, /differs/);
    const wrong = pickAead({ ok: true, aeads: { ...loaded.aeads, [cipher]: broken }, version: 'test' }, cipher);
    assert.equal(wrong.aead, reference);
    assert.match(wrong.fallbackReason!, /self-check/);
    assert.equal(agreesWithReference(reference), null);
  });
}

test('endpoints on different backends interoperate, in both directions; stats name the backend', { skip: needsAddon }, () => {
  const pair = new Pair({ aeadA: openssl!, aeadB: sodiumAead });
  pair.handshake();
  assert.equal(pair.a.ep.stats().aeadBackend, 'openssl');
  assert.equal(pair.b.ep.stats().aeadBackend, 'sodium');
  for (let i = 0; i < 50; i++) {
    const plaintext = Uint8Array.from({ length: 1 + i * 29 }, (_, j) => (i + j) & 0xff);
    for (const from of [pair.a, pair.b]) {
      const r = pair.transfer(from, plaintext).result;
      assert.equal(r?.kind, 'data');
      if (r?.kind === 'data') assert.deepEqual(Uint8Array.from(r.plaintext), plaintext);
    }
  }
  assert.equal(pair.a.ep.stats().authFailures + pair.b.ep.stats().authFailures, 0);
});

test('the fallback runs the whole protocol: a sodium-only pair handshakes, transfers and rejects tampering', () => {
  const pair = new Pair({ aeadA: sodiumAead, aeadB: sodiumAead });
  pair.handshake();
  const d = pair.a.ep.seal(pair.a.peer, new Uint8Array(300).fill(7), pair.now)!;
  const bad = Uint8Array.from(d);
  bad[100]! ^= 1;
  assert.deepEqual(handle(pair.b.ep, bad, pair.a.address, pair.now), { kind: 'dropped', reason: 'auth-failed' });
  const r = handle(pair.b.ep, d, pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
  if (r.kind === 'data') assert.deepEqual(Uint8Array.from(r.plaintext), new Uint8Array(300).fill(7));
  assert.equal(pair.b.ep.stats().aeadBackend, 'sodium');
});

for (const aead of backends) {
  test(`${label(aead)}: a keypair keeps key bytes only in the backend and wipe() makes the keys unusable`, () => {
    const send = new Uint8Array(32).fill(1);
    const recv = new Uint8Array(32).fill(2);
    const kp = new Keypair(aead, send, recv, 1, 2, 0, true);
    assert.ok(send.every((b) => b === 0) && recv.every((b) => b === 0), 'the raw keys are zeroed');
    const packet = new Uint8Array(16 + 10 + TAG);
    aead.seal(kp.sendKey, 0, packet, 16, new Uint8Array(10));
    kp.wipe();
    assert.throws(() => aead.seal(kp.sendKey, 1, packet, 16, new Uint8Array(10)), /after free/);
    assert.throws(() => aead.open(kp.recvKey, 0, packet, 16, null), /after free/);
  });
}

// sealRun / openRun: a send queue's or receive batch's run in one call, same bytes as one call per packet.
const arbRun = fc.array(fc.uint8Array({ minLength: 0, maxLength: 1500 }), { minLength: 1, maxLength: 12 });

for (const aead of backends) {
  test(`${label(aead)}: sealRun seals a run exactly as seal does packet by packet, and openRun opens it`, () => {
    fc.assert(
      fc.property(
        arbKey,
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 40 }),
        arbRun,
        fc.nat(0xffffffff),
        (keyBytes, first, at, plaintexts, index) => {
          const key = aead.create(keyBytes);
          const lens = new Int32Array(plaintexts.length + 2);
          const from = 1; // entries before the run are not touched
          plaintexts.forEach((p, i) => {
            lens[from + i] = 16 + p.length + TAG;
          });
          const total = plaintexts.reduce((n, p) => n + 16 + p.length + TAG, 0);
          const buf = new Uint8Array(at + total + 7).fill(0xee);
          let off = at;
          for (const p of plaintexts) {
            buf.set(p, off + 16);
            off += 16 + p.length + TAG;
          }
          assert.equal(aead.sealRun(key, buf, lens, from, plaintexts.length, at, 4, index, first), plaintexts.length);
          assert.ok(
            buf.subarray(0, at).every((b) => b === 0xee) && buf.subarray(at + total).every((b) => b === 0xee),
            'nothing outside the run is written',
          );
          // The same packets sealed one by one, with the same headers.
          off = at;
          const ats = new Int32Array(plaintexts.length);
          const runLens = new Int32Array(plaintexts.length);
          const counters = new Float64Array(plaintexts.length);
          plaintexts.forEach((p, i) => {
            const header = new Uint8Array(16);
            const view = new DataView(header.buffer);
            view.setUint32(0, 4, true);
            view.setUint32(4, index, true);
            view.setBigUint64(8, BigInt(first + i), true);
            assert.deepEqual(buf.subarray(off, off + 16 + p.length + TAG), sealWith(aead, key, first + i, header, p));
            ats[i] = off;
            runLens[i] = 16 + p.length + TAG;
            counters[i] = first + i;
            off += runLens[i]!;
          });
          const results = new Int32Array(plaintexts.length);
          assert.equal(aead.openRun(key, buf, ats, runLens, counters, plaintexts.length, 16, results), plaintexts.length);
          plaintexts.forEach((p, i) => {
            assert.equal(results[i], p.length);
            assert.deepEqual(buf.subarray(ats[i]! + 16, ats[i]! + 16 + p.length), p);
          });
          aead.free(key);
        },
      ),
      { numRuns: 60 },
    );
  });

  test(`${label(aead)}: openRun rejects (and zeroes) only the tampered packets of a run; misuse throws`, () => {
    const key = aead.create(new Uint8Array(32).fill(3));
    const sizes = [100, 1400, 0, 600];
    const lens = new Int32Array(sizes.map((n) => 16 + n + TAG));
    const total = lens.reduce((a, b) => a + b, 0);
    const buf = new Uint8Array(total);
    let off = 0;
    const ats = new Int32Array(sizes.length);
    sizes.forEach((n, i) => {
      ats[i] = off;
      buf.fill(i + 1, off + 16, off + 16 + n);
      off += lens[i]!;
    });
    aead.sealRun(key, buf, lens, 0, sizes.length, 0, 4, 9, 100);
    buf[ats[1]! + 16 + 700]! ^= 1; // ciphertext of packet 1
    buf[ats[3]! + 3]! ^= 1; // header (AAD) of packet 3
    const results = new Int32Array(sizes.length);
    aead.openRun(key, buf, ats, lens, new Float64Array([100, 101, 102, 103]), sizes.length, 16, results);
    assert.deepEqual([...results], [100, -1, 0, -1]);
    assert.ok(buf.subarray(ats[0]! + 16, ats[0]! + 116).every((b) => b === 1));
    assert.ok(
      buf.subarray(ats[1]! + 16, ats[1]! + 16 + 1400).every((b) => b === 0),
      'a rejected packet leaves no plaintext',
    );
    // Out of place: the plaintexts go to `out`, the packets stay as they were.
    const fresh = new Uint8Array(total);
    for (const [i, n] of sizes.entries()) fresh.fill(i + 1, ats[i]! + 16, ats[i]! + 16 + n);
    aead.sealRun(key, fresh, lens, 0, sizes.length, 0, 4, 9, 200);
    const sealed = Uint8Array.from(fresh);
    const out = new Uint8Array(4096).fill(0xee);
    const outAts = new Int32Array([8, 200, 1700, 1800]);
    aead.openRun(key, fresh, ats, lens, new Float64Array([200, 201, 202, 203]), sizes.length, 16, results, out, outAts);
    assert.deepEqual([...results], sizes);
    assert.deepEqual(fresh, sealed, 'the packets are not written');
    for (const [i, n] of sizes.entries())
      assert.ok(
        out.subarray(outAts[i]!, outAts[i]! + n).every((b) => b === i + 1),
        `plaintext ${i} at its place`,
      );
    assert.ok(out.subarray(0, 8).every((b) => b === 0xee) && out.subarray(2400).every((b) => b === 0xee), 'nothing else written');
    assert.throws(
      () => aead.openRun(key, fresh, ats, lens, new Float64Array(4), sizes.length, 16, results, out, new Int32Array([0, 3000, 0, 0])),
      RangeError,
    );
    // A run beyond the buffer is a caller bug, found before anything is written.
    assert.throws(() => aead.sealRun(key, buf, lens, 0, sizes.length, 1, 4, 9, 0), RangeError);
    assert.throws(
      () => aead.openRun(key, buf, new Int32Array([total - 10]), new Int32Array([40]), new Float64Array([0]), 1, 16, results),
      RangeError,
    );
    aead.free(key);
  });
}
