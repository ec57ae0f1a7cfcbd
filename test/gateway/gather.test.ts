// While the association holds a large send backlog and the encoder is compressing, the gateway
// gathers TCP reads (64 KiB at most each) into larger compression blocks (up to 256 KiB): they
// compress better, and with that much data queued the wait costs the link nothing. Blocks that
// go raw (incompressible data) gain nothing from being larger, so those reads are not gathered
// (gathering copies every byte). The bytes must arrive intact, FIN included.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { startPacedPair, textChunk, verifiedExchange } from './helpers.ts';

const MiB = 1024 * 1024;

async function meanBlockBytes(upload: ((n: number) => Buffer) | undefined): Promise<number> {
  const { target, pair } = await startPacedPair('lz4');
  try {
    const r = await verifiedExchange(pair.port, 24 * MiB + 12345, 64 * 1024, 0, upload);
    assert.ok(r.uploadOk && r.downloadOk, 'upload and download intact');
    const enc = pair.a.gateway.status().codec.encode;
    return enc.bytesIn / enc.blocks;
  } finally {
    await pair.stop();
    await target.close();
  }
}

test('behind a large send backlog, compressible TCP reads are gathered into blocks larger than one read; every byte arrives', {
  timeout: 60_000,
}, async () => {
  const meanBlock = await meanBlockBytes(textChunk);
  assert.ok(meanBlock > 64 * 1024, `mean block ${Math.round(meanBlock)} bytes: reads were gathered`);
  assert.ok(meanBlock <= 256 * 1024, `mean block ${Math.round(meanBlock)} bytes`);
});

test('incompressible reads are not gathered (the blocks go raw): every byte arrives', { timeout: 60_000 }, async () => {
  const meanBlock = await meanBlockBytes(undefined);
  // The first blocks, and the back-off's rare probes, are still tried (gathered) before they fail.
  assert.ok(meanBlock < 72 * 1024, `mean block ${Math.round(meanBlock)} bytes: about one block per read`);
});

test('several connections gathering at once, with blocks that go raw while the stream is full: every byte arrives', {
  timeout: 90_000,
}, async () => {
  // Gathered blocks are assembled in pooled buffers (block-buffers.ts) that one connection after
  // another reuses; a block that goes raw is queued as a view of its buffer. Runs of text
  // (gathered, compressing) alternate with runs of random bytes (gathered blocks that go raw).
  const { target, pair } = await startPacedPair('lz4');
  try {
    const mixed = (): ((n: number) => Buffer) => {
      let i = 0;
      return (n) => (i++ % 8 < 4 ? textChunk(n) : randomBytes(n));
    };
    const runs = await Promise.all([0, 1, 2, 3].map(() => verifiedExchange(pair.port, 12 * MiB + 4321, 1024, 0, mixed())));
    for (const r of runs) assert.ok(r.uploadOk && r.downloadOk, 'upload and download intact');
    const enc = pair.a.gateway.status().codec.encode;
    assert.ok(enc.blocksRaw > 0 && enc.blocksLz4 > 0, `raw ${enc.blocksRaw}, lz4 ${enc.blocksLz4}`);
  } finally {
    await pair.stop();
    await target.close();
  }
});
