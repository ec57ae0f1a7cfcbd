// The allocation-free packet path: sealing a send queue's run in place and opening a receive
// batch into the endpoint's own memory must protect exactly like one datagram at a time (same
// checks, same rejections, same plaintext), and must only read the caller's received bytes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecureEndpoint } from '../../src/crypto/secure-endpoint.ts';
import { handle, Pair } from './pair.ts';

const payload = (n: number, size = 1400) => {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (n * 31 + i * 7) & 0xff;
  return p;
};

test('tampered packets are rejected and change nothing; replays are rejected; the session continues', () => {
  const pair = new Pair();
  pair.handshake();
  const original = Uint8Array.from(pair.a.ep.seal(pair.a.peer, payload(1, 300), pair.now)!);
  const before = pair.b.ep.debugSnapshot();
  for (let i = 16; i < original.length; i++) {
    const bad = Uint8Array.from(original);
    bad[i]! ^= 0x01;
    const r = handle(pair.b.ep, bad, pair.a.address, pair.now);
    assert.deepEqual(r, { kind: 'dropped', reason: 'auth-failed' }, `byte ${i}`);
  }
  assert.equal(pair.b.ep.debugSnapshot(), before);
  const r = handle(pair.b.ep, Uint8Array.from(original), pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
  if (r.kind === 'data') assert.deepEqual(r.plaintext, payload(1, 300));
  assert.deepEqual(handle(pair.b.ep, Uint8Array.from(original), pair.a.address, pair.now), { kind: 'dropped', reason: 'duplicate' });
  assert.equal(pair.transfer(pair.a, payload(2, 300)).result?.kind, 'data');
});

test("the caller's datagram is only read, also when it fails authentication", () => {
  const pair = new Pair();
  pair.handshake();
  const datagram = Uint8Array.from(pair.a.ep.seal(pair.a.peer, payload(3, 500), pair.now)!);
  const copy = Uint8Array.from(datagram);
  const r = handle(pair.b.ep, datagram, pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
  assert.deepEqual(datagram, copy);
  const bad = Uint8Array.from(copy);
  bad[100]! ^= 1;
  const badCopy = Uint8Array.from(bad);
  assert.equal(handle(pair.b.ep, bad, pair.a.address, pair.now).kind, 'dropped');
  assert.deepEqual(bad, badCopy);
});

/** A send queue's run: datagrams written at HEADER_ROOM of their slots, lens = slot sizes. */
function queueRun(plains: Uint8Array[], at = 0): { buf: Buffer; lens: Int32Array } {
  const lens = new Int32Array(plains.map((p) => p.length + SecureEndpoint.OVERHEAD));
  const buf = Buffer.alloc(at + lens.reduce((a, b) => a + b, 0) + 100, 0xee);
  let off = at;
  plains.forEach((p, i) => {
    buf.set(p, off + SecureEndpoint.HEADER_ROOM);
    off += lens[i]!;
  });
  return { buf, lens };
}

test('sealRun seals datagrams of any size back to back; each opens to its plaintext; no session: false and nothing written', () => {
  const sizes = Array.from({ length: 40 }, (_, i) => 1 + ((i * 97) % 1400));
  const plains = sizes.map((n, i) => payload(i, n));
  const fresh = new Pair();
  const q = queueRun(plains);
  const unsealed = Buffer.from(q.buf);
  assert.equal(fresh.a.ep.sealRun(fresh.a.peer, q.buf, q.lens, 0, plains.length, 0, fresh.now), false, 'before the handshake');
  assert.deepEqual(q.buf, unsealed, 'nothing written without a session');

  const pair = new Pair();
  pair.handshake();
  const sealedBefore = pair.a.ep.stats().packetsSealed;
  const { buf, lens } = queueRun(plains);
  const tail = lens.reduce((a, b) => a + b, 0);
  assert.equal(pair.a.ep.sealRun(pair.a.peer, buf, lens, 0, plains.length, 0, pair.now), true);
  assert.equal(pair.a.ep.stats().packetsSealed - sealedBefore, 40, 'counted like seal()');
  assert.ok(
    buf.subarray(tail).every((b) => b === 0xee),
    'nothing written past the last datagram',
  );
  let at = 0;
  lens.forEach((n, i) => {
    assert.equal(n, sizes[i]! + SecureEndpoint.OVERHEAD);
    const r = handle(pair.b.ep, Uint8Array.from(buf.subarray(at, at + n)), pair.a.address, pair.now);
    assert.equal(r.kind, 'data', `datagram ${i}`);
    if (r.kind === 'data') assert.deepEqual(r.plaintext, plains[i]);
    at += n;
  });
});

test("sealRun seals a queued run in place under consecutive counters; deferred opening delivers each in order, from the endpoint's memory", () => {
  const pair = new Pair();
  pair.handshake();
  const plains = [payload(1, 1400), payload(2, 1), payload(3, 700), payload(4, 1400)];
  const { buf, lens } = queueRun(plains, 10);
  assert.equal(pair.a.ep.readyToSeal(pair.a.peer, pair.now), true);
  assert.equal(pair.a.ep.sealRun(pair.a.peer, buf, lens, 0, plains.length, 10, pair.now), true);
  // Each sealed datagram also opens on its own (same protection as seal()).
  const datagrams: Uint8Array[] = [];
  let off = 10;
  for (const len of lens) {
    datagrams.push(Uint8Array.from(buf.subarray(off, off + len)));
    off += len;
  }
  const b = pair.b.ep;
  // One receive buffer holding the batch, as the gateway's receive slab does.
  const slab = new Uint8Array(8192);
  const views: Uint8Array[] = [];
  let pos = 0;
  for (const d of [datagrams[0]!, datagrams[1]!, datagrams[1]!, datagrams[2]!, datagrams[3]!]) {
    slab.set(d, pos);
    views.push(slab.subarray(pos, pos + d.length));
    pos += d.length;
  }
  const before = b.stats();
  for (const v of views) b.handleDatagram(v, pair.a.address, pair.now);
  assert.equal(b.deferredCount, 5, 'queued, not opened yet');
  assert.equal(b.stats().packetsOpened, before.packetsOpened);
  const got: Uint8Array[] = [];
  b.openDeferred((peer, plaintext, source) => {
    assert.equal(peer, pair.b.peer);
    assert.equal(source, pair.a.address);
    assert.notEqual(plaintext.buffer, slab.buffer, "decrypted out of place: the caller's buffer is only read");
    got.push(Uint8Array.from(plaintext));
  });
  assert.deepEqual(got, plains, 'every datagram once, in order: the copy within the batch is a replay');
  assert.equal(b.stats().packetsOpened - before.packetsOpened, 4);
  assert.equal(b.stats().replays - before.replays, 1);
  assert.equal(b.deferredCount, 0);
  // Across batches the replay window holds too.
  slab.set(datagrams[0]!, 0);
  const r = b.handleDatagram(slab.subarray(0, datagrams[0]!.length), pair.a.address, pair.now);
  assert.equal(r.kind, 'dropped');
  assert.equal(b.deferredCount, 0);
});

test('deferred opening rejects tampered messages and leaves the others and the session unharmed; no session: sealRun refuses', () => {
  const fresh = new Pair();
  const q = queueRun([payload(0, 100)]);
  assert.equal(fresh.a.ep.readyToSeal(fresh.a.peer, fresh.now), false, 'before the handshake');
  assert.equal(fresh.a.ep.sealRun(fresh.a.peer, q.buf, q.lens, 0, 1, 0, fresh.now), false);

  const pair = new Pair();
  pair.handshake();
  const plains = [payload(5, 300), payload(6, 300), payload(7, 300)];
  const { buf, lens } = queueRun(plains);
  pair.a.ep.sealRun(pair.a.peer, buf, lens, 0, 3, 0, pair.now);
  const genuine = Uint8Array.from(buf.subarray(lens[0]!, lens[0]! + lens[1]!));
  buf[lens[0]! + 40]! ^= 0x10; // the second message's ciphertext
  const b = pair.b.ep;
  const snapshot = b.debugSnapshot();
  const before = b.stats();
  let off = 0;
  for (const len of lens) {
    b.handleDatagram(buf.subarray(off, off + len), pair.a.address, pair.now);
    off += len;
  }
  const got: Uint8Array[] = [];
  b.openDeferred((_peer, plaintext) => got.push(Uint8Array.from(plaintext)));
  assert.deepEqual(got, [plains[0], plains[2]]);
  assert.equal(b.stats().authFailures - before.authFailures, 1);
  assert.notEqual(b.debugSnapshot(), snapshot, 'the authentic ones moved the replay window');
  // The tampered one's counter is still free: the genuine message opens later.
  const r = handle(b, genuine, pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
});

test('deferred messages whose keys a later handshake retired are dropped as unknown, without using the wiped keys', () => {
  const pair = new Pair();
  pair.handshake();
  const { buf, lens } = queueRun([payload(8, 200)]);
  pair.b.ep.sealRun(pair.b.peer, buf, lens, 0, 1, 0, pair.now);
  // The initiator queues a message under its first keys; the responses of its next handshakes,
  // in the same receive batch, rotate those keys out of its slots: retired and wiped.
  const a = pair.a.ep;
  assert.equal(a.handleDatagram(buf.subarray(0, lens[0]!), pair.b.address, pair.now).kind, 'handled');
  for (let i = 0; i < 3; i++) {
    pair.now += 10_000;
    pair.wallMs += 10_000;
    pair.handshake();
  }
  assert.equal(a.deferredCount, 1, 'still queued');
  const before = a.stats();
  const got: Uint8Array[] = [];
  a.openDeferred((_peer, plaintext) => got.push(plaintext));
  assert.equal(got.length, 0);
  assert.equal(a.stats().unknownIndex - before.unknownIndex, 1);
  assert.equal(pair.transfer(pair.b, payload(10, 10)).result?.kind, 'data', 'the session goes on');
  assert.equal(pair.transfer(pair.a, payload(11, 10)).result?.kind, 'data');
});

test("data messages are decrypted into the endpoint's own memory, reused batch after batch; the caller's buffer is free once openDeferred returns", () => {
  const pair = new Pair();
  pair.handshake();
  const b = pair.b.ep;
  // 500 datagrams (~700 KB of plaintext: the endpoint's slab fills and is reused) through one
  // reused receive buffer, in batches of 64, each batch overwritten right after openDeferred.
  const recv = new Uint8Array(64 * 1500);
  const got: Uint8Array[] = [];
  const sent: Uint8Array[] = [];
  const plaintextMemory = new Set<ArrayBufferLike>();
  for (let batch = 0; batch < 8; batch++) {
    let pos = 0;
    const views: Uint8Array[] = [];
    for (let i = 0; i < 64 && sent.length < 500; i++) {
      const plain = payload(sent.length, 1 + ((sent.length * 131) % 1400));
      sent.push(plain);
      const d = pair.a.ep.seal(pair.a.peer, plain, pair.now)!;
      recv.set(d, pos);
      views.push(recv.subarray(pos, pos + d.length));
      pos += d.length;
    }
    const before = Uint8Array.from(recv.subarray(0, pos));
    for (const v of views) b.handleDatagram(v, pair.a.address, pair.now);
    b.openDeferred((_peer, plaintext) => {
      assert.notEqual(plaintext.buffer, recv.buffer, "not a view of the caller's buffer");
      plaintextMemory.add(plaintext.buffer);
      got.push(Uint8Array.from(plaintext)); // valid until deliver returns: the memory is reused
    });
    assert.deepEqual(recv.subarray(0, pos), before, "the caller's bytes are only read");
    recv.fill(0xa5);
  }
  assert.equal(got.length, 500);
  for (const [i, p] of got.entries()) assert.deepEqual(p, sent[i], `datagram ${i} intact`);
  assert.equal(plaintextMemory.size, 1, 'one plaintext slab for every batch (no allocation per batch)');
  // A handshake message is handled within the call and nothing of it kept: the caller may reuse its buffer at once.
  const fresh = new Pair();
  const init = fresh.a.ep.connect(fresh.a.peer, fresh.b.address, fresh.now);
  const r = fresh.b.ep.handleDatagram(init, fresh.a.address, fresh.now);
  assert.equal(r.kind, 'reply');
});
