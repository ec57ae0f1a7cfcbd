import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBlockHeader } from '../../src/codec/block-format.ts';
import { compressWith } from '../../src/codec/codecs.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder, SPOT_CHECK_INTERVAL } from '../../src/codec/encoder.ts';
import { ENTROPY_WINDOW, EntropySplitter, MIN_SPLIT_RUN } from '../../src/codec/entropy-split.ts';
import { alreadyCompressed, concat, equalBytes, randomBytes, textLike, zeros } from './fixtures.ts';

const KiB = 1024;

function pieces(splitter: EntropySplitter, data: Uint8Array): Array<{ start: number; end: number; high: boolean }> {
  const n = splitter.split(data);
  const out: Array<{ start: number; end: number; high: boolean }> = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    out.push({ start, end: splitter.ends[i]!, high: splitter.highEntropy[i]! });
    start = splitter.ends[i]!;
  }
  return out;
}

describe('EntropySplitter', () => {
  it('cuts where random bytes begin and end, to the window', () => {
    // Not aligned to anything: 20 KiB + 300 bytes of text, 24 KiB random, the rest text.
    const data = concat([textLike(20 * KiB + 300, 1), randomBytes(24 * KiB, 2), textLike(20 * KiB - 300, 3)]);
    const p = pieces(new EntropySplitter(), data);
    assert.equal(p.length, 3, JSON.stringify(p));
    assert.deepEqual(
      p.map((x) => x.high),
      [false, true, false],
    );
    assert.ok(Math.abs(p[0]!.end - (20 * KiB + 300)) <= ENTROPY_WINDOW, `first cut at ${p[0]!.end}`);
    assert.ok(Math.abs(p[1]!.end - (44 * KiB + 300)) <= ENTROPY_WINDOW, `second cut at ${p[1]!.end}`);
    assert.equal(p[2]!.end, data.length);
  });

  it('keeps compressible kinds together and leaves uniform blocks whole', () => {
    const splitter = new EntropySplitter();
    const mixed = concat([zeros(16 * KiB), textLike(16 * KiB, 4), zeros(32 * KiB)]);
    assert.deepEqual(pieces(splitter, mixed), [{ start: 0, end: 64 * KiB, high: false }]);
    assert.deepEqual(pieces(splitter, randomBytes(64 * KiB, 5)), [{ start: 0, end: 64 * KiB, high: true }]);
    assert.deepEqual(
      pieces(splitter, alreadyCompressed(64 * KiB, 6)).map((x) => x.high),
      [true],
    );
  });

  it('absorbs runs shorter than the minimum into a neighbour, and leaves small blocks alone', () => {
    const splitter = new EntropySplitter();
    // 2 KiB of random at the start and 2 KiB inside the text: too short to cut out.
    const data = concat([randomBytes(2 * KiB, 7), textLike(30 * KiB, 8), randomBytes(2 * KiB, 9), textLike(30 * KiB, 10)]);
    assert.deepEqual(pieces(splitter, data), [{ start: 0, end: 64 * KiB, high: false }]);
    const small = concat([textLike(MIN_SPLIT_RUN, 11), randomBytes(MIN_SPLIT_RUN - 1, 12)]);
    assert.deepEqual(pieces(splitter, small), [{ start: 0, end: small.length, high: false }]);
    // Every piece of a busy mix is at least the minimum run long (the last may hold a short tail).
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) parts.push(i % 2 ? randomBytes((1 + (i % 7)) * KiB + 100, i) : textLike((1 + (i % 5)) * KiB + 50, i));
    const busy = concat(parts);
    const p = pieces(splitter, busy);
    assert.equal(p.at(-1)!.end, busy.length);
    for (const x of p.slice(0, -1)) assert.ok(x.end - x.start >= MIN_SPLIT_RUN, JSON.stringify(x));
  });
});

describe('BlockEncoder cutting blocks by entropy (slow-link zstd levels)', () => {
  // A read that does not line up with the data's own runs: random bytes inside text.
  const read = concat([textLike(16 * KiB, 20), randomBytes(32 * KiB, 21), textLike(16 * KiB, 22)]);

  it('sends the random part raw and the text compressed: fewer bytes than one zstd block of the mix', () => {
    const encoder = new BlockEncoder({ mode: 'zstd', zstdLevel: 7, maxBlockSize: 64 * KiB });
    const framed = encoder.encode(read);
    const whole = compressWith({ codec: 'zstd', level: 7 }, read);
    assert.ok(framed.length < whole.length, `cut ${framed.length} vs whole ${whole.length}`);
    const s = encoder.stats.encode;
    assert.equal(s.blocks, 3);
    assert.equal(s.blocksRawHighEntropy, 1);
    assert.equal(s.blocksZstd, 2);
    // The first block's header: zstd, the 16 KiB of text (to the window).
    const h = parseBlockHeader(framed, 0, framed.length, 64 * KiB);
    assert.ok(h.status === 'ok' && h.header.codec === 2 && Math.abs(h.header.originalLength - 16 * KiB) <= ENTROPY_WINDOW);
    const decoded = new BlockDecoder().push(framed);
    assert.ok(decoded.ok && equalBytes(concat(decoded.data), read));
  });

  it('does not cut at the fast levels (the cut costs CPU that a fast link needs), nor when turned off', () => {
    for (const encoder of [
      new BlockEncoder({ mode: 'zstd', zstdLevel: 1, maxBlockSize: 64 * KiB }),
      new BlockEncoder({ mode: 'zstd', zstdLevel: 7, maxBlockSize: 64 * KiB, entropySplit: false }),
    ]) {
      encoder.encode(read);
      assert.equal(encoder.stats.encode.blocks, 1);
      assert.equal(encoder.stats.encode.blocksRawHighEntropy, 0);
    }
  });

  it(`spot-checks one high-entropy piece in ${SPOT_CHECK_INTERVAL}; one that compresses turns the shortcut off`, () => {
    let t = 0;
    // Each clock read advances 1 ms: codec CPU ms counts compression calls.
    const encoder = new BlockEncoder({ mode: 'zstd', zstdLevel: 7, maxBlockSize: 64 * KiB, now: () => t++ });
    const random = randomBytes(64 * KiB, 23);
    for (let i = 0; i < 4 * SPOT_CHECK_INTERVAL; i++) encoder.encode(random);
    const s = encoder.stats.encode;
    assert.equal(s.blocksRawHighEntropy, 4 * (SPOT_CHECK_INTERVAL - 1));
    assert.equal(s.cpuMs, 4, 'only the spot checks were compressed');
    // Bytes that sample as random but repeat a 1 KiB string: zstd shrinks them to almost nothing.
    const repeated = new Uint8Array(64 * KiB);
    for (let at = 0; at < repeated.length; at += KiB) repeated.set(randomBytes(KiB, 24), at);
    const zstdBefore = s.blocksZstd;
    for (let i = 0; i < 2 * SPOT_CHECK_INTERVAL; i++) encoder.encode(repeated);
    // Up to one interval goes raw before a spot check finds out; after that, all compressed.
    assert.ok(s.blocksZstd - zstdBefore >= SPOT_CHECK_INTERVAL, `compressed ${s.blocksZstd - zstdBefore}`);
    assert.equal(s.blocksRawBackoff, 0, 'failed spot checks do not pause compression');
  });
});
