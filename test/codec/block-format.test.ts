import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CODEC_LZ4,
  CODEC_NONE,
  CODEC_ZSTD,
  MAX_HEADER_LENGTH,
  headerLength,
  parseBlockHeader,
  writeBlockHeader,
} from '../../src/codec/block-format.ts';
import type { CodecId } from '../../src/codec/block-format.ts';

const MAX = 256 * 1024;

function header(codec: CodecId, original: number, payload: number): Uint8Array {
  const out = new Uint8Array(headerLength(codec, original, payload));
  assert.equal(writeBlockHeader(out, 0, codec, original, payload), out.length);
  return out;
}

describe('block header', () => {
  it('round-trips lengths across every varint width', () => {
    for (const codec of [CODEC_NONE, CODEC_LZ4, CODEC_ZSTD] as const) {
      for (const original of [1, 127, 128, 16383, 16384, 65536, MAX, 2_097_151, 2_097_152, 16 * 1024 * 1024]) {
        const payload = codec === CODEC_NONE ? original : Math.max(1, original >> 1);
        const bytes = header(codec, original, payload);
        const parsed = parseBlockHeader(bytes, 0, bytes.length, 16 * 1024 * 1024);
        assert.equal(parsed.status, 'ok', `codec ${codec} original ${original}`);
        if (parsed.status !== 'ok') continue;
        assert.deepEqual(parsed.header, { codec, originalLength: original, payloadLength: payload, headerLength: bytes.length });
      }
    }
  });

  it('is compact: a raw keystroke costs 2 bytes, a 256 KiB compressed block 7', () => {
    assert.equal(headerLength(CODEC_NONE, 1, 1), 2);
    assert.equal(headerLength(CODEC_ZSTD, MAX, 60000), 7);
    assert.ok(headerLength(CODEC_ZSTD, 16 * 1024 * 1024, 16 * 1024 * 1024) <= MAX_HEADER_LENGTH);
  });

  it('reports incomplete for every strict prefix', () => {
    const bytes = header(CODEC_LZ4, 200_000, 50_000);
    for (let end = 0; end < bytes.length; end++) {
      assert.deepEqual(parseBlockHeader(bytes, 0, end, MAX), { status: 'incomplete' });
    }
  });

  it('parses at an offset inside a larger buffer', () => {
    const h = header(CODEC_ZSTD, 1000, 10);
    const buf = new Uint8Array(5 + h.length + 3);
    buf.set(h, 5);
    const parsed = parseBlockHeader(buf, 5, buf.length, MAX);
    assert.equal(parsed.status, 'ok');
    if (parsed.status === 'ok') assert.equal(parsed.header.payloadLength, 10);
  });

  const errors: [string, number[], string][] = [
    ['unknown codec id', [3, 1], 'unknown-codec'],
    ['codec id 255', [255, 1], 'unknown-codec'],
    ['zero original length', [CODEC_NONE, 0], 'empty-block'],
    ['non-minimal varint', [CODEC_NONE, 0x81, 0x00], 'malformed-length'],
    ['five-byte varint', [CODEC_NONE, 0xff, 0xff, 0xff, 0xff, 0x01], 'malformed-length'],
    ['claimed 256 MiB - 1', [CODEC_NONE, 0xff, 0xff, 0xff, 0x7f], 'original-too-large'],
    ['one byte over the maximum', [CODEC_NONE, ...varint(MAX + 1)], 'original-too-large'],
    ['payload larger than original', [CODEC_LZ4, ...varint(100), ...varint(101)], 'bad-payload-length'],
    ['zero payload', [CODEC_ZSTD, ...varint(100), 0], 'bad-payload-length'],
    ['non-minimal payload varint', [CODEC_ZSTD, ...varint(100), 0x85, 0x00], 'malformed-length'],
  ];
  for (const [name, bytes, kind] of errors) {
    it(`rejects ${name} as ${kind}`, () => {
      const parsed = parseBlockHeader(Uint8Array.from(bytes), 0, bytes.length, MAX);
      assert.equal(parsed.status, 'error');
      if (parsed.status === 'error') assert.equal(parsed.error.kind, kind);
    });
  }

  it('rejects an oversized claim before the payload length has even arrived', () => {
    const bytes = Uint8Array.from([CODEC_ZSTD, ...varint(MAX * 4)]);
    const parsed = parseBlockHeader(bytes, 0, bytes.length, MAX);
    assert.equal(parsed.status, 'error');
    if (parsed.status === 'error') assert.deepEqual(parsed.error, { kind: 'original-too-large', claimed: MAX * 4, max: MAX });
  });
});

function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return out;
}
