// Reading and compressing TCP data must not hold the event loop for long turns: libuv reads a
// readable socket up to 32 times per callback, and with compression each read costs up to a
// millisecond, during which the transport neither paces packets out nor reads acknowledgements.
// Behind a long send backlog a bridge stops reading for the rest of a turn that has run past its
// budget and reads on in the next one (bridge.ts, READ_TURN_BUDGET_MS); every byte still arrives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { turnElapsedMs } from '../../src/gateway/turn-budget.ts';
import { startPacedPair, textChunk, verifiedExchange } from './helpers.ts';

const MiB = 1024 * 1024;

test('the turn clock starts at the first call in a turn, runs with it, and starts again in the next turn', async () => {
  await new Promise((r) => setImmediate(r)); // a fresh turn
  assert.equal(turnElapsedMs(), 0);
  const until = performance.now() + 5;
  while (performance.now() < until);
  assert.ok(turnElapsedMs() >= 5, 'the turn has run 5 ms');
  await new Promise((r) => setImmediate(r));
  assert.equal(turnElapsedMs(), 0, 'a new turn');
});

test('behind a long send backlog a compressing connection stops reading for the rest of long turns; every byte arrives', {
  timeout: 60_000,
}, async () => {
  const { target, pair } = await startPacedPair('zstd');
  try {
    const r = await verifiedExchange(pair.port, 24 * MiB + 12345, 64 * 1024, 0, textChunk); // zstd compresses it: every read costs the codec's time
    assert.ok(r.uploadOk && r.downloadOk, 'upload and download intact');
    const yields = pair.a.gateway.status().associations.reduce((n, a) => n + a.tcpReadYields, 0);
    assert.ok(yields > 0, `reading stopped for the rest of a turn ${yields} times`);
  } finally {
    await pair.stop();
    await target.close();
  }
});
