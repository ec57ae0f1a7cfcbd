import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BACKOFF_INHERITED_EXTRA_FAILURES, BACKOFF_INITIAL_SKIP_BYTES, BACKOFF_MAX_SKIP_BYTES } from '../../src/codec/backoff.ts';
import { parseBlockHeader } from '../../src/codec/block-format.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder, MIN_COMPRESS_SIZE } from '../../src/codec/encoder.ts';
import { PathMemory } from '../../src/codec/path-memory.ts';
import { CodecStats } from '../../src/codec/stats.ts';
import { concat, equalBytes, partlyRandom, randomBytes, textLike, zeros } from './fixtures.ts';

const KiB = 1024;

function headersOf(framed: Uint8Array): { codec: number; originalLength: number; payloadLength: number }[] {
  const out: { codec: number; originalLength: number; payloadLength: number }[] = [];
  for (let at = 0; at < framed.length; ) {
    const parsed = parseBlockHeader(framed, at, framed.length, 16 * 1024 * 1024);
    assert.equal(parsed.status, 'ok');
    if (parsed.status !== 'ok') break;
    out.push(parsed.header);
    at += parsed.header.headerLength + parsed.header.payloadLength;
  }
  return out;
}

describe('BlockEncoder', () => {
  it('never waits for more data: one byte in, one complete block out', () => {
    const encoder = new BlockEncoder();
    const framed = encoder.encode(Uint8Array.of(42));
    assert.deepEqual([...framed], [0, 1, 42]);
    const r = new BlockDecoder().push(framed);
    assert.ok(r.ok && r.data.length === 1 && r.data[0]![0] === 42);
  });

  it('returns an empty buffer for empty input and counts nothing', () => {
    const encoder = new BlockEncoder();
    assert.equal(encoder.encode(new Uint8Array(0)).length, 0);
    assert.equal(encoder.stats.encode.blocks, 0);
  });

  it('cuts input into blocks of at most maxBlockSize', () => {
    const encoder = new BlockEncoder({ mode: 'zstd', maxBlockSize: 64 * KiB });
    const headers = headersOf(encoder.encode(textLike(200 * KiB, 1)));
    assert.deepEqual(
      headers.map((h) => h.originalLength),
      [64 * KiB, 64 * KiB, 64 * KiB, 8 * KiB],
    );
    assert.ok(headers.every((h) => h.codec === 2));
  });

  it(`sends blocks shorter than ${MIN_COMPRESS_SIZE} bytes raw without trying`, () => {
    const encoder = new BlockEncoder({ mode: 'zstd' });
    encoder.encode(zeros(MIN_COMPRESS_SIZE - 1));
    assert.equal(encoder.stats.encode.blocksRawByChoice, 1);
    assert.equal(encoder.stats.encode.cpuMs, 0);
  });

  describe('80% rule', () => {
    it('sends a block that compresses to ~85% raw and one at ~70% compressed', () => {
      const encoder = new BlockEncoder({ mode: 'lz4', maxBlockSize: 64 * KiB });
      const notEnough = encoder.encode(partlyRandom(64 * KiB, 0.85, 1));
      assert.equal(headersOf(notEnough)[0]!.codec, 0);
      assert.equal(encoder.stats.encode.blocksRawIncompressible, 1);
      const enough = encoder.encode(partlyRandom(64 * KiB, 0.7, 2));
      const h = headersOf(enough)[0]!;
      assert.equal(h.codec, 1);
      assert.ok(h.payloadLength <= 0.8 * 64 * KiB && h.payloadLength > 0.6 * 64 * KiB, `payload ${h.payloadLength}`);
      assert.equal(encoder.stats.encode.blocksLz4, 1);
    });

    it('applies to zstd too', () => {
      const encoder = new BlockEncoder({ mode: 'zstd', maxBlockSize: 64 * KiB });
      assert.equal(headersOf(encoder.encode(partlyRandom(64 * KiB, 0.85, 3)))[0]!.codec, 0);
      assert.equal(headersOf(encoder.encode(partlyRandom(64 * KiB, 0.7, 4)))[0]!.codec, 2);
    });
  });

  describe('back-off', () => {
    it('tries few blocks of random data (logarithmic in its size) and resumes on compressible data', () => {
      const stats = new CodecStats();
      const encoder = new BlockEncoder({ mode: 'zstd', maxBlockSize: 64 * KiB, stats });
      const random = randomBytes(64 * KiB, 5);
      const blocks = 1024; // 64 MiB
      for (let i = 0; i < blocks; i++) encoder.encode(random);
      const tried = stats.encode.blocksRawIncompressible;
      // 2 before the first pause, then pauses of 128 KiB, 256 KiB, ... up to 8 MiB: ~14 probes in 64 MiB.
      assert.ok(tried >= 3 && tried <= 20, `tried ${tried} of ${blocks}`);
      assert.equal(stats.encode.blocksRawBackoff, blocks - tried);
      assert.equal(stats.encode.blocksZstd, 0);

      // Compressible data again: compression resumes within one maximal pause.
      const text = textLike(64 * KiB, 6);
      let resumedAfter = -1;
      for (let i = 0; i < BACKOFF_MAX_SKIP_BYTES / (64 * KiB) + 2; i++) {
        encoder.encode(text);
        if (stats.encode.blocksZstd > 0) {
          resumedAfter = i;
          break;
        }
      }
      assert.ok(resumedAfter >= 0, 'compression never resumed');
      // And a success ends the back-off: the next blocks compress straight away.
      for (let i = 0; i < 4; i++) encoder.encode(text);
      assert.equal(stats.encode.blocksZstd, 5);
    });

    it("a stream's failed block on a path whose last blocks all failed pauses it at once; a block that samples as random there is not tried", () => {
      // 256 KiB echo connections of random data through one association: each used to try three
      // of its four blocks before its own back-off paused.
      const path = new PathMemory();
      const stream = (): { encoder: BlockEncoder; stats: CodecStats } => {
        const stats = new CodecStats();
        return { encoder: new BlockEncoder({ mode: 'lz4', maxBlockSize: 64 * KiB, stats, pathMemory: path }), stats };
      };
      const random = randomBytes(64 * KiB, 9);
      const first = stream();
      for (let i = 0; i < 4; i++) first.encoder.encode(random);
      assert.equal(first.stats.encode.blocksRawIncompressible, 3, 'alone on the path, its own back-off: three tries');
      assert.equal(path.failStreak, 3);
      const next = stream();
      for (let i = 0; i < 4; i++) next.encoder.encode(random);
      assert.equal(next.stats.encode.blocksRawIncompressible, 0, 'the next one compresses none of its 256 KiB');
      assert.equal(next.stats.encode.blocksRawHighEntropy, 1, 'its first block samples as random: not tried');
      assert.equal(next.stats.encode.blocksRawBackoff, 3);
      const inheritedPause = BACKOFF_INITIAL_SKIP_BYTES * 2 ** BACKOFF_INHERITED_EXTRA_FAILURES;
      const long = stream();
      for (let i = 0; i < 1 + inheritedPause / (64 * KiB) + 1; i++) long.encoder.encode(random);
      assert.equal(long.stats.encode.blocksRawBackoff, inheritedPause / (64 * KiB), 'its pause starts at the inherited length');
      assert.equal(long.stats.encode.blocksRawHighEntropy, 2, 'and the block after it samples random again');
      assert.equal(long.stats.encode.blocksRawIncompressible, 0);

      // A stream of compressible data on that path compresses from its first block, and a
      // success clears the path's record.
      const text = textLike(64 * KiB, 10);
      const compressible = stream();
      for (let i = 0; i < 4; i++) compressible.encoder.encode(text);
      assert.equal(compressible.stats.encode.blocksLz4, 4);
      assert.equal(path.failStreak, 0);
      const after = stream();
      for (let i = 0; i < 2; i++) after.encoder.encode(random);
      assert.equal(after.stats.encode.blocksRawIncompressible, 2, 'a clean record: the usual three tries before a pause');
    });

    it('does not pause for a single incompressible block among compressible ones', () => {
      const encoder = new BlockEncoder({ mode: 'lz4', maxBlockSize: 64 * KiB });
      const text = textLike(64 * KiB, 7);
      encoder.encode(text);
      encoder.encode(randomBytes(64 * KiB, 8));
      encoder.encode(text);
      encoder.encode(text);
      const s = encoder.stats.encode;
      assert.equal(s.blocksRawIncompressible, 1);
      assert.equal(s.blocksRawBackoff, 0);
      assert.equal(s.blocksLz4, 3);
    });

    it('costs almost no codec CPU on random data (measured with an injected clock)', () => {
      let t = 0;
      // Every clock read advances 1 ms, so each compression call "costs" 1 ms.
      const encoder = new BlockEncoder({ mode: 'lz4', maxBlockSize: 64 * KiB, now: () => t++ });
      const random = randomBytes(64 * KiB, 9);
      for (let i = 0; i < 512; i++) encoder.encode(random);
      const s = encoder.stats.snapshot().encode;
      assert.equal(s.cpuMs, s.blocksRawIncompressible);
      assert.ok(s.cpuMs < 20, `cpu ${s.cpuMs} ms for 512 blocks`);
    });
  });

  it('counts into a shared CodecStats and reports ratio and setting', () => {
    const stats = new CodecStats();
    const a = new BlockEncoder({ mode: 'zstd', zstdLevel: 1, stats });
    const b = new BlockEncoder({ mode: 'zstd', zstdLevel: 1, stats });
    const data = zeros(100 * KiB);
    const out = a.encode(data).length + b.encode(data).length;
    const snap = stats.snapshot();
    assert.equal(snap.encode.bytesIn, 200 * KiB);
    assert.equal(snap.encode.bytesOut, out);
    assert.equal(snap.encode.ratio, out / (200 * KiB));
    assert.equal(snap.encode.setting, 'zstd:1');
    assert.equal(new CodecStats().snapshot().encode.ratio, 1);
  });

  it('rejects a block size the format cannot carry', () => {
    assert.throws(() => new BlockEncoder({ maxBlockSize: 0 }), RangeError);
    assert.throws(() => new BlockEncoder({ maxBlockSize: 32 * 1024 * 1024 }), RangeError);
  });

  it('round-trips input mixing every kind of block', () => {
    const encoder = new BlockEncoder({ mode: 'auto', linkRateBps: 100e6, maxBlockSize: 32 * KiB });
    const parts = [textLike(100 * KiB, 1), randomBytes(100 * KiB, 2), zeros(5), textLike(40, 3), zeros(70 * KiB)];
    const decoder = new BlockDecoder({ maxBlockSize: 32 * KiB });
    const out: Uint8Array[] = [];
    for (const p of parts) {
      const r = decoder.push(encoder.encode(p));
      assert.ok(r.ok);
      out.push(...r.data);
    }
    assert.ok(equalBytes(concat(out), concat(parts)));
  });
});
