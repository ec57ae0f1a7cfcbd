// While the association holds a large send backlog, the gateway gathers TCP reads (64 KiB at
// most each) into larger compression blocks (up to 256 KiB): they compress better, and with that
// much data queued the wait costs the link nothing. The bytes must arrive intact, FIN included.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const MiB = 1024 * 1024;

test('behind a large send backlog, TCP reads are gathered into blocks larger than one read; every byte arrives', { timeout: 60_000 }, async () => {
  const target = await startVerifyTarget();
  // A 100 Mbit/s pace keeps a backlog of several MiB at gateway A while the client writes at loopback speed.
  const pair = await startPair({
    target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'], compression: 'lz4',
    transport: { rateController: () => new ModelBasedController({ maxRateBps: 100e6 }) },
  });
  try {
    const r = await verifiedExchange(pair.port, 24 * MiB + 12345, 64 * 1024);
    assert.ok(r.uploadOk && r.downloadOk, 'upload and download intact');
    const enc = pair.a.gateway.status().codec.encode;
    const meanBlock = enc.bytesIn / enc.blocks;
    assert.ok(meanBlock > 64 * 1024, `mean block ${Math.round(meanBlock)} bytes: reads were gathered`);
    assert.ok(meanBlock <= 256 * 1024, `mean block ${Math.round(meanBlock)} bytes`);
  } finally {
    await pair.stop();
    await target.close();
  }
});
