// zstd through the lh_zstd addon (one context per process, output into the caller's buffers) must
// write the frames node:zlib writes and read what it reads; decoded blocks land in lent buffers.
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { describe, it } from 'node:test';
import { CODEC_LZ4, CODEC_ZSTD, headerLength, writeBlockHeader } from '../../src/codec/block-format.ts';
import type { CodecId } from '../../src/codec/block-format.ts';
import { compressWith, decompressWith } from '../../src/codec/codecs.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { compressNative, isLentCompressed, nativeZstd, releaseCompressed } from '../../src/codec/zstd-native.ts';
import { concat, equalBytes, randomBytes, textLike, zeros } from './fixtures.ts';

const skip = nativeZstd === null ? 'lh_zstd addon not built (make -C native)' : false;

function block(codec: CodecId, original: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerLength(codec, original, payload.length) + payload.length);
  out.set(payload, writeBlockHeader(out, 0, codec, original, payload.length));
  return out;
}

function zlibCompress(data: Uint8Array, level: number): Buffer {
  const c = zlib.constants;
  return zlib.zstdCompressSync(data, {
    params: { [c.ZSTD_c_compressionLevel]: level, [c.ZSTD_c_checksumFlag]: 0, [c.ZSTD_c_contentSizeFlag]: 0 },
  });
}

describe('zstd through lh_zstd', { skip }, () => {
  const inputs = [
    textLike(200_000, 3),
    zeros(262_144),
    randomBytes(70_000, 9),
    concat([zeros(9000), textLike(9000, 4), randomBytes(9000, 5)]),
  ];

  it('writes the same frames as node:zlib at levels 1, 3 and -5, and each side decodes the other', () => {
    for (const data of inputs) {
      for (const level of [1, 3, -5]) {
        const ours = compressWith({ codec: 'zstd', level }, data);
        const theirs = zlibCompress(data, level);
        assert.ok(equalBytes(ours, theirs), `level ${level}, ${data.length} bytes: ${ours.length} against ${theirs.length}`);
        assert.ok(equalBytes(zlib.zstdDecompressSync(ours), data));
        const back = decompressWith(CODEC_ZSTD, theirs, data.length);
        assert.ok(back.ok && equalBytes(back.data, data));
      }
    }
  });

  it('a compressed output is its own copy: the next compression does not change it', () => {
    const a = compressWith({ codec: 'zstd', level: 1 }, inputs[0]!);
    const kept = a.slice();
    compressWith({ codec: 'zstd', level: 1 }, inputs[3]!);
    assert.ok(equalBytes(a, kept));
  });

  it('peer input: garbage, a frame larger than declared and one smaller are typed errors, never more than declared written', () => {
    const data = textLike(50_000, 6);
    const frame = compressWith({ codec: 'zstd', level: 3 }, data);
    const lent = new Uint8Array(60_000).fill(0xee);
    const larger = decompressWith(CODEC_ZSTD, frame, 40_000, () => lent);
    assert.ok(!larger.ok && larger.error.kind === 'size-mismatch');
    assert.ok(
      lent.subarray(40_000).every((b) => b === 0xee),
      'nothing written past the declared size',
    );
    const smaller = decompressWith(CODEC_ZSTD, frame, 50_001);
    assert.ok(!smaller.ok && smaller.error.kind === 'size-mismatch');
    const garbage = decompressWith(CODEC_ZSTD, randomBytes(3000, 7), 50_000);
    assert.ok(!garbage.ok && garbage.error.kind === 'decompress-failed');
  });

  it('wrong argument types throw (a caller bug), unlike anything in the data', () => {
    const z = nativeZstd!;
    assert.throws(() => z.compress('text' as never, new Uint8Array(10), 1), TypeError);
    assert.throws(() => z.compress(new Uint8Array(10), new Uint8Array(10), 'x' as never), TypeError);
    assert.throws(() => z.decompress(new Uint8Array(10), new Uint16Array(10) as never), TypeError);
    assert.equal(z.decompress(new Uint8Array(10), new Uint8Array(10)), -1);
  });

  it('the decoder writes zstd blocks into the buffers it is lent, and lz4 blocks or oversized ones into fresh memory', () => {
    const a = textLike(30_000, 1);
    const b = textLike(30_000, 2);
    const stream = concat([
      block(CODEC_ZSTD, a.length, compressWith({ codec: 'zstd', level: 3 }, a)),
      block(CODEC_LZ4, b.length, compressWith({ codec: 'lz4', level: 0 }, b)),
      block(CODEC_ZSTD, b.length, compressWith({ codec: 'zstd', level: 3 }, b)),
    ]);
    const lent: Uint8Array[] = [];
    const asked: number[] = [];
    const r = new BlockDecoder().push(stream, (size) => {
      asked.push(size);
      const buf = new Uint8Array(asked.length === 2 ? size - 1 : 65_536); // the second loan is too small
      lent.push(buf);
      return buf;
    });
    assert.ok(r.ok);
    assert.deepEqual(asked, [30_000, 30_000], 'asked once per zstd block');
    assert.ok(equalBytes(r.data[0]!, a) && equalBytes(r.data[1]!, b) && equalBytes(r.data[2]!, b));
    assert.equal(r.data[0]!.buffer, lent[0]!.buffer, 'the first zstd block is a view of its loan');
    assert.notEqual(r.data[2]!.buffer, lent[1]!.buffer, 'a loan too small is not used');
    assert.ok(!lent.some((l) => l.buffer === r.data[1]!.buffer), 'lz4 writes into fresh memory');
  });

  it('lends a pooled buffer for a large block until released, and takes it back only once', { skip }, () => {
    const addon = nativeZstd!;
    const big = textLike(200_000, 5);
    const first = compressNative(addon, big, 3);
    assert.ok(isLentCompressed(first));
    const second = compressNative(addon, big, 3);
    assert.notEqual(second.buffer, first.buffer, 'a lent buffer is not lent again');
    assert.ok(equalBytes(first, second));
    const kept = Uint8Array.from(first);
    releaseCompressed(first);
    releaseCompressed(first.subarray(1)); // a second release of the same buffer: ignored
    assert.equal(isLentCompressed(first), false);
    const third = compressNative(addon, textLike(200_000, 6), 3);
    const fourth = compressNative(addon, textLike(200_000, 7), 3);
    assert.notEqual(third.buffer, fourth.buffer, 'released twice, yet lent once');
    assert.ok(equalBytes(second, kept), 'a buffer still lent is left alone');
    const r = decompressWith(CODEC_ZSTD, third, 200_000);
    assert.ok(r.ok && equalBytes(r.data, textLike(200_000, 6)));
    // A small block is copied out at its size, never lent.
    const small = compressNative(addon, textLike(8_000, 8), 3);
    assert.equal(isLentCompressed(small), false);
    assert.equal(small.buffer.byteLength, small.length);
    for (const b of [second, third, fourth]) releaseCompressed(b);
  });
});
