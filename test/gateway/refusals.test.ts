// What a client sees when its connection cannot be carried: a TCP reset, never a clean close
// (which reads as an empty reply). A disallowed or refused target at the far side, and clients
// past maxConnections at the near side (refused as they are accepted, logged once, not per client;
// this replaces tunnel.test.ts's check, which accepted a clean close).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { freePort, sleep, startPair, startVerifyTarget } from './helpers.ts';

type Outcome = 'reset' | 'closed' | 'timeout';

/** Connects to the tunnel, optionally writes, and reports how the connection ended and when. */
function clientOutcome(port: number, write: Buffer | null, timeoutMs = 5000): Promise<{ outcome: Outcome; ms: number; code?: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = connect({ port, host: '127.0.0.1' });
    let settled = false;
    const done = (outcome: Outcome, code?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ outcome, ms: Date.now() - started, ...(code ? { code } : {}) });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    s.on('connect', () => {
      if (write) s.write(write);
    });
    s.on('data', () => {});
    s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNRESET' ? 'reset' : 'closed', err.code));
    s.on('end', () => done('closed'));
    s.on('close', () => done('closed'));
  });
}

test('a target outside the allow-list: the client gets a reset, the far side logs the refusal', { timeout: 30_000 }, async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['10.0.0.0/8'] });
  try {
    const r = await clientOutcome(pair.port, Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    assert.equal(r.outcome, 'reset', `client saw ${JSON.stringify(r)}`);
    const refused = await pair.logB.waitFor('inbound connection refused');
    assert.match(String(refused.reason), /not in the allow-list/);
    assert.equal(target.sockets.size, 0, 'the target was never dialled');
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('a target that refuses the connection: the client gets a reset', { timeout: 30_000 }, async () => {
  const closedPort = await freePort();
  const pair = await startPair({ target: `127.0.0.1:${closedPort}`, allow: ['127.0.0.1'] });
  try {
    const r = await clientOutcome(pair.port, Buffer.from('hello'));
    assert.equal(r.outcome, 'reset', `client saw ${JSON.stringify(r)}`);
    const failed = await pair.logB.waitFor('inbound connection failed');
    assert.match(String(failed.reason), /ECONNREFUSED/);
  } finally {
    await pair.stop();
  }
});

test('clients past maxConnections are reset as they are accepted, with one log line for the lot', { timeout: 30_000 }, async () => {
  // A target that holds every connection open.
  const held = new Set<Socket>();
  const target = createServer((s) => {
    held.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  const targetPort = (target.address() as { port: number }).port;
  const pair = await startPair({ target: `127.0.0.1:${targetPort}`, allow: ['127.0.0.1'], limits: { maxConnections: 2 } });
  const clients: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = connect({ port: pair.port, host: '127.0.0.1' });
      c.on('error', () => {});
      c.write('x');
      clients.push(c);
    }
    for (let i = 0; i < 200 && (held.size < 2 || pair.a.gateway.activeConnections < 2); i++) await sleep(25);
    assert.equal(held.size, 2, 'both connections reached the target');
    assert.equal(pair.a.gateway.activeConnections, 2);
    // Five more that send nothing: a clean close would look like an empty reply to them.
    const extra = await Promise.all(Array.from({ length: 5 }, () => clientOutcome(pair.port, null)));
    for (const r of extra) {
      assert.equal(r.outcome, 'reset', `client saw ${JSON.stringify(r)}`);
      assert.ok(r.ms < 2000, `refused after ${r.ms} ms`);
    }
    assert.equal(pair.a.gateway.tunnels[0]!.counters.failed, 5);
    const lines = pair.logA.lines.filter((l) => l.msg === 'connection refused: connection limit reached');
    assert.equal(lines.length, 1, 'one line for five refusals');
    assert.equal(lines[0]!.max, 2);
    // The two carried connections are untouched.
    assert.equal(pair.a.gateway.activeConnections, 2);
  } finally {
    for (const c of clients) c.destroy();
    for (const s of held) s.destroy();
    await pair.stop();
    await new Promise<void>((r) => target.close(() => r()));
  }
});
