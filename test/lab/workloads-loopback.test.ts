// The workload programs on loopback: sink, bulk and migration clients, capped runs, and the
// sink's handling of bad framing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { startSink, type SinkConnectionReport } from '../../src/lab/workloads/sink.ts';
import { runBulk, runMigration } from '../../src/lab/workloads/clients.ts';
import { SegmentParser, segmentHeader } from '../../src/lab/workloads/protocol.ts';
import { PAGE_SIZE } from '../../src/lab/workloads/payload.ts';

async function withSink<T>(fn: (port: number, reports: SinkConnectionReport[]) => Promise<T>): Promise<T> {
  const reports: SinkConnectionReport[] = [];
  const sink = await startSink({ host: '127.0.0.1', onConnectionClosed: (r) => reports.push(r) });
  try {
    return await fn(sink.port, reports);
  } finally {
    await sink.close();
  }
}

test('bulk: every byte arrives and the hashes agree, for both payloads', async () => {
  await withSink(async (port, reports) => {
    for (const payload of ['vm', 'random'] as const) {
      const progress: number[] = [];
      const r = await runBulk({
        host: '127.0.0.1',
        port,
        payload,
        bytes: 24 * 2 ** 20 + 17,
        capSeconds: 60,
        onProgress: (b) => progress.push(b),
      });
      assert.equal(r.verified, true, JSON.stringify(r));
      assert.equal(r.capped, false);
      assert.equal(r.bytes, 24 * 2 ** 20 + 17);
      assert.ok(r.seconds > 0 && r.goodput_mbps > 0);
      assert.equal(progress.at(-1), r.bytes);
    }
    for (let i = 0; i < 50 && reports.length < 2; i++) await new Promise((d) => setTimeout(d, 20));
    assert.equal(reports.length, 2);
    assert.ok(reports.every((x) => x.complete && x.segments === 1 && x.error === null));
  });
});

test('migration: rounds, re-sent pages and downtime are reported and verified', async () => {
  await withSink(async (port) => {
    // A dirty rate high enough for loopback to need more than one round.
    const r = await runMigration({
      host: '127.0.0.1',
      port,
      payload: 'vm',
      capSeconds: 60,
      memoryBytes: 64 * 2 ** 20,
      dirtyPagesPerSec: 60_000,
      downtimeBudgetMs: 5,
      maxRounds: 4,
    });
    assert.equal(r.verified, true, JSON.stringify(r));
    assert.ok(r.rounds !== undefined && r.rounds >= 1 && r.rounds <= 4);
    assert.equal(r.round_seconds!.length, r.rounds);
    assert.ok(r.bytes >= 64 * 2 ** 20, 'at least the whole memory moved');
    assert.equal(r.bytes % PAGE_SIZE, 0);
    assert.equal(r.bytes, r.plannedBytes);
    // The stop-and-copy moves at least the last dirtied pages: it takes time, and is part of the run.
    assert.ok(
      r.downtime_ms !== undefined && r.downtime_ms > 0 && r.downtime_ms <= r.seconds * 1000,
      `downtime ${r.downtime_ms} ms of ${r.seconds} s`,
    );
    assert.ok(['converged', 'max-rounds', 'not-converging'].includes(r.stop_reason!));
  });
});

test('a run that hits its cap reports what the sink confirmed, capped', async () => {
  // A sink that accepts and reports but reads slowly: the client cannot finish in 1 s.
  const { createServer } = await import('node:net');
  const server = createServer((s) => {
    s.pause();
    let n = 0;
    const timer = setInterval(() => {
      const chunk = s.read(64 * 1024) as Buffer | null;
      if (chunk) n += chunk.length;
      if (s.writable) s.write(`${JSON.stringify({ t: 'rx', bytes: Math.max(0, n - 12) })}\n`);
    }, 50);
    s.on('close', () => clearInterval(timer));
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  try {
    const r = await runBulk({ host: '127.0.0.1', port, payload: 'random', bytes: 1 << 30, capSeconds: 1 });
    assert.equal(r.capped, true);
    assert.equal(r.verified, false);
    assert.equal(r.seconds, 1);
    assert.ok(r.bytes > 0 && r.bytes < 1 << 30, `confirmed ${r.bytes}`);
  } finally {
    server.close();
  }
});

test('a refused connection is an error result, not an exception', async () => {
  const r = await runBulk({ host: '127.0.0.1', port: 1, payload: 'vm', bytes: 1000, capSeconds: 5 });
  assert.equal(r.verified, false);
  assert.equal(r.capped, false);
  assert.match(r.error ?? '', /ECONNREFUSED/);
});

test('the sink rejects bad framing with a reason', async () => {
  await withSink(async (port, reports) => {
    const s = connect({ host: '127.0.0.1', port });
    await once(s, 'connect');
    s.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => {
      text += d;
    });
    await once(s, 'close');
    assert.match(text, /"t":"error","reason":"bad segment magic"/);
    for (let i = 0; i < 50 && reports.length < 1; i++) await new Promise((d) => setTimeout(d, 20));
    assert.equal(reports[0]!.error, 'bad segment magic');
  });
});

test('the segment parser handles headers split across reads', () => {
  const stream = Buffer.concat([segmentHeader(5), Buffer.from('hello'), segmentHeader(3), Buffer.from('abc'), segmentHeader(0)]);
  const p = new SegmentParser();
  const payload: Buffer[] = [];
  const ends: number[] = [];
  for (let i = 0; i < stream.length; i++)
    p.push(
      stream.subarray(i, i + 1),
      (b) => payload.push(Buffer.from(b)),
      (k) => ends.push(k),
    );
  assert.equal(Buffer.concat(payload).toString(), 'helloabc');
  assert.deepEqual(ends, [0, 1]);
  assert.equal(p.ended, true);
});
