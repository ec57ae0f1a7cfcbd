import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder } from '../../src/codec/encoder.ts';
import type { BlockEncoderOptions } from '../../src/codec/encoder.ts';
import { alreadyCompressed, concat, equalBytes, randomBytes, textLike, vmImage, zeros } from './fixtures.ts';

const SIZE = 1024 * 1024 + 12345; // not a multiple of any block size
const payloads: [string, Uint8Array, 'compresses' | 'raw'][] = [
  ['random', randomBytes(SIZE, 3), 'raw'],
  ['zeros', zeros(SIZE), 'compresses'],
  ['text-like', textLike(SIZE, 4), 'compresses'],
  ['vm image', vmImage(SIZE, 5), 'compresses'],
  ['already compressed (gzip)', alreadyCompressed(SIZE, 6), 'raw'],
];
const configs: [string, BlockEncoderOptions][] = [
  ['none', { mode: 'none' }],
  ['lz4', { mode: 'lz4' }],
  ['zstd 1', { mode: 'zstd', zstdLevel: 1 }],
  ['zstd 3', { mode: 'zstd', zstdLevel: 3 }],
  ['zstd -3', { mode: 'zstd', zstdLevel: -3 }],
  // A clock that never advances makes codecs look infinitely fast, so the choice depends on the
  // link alone and not on how loaded the test machine is.
  // The model alone (the measured check against raw needs real time to pass: it starts raw).
  ['auto @100 Mbit/s', { mode: 'auto', linkRateBps: 100e6, now: () => 0, checkAgainstRaw: false }],
  ['auto @1 Gbit/s', { mode: 'auto', linkRateBps: 1e9, now: () => 0, checkAgainstRaw: false }],
];

// Feeds the encoder in uneven socket-sized reads, as the gateway would.
function encodeAll(encoder: BlockEncoder, data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const reads = [65536, 1, 300, 131072, 7, 262144, 40000];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = Math.min(reads[i % reads.length]!, data.length - at);
    out.push(encoder.encode(data.subarray(at, at + n)));
    at += n;
  }
  return out;
}

describe('round trip', () => {
  for (const [payloadName, data, expectation] of payloads) {
    for (const [configName, options] of configs) {
      it(`${configName} on ${payloadName}`, () => {
        const encoder = new BlockEncoder(options);
        const decoder = new BlockDecoder();
        const decoded: Uint8Array[] = [];
        for (const framed of encodeAll(encoder, data)) {
          const result = decoder.push(framed);
          assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.error));
          decoded.push(...result.data);
        }
        assert.deepEqual(decoder.finish(), { ok: true });
        assert.ok(equalBytes(concat(decoded), data));
        const enc = encoder.stats.snapshot().encode;
        const dec = decoder.stats.snapshot().decode;
        assert.equal(enc.bytesIn, data.length);
        assert.equal(dec.bytesOut, data.length);
        assert.equal(dec.bytesIn, enc.bytesOut);
        assert.equal(dec.blocks, enc.blocks);
        assert.equal(enc.blocksRaw + enc.blocksLz4 + enc.blocksZstd, enc.blocks);
        assert.equal(enc.blocksRawIncompressible + enc.blocksRawHighEntropy + enc.blocksRawBackoff + enc.blocksRawByChoice, enc.blocksRaw);
        if (options.mode === 'none') {
          assert.equal(enc.blocksRaw, enc.blocks);
        } else if (expectation === 'raw') {
          assert.equal(enc.blocksLz4 + enc.blocksZstd, 0, 'incompressible data must go raw');
          assert.ok(enc.ratio < 1.001, `framing overhead ${enc.ratio}`);
        } else {
          assert.ok(enc.ratio < 0.8, `ratio ${enc.ratio}`);
          if (options.mode === 'lz4') assert.ok(enc.blocksLz4 > 0 && enc.blocksZstd === 0);
          if (options.mode === 'zstd') assert.ok(enc.blocksZstd > 0 && enc.blocksLz4 === 0);
        }
      });
    }
  }

  it('the encoder keeps no reference to its input; raw blocks decode as views of the chunk (no copy)', () => {
    const encoder = new BlockEncoder({ mode: 'none' });
    const decoder = new BlockDecoder();
    const input = textLike(1000, 9);
    const original = input.slice();
    const framed = encoder.encode(input);
    input.fill(0); // the gateway reuses its read buffer
    const chunk = framed.slice();
    const result = decoder.push(chunk);
    assert.ok(result.ok);
    assert.ok(equalBytes(concat(result.data), original));
    assert.ok(
      result.data.every((d) => d.buffer === chunk.buffer),
      'raw bytes are views of the chunk',
    );
    // Split anywhere, a raw block still comes out as it arrives, piece by piece.
    const split = new BlockDecoder();
    const pieces: Uint8Array[] = [];
    for (let at = 0; at < framed.length; at += 7) {
      const r = split.push(framed.subarray(at, at + 7));
      assert.ok(r.ok);
      pieces.push(...r.data);
    }
    assert.ok(split.finish().ok);
    assert.ok(equalBytes(concat(pieces), original));
  });
});
