// A target that answers and closes at once (an echo server ends as soon as the client's FIN
// reaches it) must not cost the client its answer: the gateway may still hold the last reads,
// waiting for room in the association's send backlog, when the target's socket closes. That
// close is a clean end, not a teardown (issue #14: 304 of 1000 concurrent echo clients reset).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { sendAndRead, startPair } from './helpers.ts';

const KiB = 1024;

test('clients of a target that answers and closes at once all get their whole answer behind a full send backlog; no stream is left open', {
  timeout: 90_000,
}, async () => {
  // Answers twice what it was sent, all at once after the client's FIN, and closes: the
  // answering gateway reads the answer and the FIN in a burst far larger than its backlog.
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => {
      const all = Buffer.concat(got);
      s.end(Buffer.concat([all, all]));
    });
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const port = (echo.address() as { port: number }).port;
  // A slow link and a small memory budget (a 1 MiB send backlog) keep both gateways' backlogs full, so the last reads wait when the target closes.
  const pair = await startPair({
    target: `127.0.0.1:${port}`,
    allow: ['127.0.0.1'],
    compression: 'none',
    limits: { memoryBudget: '8MiB' },
    transport: { rateController: () => new ModelBasedController({ maxRateBps: 40e6 }) },
  });
  try {
    const results = await Promise.all(
      Array.from({ length: 40 }, () => {
        const payload = randomBytes(256 * KiB);
        return sendAndRead(pair.port, payload, Buffer.concat([payload, payload]));
      }),
    );
    const failed = results.filter((r) => r !== 'ok');
    assert.deepEqual(failed, [], `${failed.length} of ${results.length} echo clients failed`);
    const ends = (log: typeof pair.logA) =>
      log.lines.filter((l) => l.msg === 'connection closed' || typeof l.end === 'string').map((l) => l.end);
    assert.ok(
      ends(pair.logB).every((e) => e === 'closed'),
      `answering gateway ends: ${JSON.stringify(ends(pair.logB))}`,
    );
    // Every stream is freed on both sides once the last acks are in.
    const deadline = Date.now() + 10_000;
    const active = () => [pair.a, pair.b].map((g) => g.gateway.status().associations.reduce((n, x) => n + x.activeStreams, 0));
    while (active().some((n) => n > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(active(), [0, 0], 'active streams at A and B');
  } finally {
    await pair.stop();
    echo.close();
  }
});
