import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CODEC_LZ4, CODEC_NONE, CODEC_ZSTD, headerLength, writeBlockHeader } from '../../src/codec/block-format.ts';
import type { CodecId } from '../../src/codec/block-format.ts';
import { compressWith } from '../../src/codec/codecs.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder } from '../../src/codec/encoder.ts';
import { describeBlockError } from '../../src/codec/errors.ts';
import { concat, equalBytes, randomBytes, textLike, zeros } from './fixtures.ts';

function block(codec: CodecId, original: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerLength(codec, original, payload.length) + payload.length);
  out.set(payload, writeBlockHeader(out, 0, codec, original, payload.length));
  return out;
}

const LZ4 = { codec: 'lz4', level: 0 } as const;
const ZSTD = { codec: 'zstd', level: 3 } as const;

function expectError(decoder: BlockDecoder, bytes: Uint8Array, kind: string): void {
  const result = decoder.push(bytes);
  assert.equal(result.ok, false, `expected ${kind}`);
  if (!result.ok) {
    assert.equal(result.error.kind, kind, JSON.stringify(result.error));
    assert.match(describeBlockError(result.error), /^compression block: /);
  }
}

describe('BlockDecoder', () => {
  it('decodes several blocks from one chunk and one block from many 1-byte chunks', () => {
    const encoder = new BlockEncoder({ mode: 'zstd', maxBlockSize: 4096 });
    const data = textLike(20_000, 2);
    const framed = encoder.encode(data);
    const whole = new BlockDecoder({ maxBlockSize: 4096 }).push(framed);
    assert.ok(whole.ok);
    assert.equal(whole.data.length, 5);
    assert.ok(equalBytes(concat(whole.data), data));

    const decoder = new BlockDecoder({ maxBlockSize: 4096 });
    const out: Uint8Array[] = [];
    for (let i = 0; i < framed.length; i++) {
      const r = decoder.push(framed.subarray(i, i + 1));
      assert.ok(r.ok);
      out.push(...r.data);
    }
    assert.ok(equalBytes(concat(out), data));
  });

  it('decodes large compressed payloads split over chunks, several streams interleaved, each byte-exact (a guard for the shared assembly pool)', () => {
    // Payloads of 16 KiB and more are assembled in pooled buffers given back after each block:
    // three decoders fed in turn must never see one another's bytes, nor a block its predecessor's.
    const streams = [0, 1, 2].map((i) => {
      const data = concat([textLike(200_000, 10 + i), randomBytes(40_000, 20 + i), textLike(300_000, 30 + i)]);
      const framed = new BlockEncoder({ mode: 'zstd', maxBlockSize: 256 * 1024 }).encode(data);
      return { data, framed, at: 0, decoder: new BlockDecoder(), out: [] as Uint8Array[] };
    });
    for (let step = 0; streams.some((s) => s.at < s.framed.length); step++) {
      for (const s of streams) {
        const n = 1000 + ((step * 7919) % 9000);
        const r = s.decoder.push(s.framed.subarray(s.at, s.at + n));
        assert.ok(r.ok);
        for (const d of r.data) s.out.push(Uint8Array.from(d));
        s.at += n;
      }
    }
    for (const s of streams) assert.ok(equalBytes(concat(s.out), s.data));
  });

  it('returns nothing (not an error) for an empty push or a partial block', () => {
    const decoder = new BlockDecoder();
    const framed = new BlockEncoder({ mode: 'lz4' }).encode(zeros(10_000));
    assert.deepEqual(decoder.push(new Uint8Array(0)), { ok: true, data: [] });
    assert.deepEqual(decoder.push(framed.subarray(0, 5)), { ok: true, data: [] });
    const rest = decoder.push(framed.subarray(5));
    assert.ok(rest.ok && rest.data.length === 1 && rest.data[0]!.length === 10_000);
  });

  describe('hostile frames', () => {
    it('rejects a huge claimed original length from the header alone', () => {
      const decoder = new BlockDecoder();
      // codec none, original = 2^28 - 1, and not a single payload byte
      expectError(decoder, Uint8Array.from([CODEC_NONE, 0xff, 0xff, 0xff, 0x7f]), 'original-too-large');
    });

    it('rejects a claim one byte above a configured maximum', () => {
      const decoder = new BlockDecoder({ maxBlockSize: 1000 });
      expectError(decoder, block(CODEC_ZSTD, 1001, compressWith(ZSTD, zeros(1001))), 'original-too-large');
      const ok = new BlockDecoder({ maxBlockSize: 1000 }).push(block(CODEC_ZSTD, 1000, compressWith(ZSTD, zeros(1000))));
      assert.ok(ok.ok && ok.data[0]!.length === 1000);
    });

    it('rejects a zstd bomb: small payload that inflates beyond its declared size', () => {
      // 16 MiB of zeros compresses to a few hundred bytes; declare 64 KiB.
      const bomb = compressWith(ZSTD, zeros(16 * 1024 * 1024));
      assert.ok(bomb.length < 65536);
      const before = process.memoryUsage().arrayBuffers;
      expectError(new BlockDecoder(), block(CODEC_ZSTD, 65536, bomb), 'size-mismatch');
      // Bounded by the declared size, not the 16 MiB the payload would produce (loose bound: GC timing).
      assert.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024);
    });

    it('the levels auto may now pick (zstd 5, 7, 9) decode through the same bounds', () => {
      for (const level of [5, 7, 9]) {
        const setting = { codec: 'zstd', level } as const;
        const data = textLike(64 * 1024, level);
        const ok = new BlockDecoder().push(block(CODEC_ZSTD, data.length, compressWith(setting, data)));
        assert.ok(ok.ok && equalBytes(ok.data[0]!, data), `level ${level} round trip`);
        // A denser level makes a denser bomb; the declared size still bounds it.
        expectError(new BlockDecoder(), block(CODEC_ZSTD, 65536, compressWith(setting, zeros(16 * 1024 * 1024))), 'size-mismatch');
        expectError(new BlockDecoder(), block(CODEC_ZSTD, 4000, compressWith(setting, textLike(5000, 1))), 'size-mismatch');
      }
    });

    for (const [name, codec, setting] of [
      ['lz4', CODEC_LZ4, LZ4],
      ['zstd', CODEC_ZSTD, ZSTD],
    ] as const) {
      it(`${name}: payload decompressing to more than declared is size-mismatch`, () => {
        const payload = compressWith(setting, textLike(5000, 1));
        expectError(new BlockDecoder(), block(codec, 4000, payload), 'size-mismatch');
      });

      it(`${name}: payload decompressing to less than declared is size-mismatch`, () => {
        const payload = compressWith(setting, textLike(5000, 1));
        const decoder = new BlockDecoder();
        const r = decoder.push(block(codec, 6000, payload));
        assert.ok(!r.ok);
        if (!r.ok) assert.deepEqual(r.error, { kind: 'size-mismatch', codec: name, expected: 6000, actual: 5000 });
      });

      it(`${name}: garbage payload is a typed error`, () => {
        const garbage = randomBytes(500, 11);
        const r = new BlockDecoder().push(block(codec, 1000, garbage));
        assert.ok(!r.ok);
        if (!r.ok) assert.ok(r.error.kind === 'decompress-failed' || r.error.kind === 'size-mismatch', r.error.kind);
      });
    }

    it('reports a stream that ends inside a block as truncated', () => {
      const framed = new BlockEncoder({ mode: 'zstd' }).encode(textLike(10_000, 3));
      for (const cut of [1, 2, framed.length - 1]) {
        const decoder = new BlockDecoder();
        assert.ok(decoder.push(framed.subarray(0, cut)).ok);
        const end = decoder.finish();
        assert.ok(!end.ok);
        if (!end.ok) assert.equal(end.error.kind, 'truncated');
      }
      const complete = new BlockDecoder();
      assert.ok(complete.push(framed).ok);
      assert.deepEqual(complete.finish(), { ok: true });
    });

    it('stays failed after an error and counts it once', () => {
      const decoder = new BlockDecoder();
      expectError(decoder, Uint8Array.from([9, 1, 0]), 'unknown-codec');
      const good = new BlockEncoder({ mode: 'none' }).encode(textLike(10, 1));
      expectError(decoder, good, 'unknown-codec');
      assert.ok(!decoder.finish().ok);
      assert.equal(decoder.stats.decode.errors, 1);
      assert.equal(decoder.error?.kind, 'unknown-codec');
    });

    it('delivers the blocks before a bad one, then fails', () => {
      const good = new BlockEncoder({ mode: 'none' }).encode(textLike(100, 1));
      const decoder = new BlockDecoder();
      const first = decoder.push(good);
      assert.ok(first.ok && first.data.length === 1);
      expectError(decoder, concat([good, Uint8Array.from([CODEC_NONE, 0])]), 'empty-block');
    });
  });
});
