import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SendStream } from '../../src/transport/streams/send.ts';
import { RecvStream } from '../../src/transport/streams/recv.ts';
import { CHUNK_BYTES, pooledBytes, takeRing } from '../../src/transport/streams/chunk-pool.ts';
import { randomBytes } from './helpers.ts';

test('RecvStream reassembles any arrival order with duplicates and overlaps byte-exact (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3000 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 400 })), { maxLength: 40 }),
      fc.nat(),
      (size, extra, seed) => {
        const data = randomBytes(seed, size);
        // Cover the whole stream in 100-byte pieces plus random overlapping pieces, in shuffled order.
        const pieces: Array<[number, number]> = [];
        for (let o = 0; o < size; o += 100) pieces.push([o, Math.min(100, size - o)]);
        for (const [o, l] of extra) {
          const off = o % size;
          pieces.push([off, Math.min(l, size - off)]);
        }
        const order = pieces
          .map((p, i) => [p, (i * 7919 + seed) % 1009] as const)
          .sort((a, b) => a[1] - b[1])
          .map((x) => x[0]);
        const r = new RecvStream(1 << 20);
        const out: Uint8Array[] = [];
        for (const [o, l] of order) {
          const fin = o + l === size;
          assert.equal(r.check(o, l, fin), null);
          r.insert(o, data.subarray(o, o + l), fin);
          // Read in small bites at random moments.
          if ((o + l) % 3 === 0) {
            const c = r.read(57);
            if (c) out.push(c);
          }
        }
        let c: Uint8Array | null;
        while ((c = r.read(Infinity)) !== null) out.push(c);
        const got = Buffer.concat(out);
        assert.equal(got.length, size);
        assert.ok(got.equals(data));
        assert.ok(r.isFinished());
      },
    ),
    { numRuns: 300 },
  );
});

test('RecvStream enforces credit and final size', () => {
  const r = new RecvStream(1000);
  assert.equal(r.check(900, 101, false), 'flow-control');
  assert.equal(r.check(0, 100, true), null);
  r.insert(0, new Uint8Array(100), true);
  assert.equal(r.check(90, 20, false), 'final-size');
  assert.equal(r.check(0, 50, true), 'final-size');
  assert.equal(r.checkFinalSize(120), 'final-size');
  // Credit is returned once an eighth of the window has been read.
  assert.equal(r.refreshCredit(), false);
  const r2 = new RecvStream(1000);
  r2.insert(0, new Uint8Array(600), false);
  r2.read(600);
  assert.equal(r2.refreshCredit(), true);
  assert.equal(r2.maxData, 1600);
});

test('SendStream bounds its buffer, retransmits lost ranges first, frees on ack', () => {
  const s = new SendStream(1 << 20, 5000);
  const data = randomBytes(3, 8000);
  assert.equal(s.write(data), 5000);
  assert.equal(s.writeBlocked, true);
  assert.ok(s.nextChunk(1000, Infinity));
  assert.deepEqual([s.chunkOffset, s.chunkLength, s.chunkIsNew], [0, 1000, true]);
  assert.ok(s.nextChunk(1000, Infinity));
  assert.equal(s.chunkOffset, 1000);
  s.onLost(0, 1000, false);
  assert.ok(s.nextChunk(600, Infinity));
  assert.deepEqual([s.chunkOffset, s.chunkLength, s.chunkIsNew], [0, 600, false]);
  const copy = new Uint8Array(600);
  s.copyOut(0, 600, copy, 0);
  assert.deepEqual(copy, data.subarray(0, 600));
  // Ack of the original 1000..2000 arrives first: nothing is freed until the prefix is acked.
  assert.equal(s.onAcked(1000, 1000, false), false);
  assert.equal(s.onAcked(0, 600, false), true);
  assert.equal(s.ackedOffset, 600);
  // The remaining lost bytes 600..1000 come next; once acked, the prefix jumps over 1000..2000.
  assert.ok(s.nextChunk(1000, Infinity));
  assert.deepEqual([s.chunkOffset, s.chunkLength], [600, 400]);
  s.onAcked(600, 400, false);
  assert.equal(s.ackedOffset, 2000);
  assert.equal(s.write(data.subarray(5000)), 2000);
  // Ring wrap-around keeps bytes intact.
  const check = new Uint8Array(5000);
  s.copyOut(2000, 5000, check, 0);
  assert.deepEqual(check, new Uint8Array(Buffer.concat([data.subarray(2000, 5000), data.subarray(5000, 7000)])));
});

test('SendStream holds its bytes in pooled chunks, each given back once acknowledged: a burst of streams leaves no memory behind', () => {
  const s = new SendStream(1 << 22, 1 << 20);
  const data = randomBytes(5, 200_000);
  assert.equal(s.write(data), data.length);
  // Sized by need: the bytes plus part of one chunk (a ring doubled to 256 KiB held 200 KB here).
  assert.ok(s.allocatedBytes() >= data.length && s.allocatedBytes() < data.length + CHUNK_BYTES, `${s.allocatedBytes()} bytes`);
  // Half acknowledged: the chunks wholly below go back at once, the rest stays intact.
  while (s.ackedOffset < 100_000 && s.nextChunk(1400, Infinity)) s.onAcked(s.chunkOffset, s.chunkLength, false);
  assert.ok(s.allocatedBytes() <= data.length - s.ackedOffset + CHUNK_BYTES, `${s.allocatedBytes()} bytes`);
  const mid = new Uint8Array(5000);
  s.copyOut(150_000, 5000, mid, 0);
  assert.deepEqual(mid, data.subarray(150_000, 155_000));
  const before = pooledBytes().chunks;
  while (s.nextChunk(1400, Infinity)) s.onAcked(s.chunkOffset, s.chunkLength, false);
  assert.equal(s.ackedOffset, data.length);
  assert.equal(s.allocatedBytes(), 0, 'everything acknowledged: no chunk kept');
  assert.ok(pooledBytes().chunks > before, 'the chunks went back to the pool');
  // The next bytes take pooled chunks and read back intact, across chunk boundaries.
  assert.equal(s.write(data.subarray(0, 50_000)), 50_000);
  assert.ok(s.nextChunk(1400, Infinity));
  s.onAcked(s.chunkOffset, s.chunkLength, false);
  assert.ok(s.allocatedBytes() >= 50_000 - 1400);
  const check = new Uint8Array(40_000);
  s.copyOut(data.length + 1400, 40_000, check, 0);
  assert.deepEqual(check, data.subarray(1400, 41_400));
  s.reset(0);
  assert.equal(s.allocatedBytes(), 0, 'a reset stream keeps nothing');
});

test('SendStream bytes stay exact through any write sizes, acks out of order and losses (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 120_000 }),
      fc.integer({ min: 1, max: 40_000 }),
      fc.integer({ min: 200, max: 3000 }),
      fc.nat(),
      (size, write, mss, seed) => {
        const data = randomBytes(seed, size);
        const s = new SendStream(1 << 30, 64 * 1024);
        const got = new Uint8Array(size);
        let written = 0;
        const inFlight: Array<[number, number]> = [];
        let round = 0;
        while (s.ackedOffset < size) {
          if (written < size) written += s.write(data.subarray(written, Math.min(size, written + write)));
          while (s.nextChunk(mss, Infinity)) {
            s.copyOut(s.chunkOffset, s.chunkLength, got, s.chunkOffset);
            inFlight.push([s.chunkOffset, s.chunkLength]);
          }
          // Acks in a scrambled order; every seventh packet is lost once and sent again.
          inFlight.sort((a, b) => ((a[0] * 31 + seed) % 97) - ((b[0] * 31 + seed) % 97));
          for (const [o, l] of inFlight.splice(0)) {
            if ((o + round) % 7 === 3) s.onLost(o, l, false);
            else s.onAcked(o, l, false);
          }
          round++;
          assert.ok(s.allocatedBytes() <= s.bufferedBytes() + 2 * CHUNK_BYTES, `${s.allocatedBytes()} for ${s.bufferedBytes()}`);
        }
        assert.ok(Buffer.from(got).equals(data));
        assert.equal(s.allocatedBytes(), 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('SendStream respects stream and association credit and sends FIN once', () => {
  const s = new SendStream(100, 1000);
  s.write(new Uint8Array(300));
  s.finish();
  assert.ok(s.nextChunk(1000, 50));
  assert.equal(s.chunkLength, 50);
  assert.ok(s.nextChunk(1000, 1000));
  assert.equal(s.chunkLength, 50);
  assert.equal(s.nextChunk(1000, 1000), false);
  // Blocked by the stream credit, not the association: MAX_STREAM_DATA (not MAX_DATA) unblocks it.
  assert.equal(s.blockedOnlyByConnection(), false);
  assert.ok(s.raiseMaxData(1000));
  assert.ok(s.nextChunk(1000, 1000));
  assert.deepEqual([s.chunkOffset, s.chunkLength, s.chunkFin], [100, 200, true]);
  assert.equal(s.nextChunk(1000, 1000), false);
  // Lost FIN alone is resent as a zero-length frame.
  s.onAcked(0, 300, false);
  s.onLost(100, 200, true);
  assert.ok(s.nextChunk(1000, 1000));
  assert.deepEqual([s.chunkOffset, s.chunkLength, s.chunkFin], [300, 0, true]);
  s.onAcked(300, 0, true);
  assert.ok(s.isComplete());
});

test('RecvStream views: any arrival order, views across the ring wrap, released late, byte-exact; credit follows release (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200_000 }),
      fc.integer({ min: 200, max: 3000 }),
      fc.integer({ min: 0, max: 6 }),
      fc.nat(),
      (size, piece, lag, seed) => {
        const data = randomBytes(seed, size);
        const window = 64 * 1024;
        const r = new RecvStream(window);
        const got: Uint8Array[] = [];
        // Views not yet released, oldest first: each is copied only at release time, so a ring
        // that reused their bytes early would be caught.
        const held: Uint8Array[] = [];
        const releaseOldest = () => {
          const v = held.shift()!;
          got.push(Uint8Array.from(v));
          r.release(v.length);
          r.refreshCredit();
        };
        let sent = 0;
        while (sent < size || held.length > 0 || r.hasReadable()) {
          // The sender sends what the credit allows, in pieces, each window's pieces reordered.
          const limit = Math.min(size, r.maxData);
          const batch: Array<[number, number]> = [];
          for (; sent < limit; sent += Math.min(piece, limit - sent)) batch.push([sent, Math.min(piece, limit - sent)]);
          batch.sort((a, b) => ((a[0] * 7919 + seed) % 1009) - ((b[0] * 7919 + seed) % 1009));
          for (const [o, l] of batch) {
            assert.equal(r.check(o, l, o + l === size), null, 'within credit');
            r.insert(o, data.subarray(o, o + l), o + l === size);
            if ((o + seed) % 5 === 0) r.insert(o, data.subarray(o, o + l), o + l === size); // a duplicate
          }
          let v: Uint8Array | null;
          while ((v = r.readView(4096)) !== null) {
            held.push(v);
            if (held.length > lag) releaseOldest();
          }
          if (held.length > 0) releaseOldest();
          assert.ok(r.allocatedBytes() <= 2 * window, `ring ${r.allocatedBytes()} bytes`);
        }
        const all = Buffer.concat(got);
        assert.equal(all.length, size);
        assert.ok(all.equals(data));
        assert.ok(r.isFinished());
        r.trim();
        assert.equal(r.allocatedBytes(), 0, 'trimmed once everything is released');
      },
    ),
    { numRuns: 200 },
  );
});

test('RecvStream frees an emptied ring only after a trim period with nothing arriving', () => {
  const r = new RecvStream(1 << 20);
  const data = randomBytes(9, 50_000);
  r.insert(0, data, false);
  const v = r.readView(data.length);
  assert.ok(v !== null && v.length === data.length);
  r.release(v.length);
  r.trim();
  assert.ok(r.allocatedBytes() > 0, 'data arrived since the last trim: a busy ring is kept');
  r.trim();
  assert.equal(r.allocatedBytes(), 0, 'empty and idle for a whole trim period: freed');
  r.insert(data.length, data, false);
  const again: Uint8Array[] = [];
  for (let w = r.readView(data.length); w !== null; w = r.readView(data.length)) again.push(w);
  assert.ok(Buffer.concat(again).equals(data), 'grows again for the next bytes');
});

test('RecvStream gives its ring back to the pool once everything up to the FIN is released, and the next stream reuses it', () => {
  // Earlier tests may have filled the pool to its bound: empty it first.
  for (let size = 16 * 1024; size <= 1024 * 1024; size *= 2) {
    for (let held = pooledBytes().rings; held > 0; held = pooledBytes().rings) {
      takeRing(size);
      if (pooledBytes().rings === held) break;
    }
  }
  const data = randomBytes(11, 40_000);
  const r = new RecvStream(1 << 20);
  r.insert(0, data, true);
  const before = pooledBytes().rings;
  const views: Uint8Array[] = [];
  for (let v = r.readView(1 << 20); v !== null; v = r.readView(1 << 20)) views.push(v);
  assert.equal(pooledBytes().rings, before, 'views outstanding: the ring is not given back');
  r.release(data.length);
  assert.ok(r.isFinished());
  assert.equal(r.allocatedBytes(), 0);
  assert.equal(pooledBytes().rings, before + 64 * 1024, 'released to the FIN: the ring went back');
  const next = new RecvStream(1 << 20);
  next.insert(0, data, false);
  assert.equal(pooledBytes().rings, before, 'the next stream took it');
  const v = next.readView(1 << 20);
  assert.ok(v !== null && Buffer.from(v).equals(data));
});
