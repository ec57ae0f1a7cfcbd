// The allocation-free packet path: sealing into a caller's buffer and decrypting in place must
// protect exactly like the allocating path (same checks, same rejections, same plaintext).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecureEndpoint } from '../../src/crypto/secure-endpoint.ts';
import { Pair } from './pair.ts';

const payload = (n: number, size = 1400) => {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (n * 31 + i * 7) & 0xff;
  return p;
};

test('seal into a reused buffer + in-place open: every packet opens to its plaintext, as a view of the datagram', () => {
  const pair = new Pair({ decryptInPlace: true });
  pair.handshake();
  const scratch = Buffer.alloc(2048);
  const openedBefore = pair.b.ep.stats().packetsOpened;
  for (let i = 0; i < 200; i++) {
    const plain = payload(i, 1 + ((i * 97) % 1400));
    const sealed = pair.a.ep.seal(pair.a.peer, plain, pair.now, scratch)!;
    assert.equal(sealed.buffer, scratch.buffer, 'written into the given buffer');
    assert.equal(sealed.length, plain.length + SecureEndpoint.OVERHEAD);
    const datagram = Uint8Array.from(sealed); // what the kernel hands the receiver: its own copy
    const r = pair.b.ep.handleDatagram(datagram, pair.a.address, pair.now);
    assert.equal(r.kind, 'data');
    if (r.kind !== 'data') return;
    assert.deepEqual(r.plaintext, plain);
    assert.equal(r.plaintext.buffer, datagram.buffer, 'no copy: a view of the received datagram');
  }
  assert.equal(pair.b.ep.stats().packetsOpened - openedBefore, 200);
});

test('sealInto writes datagrams back to back into a send queue; each opens to its plaintext; no session: -1 and nothing written', () => {
  const fresh = new Pair();
  const queue = Buffer.alloc(64 * 1024, 0xee);
  assert.equal(fresh.a.ep.sealInto(fresh.a.peer, payload(0, 100), fresh.now, queue, 0), -1, 'before the handshake');
  assert.ok(queue.every((b) => b === 0xee), 'nothing written without a session');

  const pair = new Pair();
  pair.handshake();
  const sealedBefore = pair.a.ep.stats().packetsSealed;
  const lens: number[] = [];
  let tail = 0;
  for (let i = 0; i < 40; i++) {
    const n = pair.a.ep.sealInto(pair.a.peer, payload(i, 1 + ((i * 97) % 1400)), pair.now, queue, tail);
    assert.equal(n, 1 + ((i * 97) % 1400) + SecureEndpoint.OVERHEAD);
    lens.push(n);
    tail += n;
  }
  assert.equal(pair.a.ep.stats().packetsSealed - sealedBefore, 40, 'counted like seal()');
  assert.ok(queue.subarray(tail).every((b) => b === 0xee), 'nothing written past the last datagram');
  let at = 0;
  lens.forEach((n, i) => {
    const r = pair.b.ep.handleDatagram(Uint8Array.from(queue.subarray(at, at + n)), pair.a.address, pair.now);
    assert.equal(r.kind, 'data', `datagram ${i}`);
    if (r.kind === 'data') assert.deepEqual(Uint8Array.from(r.plaintext), payload(i, 1 + ((i * 97) % 1400)));
    at += n;
  });
});

test('a buffer too small for the datagram is not used', () => {
  const pair = new Pair();
  pair.handshake();
  const small = Buffer.alloc(64);
  const sealed = pair.a.ep.seal(pair.a.peer, payload(1, 100), pair.now, small)!;
  assert.notEqual(sealed.buffer, small.buffer);
  assert.equal(pair.send(pair.a, sealed).kind, 'data');
});

test('in place: tampered packets are rejected and change nothing; replays are rejected; the session continues', () => {
  const pair = new Pair({ decryptInPlace: true });
  pair.handshake();
  const original = Uint8Array.from(pair.a.ep.seal(pair.a.peer, payload(1, 300), pair.now)!);
  const before = pair.b.ep.debugSnapshot();
  for (let i = 16; i < original.length; i++) {
    const bad = Uint8Array.from(original);
    bad[i]! ^= 0x01;
    const r = pair.b.ep.handleDatagram(bad, pair.a.address, pair.now);
    assert.deepEqual(r, { kind: 'dropped', reason: 'auth-failed' }, `byte ${i}`);
  }
  assert.equal(pair.b.ep.debugSnapshot(), before);
  const r = pair.b.ep.handleDatagram(Uint8Array.from(original), pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
  if (r.kind === 'data') assert.deepEqual(r.plaintext, payload(1, 300));
  assert.deepEqual(pair.b.ep.handleDatagram(Uint8Array.from(original), pair.a.address, pair.now), { kind: 'dropped', reason: 'duplicate' });
  assert.equal(pair.transfer(pair.a, payload(2, 300)).result?.kind, 'data');
});

test('by default the caller\'s datagram is left untouched', () => {
  const pair = new Pair();
  pair.handshake();
  const datagram = Uint8Array.from(pair.a.ep.seal(pair.a.peer, payload(3, 500), pair.now)!);
  const copy = Uint8Array.from(datagram);
  const r = pair.b.ep.handleDatagram(datagram, pair.a.address, pair.now);
  assert.equal(r.kind, 'data');
  assert.deepEqual(datagram, copy);
  const bad = Uint8Array.from(copy);
  bad[100]! ^= 1;
  const badCopy = Uint8Array.from(bad);
  assert.equal(pair.b.ep.handleDatagram(bad, pair.a.address, pair.now).kind, 'dropped');
  assert.deepEqual(bad, badCopy);
});
