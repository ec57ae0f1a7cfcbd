import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import {
  CHUNK_SIZE,
  DEFAULT_VM_MIX,
  PAGE_SIZE,
  PayloadSource,
  PreparedPayload,
  VmImage,
  type PayloadKind,
} from '../../src/lab/workloads/payload.ts';

function digest(kind: PayloadKind, bytes: number, options: ConstructorParameters<typeof PayloadSource>[2] = {}): string {
  const src = new PayloadSource(kind, bytes, options);
  const h = createHash('sha256');
  let n = 0;
  let c: Buffer | null;
  while ((c = src.next())) {
    h.update(c);
    n += c.length;
  }
  assert.equal(n, bytes);
  return h.digest('hex');
}

function collect(kind: PayloadKind, bytes: number, options: ConstructorParameters<typeof PayloadSource>[2] = {}): Buffer {
  const src = new PayloadSource(kind, bytes, options);
  const parts: Buffer[] = [];
  let c: Buffer | null;
  while ((c = src.next())) parts.push(c);
  return Buffer.concat(parts);
}

const image = new VmImage(1);

test('payloads are deterministic from the seed, and differ across seeds and versions', () => {
  for (const kind of ['random', 'vm'] as const) {
    const size = 3 * CHUNK_SIZE + 12345; // a partial last chunk and a partial last page
    assert.equal(digest(kind, size, { seed: 7 }), digest(kind, size, { seed: 7 }));
    assert.notEqual(digest(kind, size, { seed: 7 }), digest(kind, size, { seed: 8 }));
    assert.notEqual(digest(kind, size, { seed: 7 }), digest(kind, size, { seed: 7, version: 1 }));
  }
});

test('a shorter stream is a prefix of a longer one, and a stream can start at a later page', () => {
  for (const kind of ['random', 'vm'] as const) {
    const long = collect(kind, 4 * CHUNK_SIZE, { image });
    const short = collect(kind, CHUNK_SIZE + 100, { image });
    assert.deepEqual(short, long.subarray(0, short.length));
    const tail = collect(kind, 2 * CHUNK_SIZE, { image, firstPage: (2 * CHUNK_SIZE) / PAGE_SIZE });
    assert.deepEqual(tail, long.subarray(2 * CHUNK_SIZE));
  }
});

test('vm pages follow the documented mix and each class has its content', () => {
  const pages = 64 * 1024; // 256 MiB worth of class decisions
  const counts = { zero: 0, text: 0, structured: 0, random: 0 };
  for (let i = 0; i < pages; i++) counts[image.pageClass(i)]++;
  for (const cls of Object.keys(counts) as Array<keyof typeof counts>) {
    // Classes are drawn per 8-page run: 8192 draws, so a few percent of slack is generous.
    assert.ok(Math.abs(counts[cls] / pages - DEFAULT_VM_MIX[cls]) < 0.03, `${cls}: ${counts[cls] / pages} vs ${DEFAULT_VM_MIX[cls]}`);
  }
  const data = collect('vm', 8 * CHUNK_SIZE, { image });
  const seen = new Set<string>();
  for (let i = 0; i < data.length / PAGE_SIZE; i++) {
    const page = data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    const cls = image.pageClass(i);
    const ratio = PAGE_SIZE / zlib.deflateRawSync(page, { level: 1 }).length;
    if (cls === 'zero')
      assert.ok(
        page.every((b) => b === 0),
        `page ${i} should be zero`,
      );
    if (cls === 'random') assert.ok(ratio < 1.05, `random page ${i} compressed ${ratio}x`);
    if (cls === 'text') {
      assert.ok(ratio > 1.8 && ratio < 6, `text page ${i} compressed ${ratio}x`);
      assert.ok(
        page.every((b) => b === 10 || (b >= 32 && b < 127)),
        `text page ${i} should be printable`,
      );
    }
    if (cls === 'structured') assert.ok(ratio > 1.8 && ratio < 8, `structured page ${i} compressed ${ratio}x`);
    if (cls !== 'zero') {
      const h = createHash('sha1').update(page).digest('hex');
      assert.ok(!seen.has(h), `non-zero page ${i} duplicates an earlier page`);
      seen.add(h);
    }
  }
});

test('the vm image compresses about 2.9x with zstd and random does not compress', () => {
  const ratio = (kind: PayloadKind) => {
    const data = collect(kind, 32 * 2 ** 20, { image });
    let out = 0;
    for (let o = 0; o < data.length; o += 128 * 1024) {
      out += zlib.zstdCompressSync(data.subarray(o, o + 128 * 1024), { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } }).length;
    }
    return data.length / out;
  };
  const vm = ratio('vm');
  assert.ok(vm > 2.4 && vm < 3.4, `vm ratio ${vm}`);
  assert.ok(ratio('random') < 1.01);
});

test('a prepared payload gives the generator bytes, each chunk once, then nothing', () => {
  for (const kind of ['random', 'vm'] as const) {
    const bytes = 3 * CHUNK_SIZE + 1234;
    const prepared = new PreparedPayload(new PayloadSource(kind, bytes, { seed: 7 }));
    assert.equal(prepared.bytes, bytes);
    const parts: Buffer[] = [];
    let c: Buffer | null;
    while ((c = prepared.next())) parts.push(c);
    assert.equal(parts.length, 4);
    assert.ok(Buffer.concat(parts).equals(collect(kind, bytes, { seed: 7 })));
    assert.equal(prepared.next(), null);
  }
});
