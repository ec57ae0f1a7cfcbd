import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CODEC_NONE, parseBlockHeader } from '../../src/codec/block-format.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder, COMPRESSION_MODES } from '../../src/codec/encoder.ts';
import { concat, equalBytes, textLike, vmImage } from './fixtures.ts';

// Fixed seeds keep runs reproducible; a failure prints its seed and path for replay.
const RUNS = { numRuns: 150, seed: 0x10ab };

/** Input material: compressible, incompressible and mixed pieces. */
const piece = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 3000 }),
  fc.integer({ min: 0, max: 40_000 }).map((n) => new Uint8Array(n)),
  fc.tuple(fc.integer({ min: 1, max: 40_000 }), fc.integer({ min: 1, max: 1000 })).map(([n, s]) => textLike(n, s)),
);

/** Splits `data` at the given (sorted, deduplicated) cut points. */
function split(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

function decodeChunks(decoder: BlockDecoder, chunks: Uint8Array[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (const c of chunks) {
    const r = decoder.push(c);
    assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.error));
    out.push(...r.data);
  }
  return concat(out);
}

describe('codec properties', () => {
  it('any writes, any mode, any block size, any chunking of the stream: decodes to the input', () => {
    fc.assert(
      fc.property(
        fc.array(piece, { minLength: 1, maxLength: 6 }),
        fc.constantFrom(...COMPRESSION_MODES),
        fc.integer({ min: 1, max: 70_000 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (writes, mode, maxBlockSize, cuts) => {
          const encoder = new BlockEncoder({ mode, maxBlockSize, linkRateBps: 100e6 });
          const stream = concat(writes.map((w) => encoder.encode(w)));
          const decoder = new BlockDecoder({ maxBlockSize });
          const decoded = decodeChunks(decoder, split(stream, cuts));
          assert.ok(equalBytes(decoded, concat(writes)));
          assert.deepEqual(decoder.finish(), { ok: true });
        },
      ),
      RUNS,
    );
  });

  it('random bytes never throw: typed error or (partial) data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const decoder = new BlockDecoder({ maxBlockSize: 4096 });
        let produced = 0;
        for (const c of split(bytes, cuts)) {
          const r = decoder.push(c);
          if (!r.ok) {
            assert.equal(typeof r.error.kind, 'string');
            return;
          }
          for (const d of r.data) {
            assert.ok(d.length >= 1 && d.length <= 4096);
            produced += d.length;
          }
        }
        decoder.finish();
        assert.ok(produced <= 4096 * bytes.length);
      }),
      { ...RUNS, numRuns: 1000 },
    );
  });

  it('mutated encoded streams never throw and never yield a block above the limit', () => {
    const source = vmImage(256 * 1024, 3);
    const streams = (['lz4', 'zstd', 'none'] as const).map((mode) => new BlockEncoder({ mode, maxBlockSize: 16 * 1024 }).encode(source));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (which, flips, cut) => {
          const stream = streams[which]!.slice();
          for (const [at, value] of flips) stream[at % stream.length] = value;
          const decoder = new BlockDecoder({ maxBlockSize: 16 * 1024 });
          for (const c of split(stream, [cut])) {
            const r = decoder.push(c);
            if (!r.ok) return;
            for (const d of r.data) assert.ok(d.length <= 16 * 1024);
          }
        },
      ),
      { ...RUNS, numRuns: 400 },
    );
  });

  it('truncating an encoded stream: finish() is ok exactly at block boundaries, else truncated', () => {
    const stream = new BlockEncoder({ mode: 'zstd', maxBlockSize: 8192 }).encode(textLike(30_000, 1));
    const boundaries = new Set<number>();
    for (let at = 0; at < stream.length; ) {
      const h = parseBlockHeader(stream, at, stream.length, 8192);
      assert.equal(h.status, 'ok');
      if (h.status !== 'ok') return;
      at += h.header.headerLength + h.header.payloadLength;
      boundaries.add(at);
    }
    assert.equal(boundaries.size, 4);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: stream.length - 1 }), (cut) => {
        const decoder = new BlockDecoder({ maxBlockSize: 8192 });
        assert.ok(decoder.push(stream.subarray(0, cut)).ok);
        const end = decoder.finish();
        assert.equal(end.ok, boundaries.has(cut), `cut ${cut}`);
        if (!end.ok) assert.equal(end.error.kind, 'truncated');
      }),
      RUNS,
    );
    for (const b of boundaries) {
      const decoder = new BlockDecoder({ maxBlockSize: 8192 });
      decoder.push(stream.subarray(0, b));
      assert.ok(decoder.finish().ok);
    }
  });
});

describe('encodeParts', () => {
  it('gives the bytes of encode(), in order, with raw payloads as views of the input (no copy)', () => {
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.constantFrom(...COMPRESSION_MODES), (pieces, mode) => {
        const data = concat(pieces);
        const whole = new BlockEncoder({ mode }).encode(data);
        const parts = new BlockEncoder({ mode }).encodeParts(data);
        assert.ok(equalBytes(concat(parts), whole));
        let raw = 0;
        for (let i = 1; i < parts.length; i += 2) {
          // A raw block's payload is the input's own bytes.
          if (parts[i - 1]![0] === CODEC_NONE) {
            assert.equal(parts[i]!.buffer, data.buffer);
            raw++;
          }
        }
        if (mode === 'none') assert.equal(raw, parts.length / 2);
        assert.ok(equalBytes(decodeChunks(new BlockDecoder(), parts), data));
      }),
      RUNS,
    );
  });
});
