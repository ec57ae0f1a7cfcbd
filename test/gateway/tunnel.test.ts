// Integration tests: real sockets on loopback through an in-process gateway pair
// (encrypted, as deployed), plus a few plaintext-mode checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';
import { sleep, startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const MiB = 1024 * 1024;

test('100 concurrent connections, random payloads both ways, every byte hash-verified', { timeout: 240_000 }, async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1/32'] });
  try {
    // Varied sizes from 0 to ~1.3 MiB each way, ~60 MiB in total.
    let total = 0;
    const sizes: Array<[number, number]> = [];
    for (let i = 0; i < 100; i++) {
      const big = i % 10 === 0;
      const up = big ? 1 * MiB + ((i * 7919) % (300 * 1024)) : (i * 104729) % (256 * 1024);
      const down = big ? 1 * MiB + ((i * 6007) % (300 * 1024)) : (i * 15485863) % (384 * 1024);
      sizes.push([up, down]);
      total += up + down;
    }
    assert.ok(total <= 64 * MiB, `payload total ${total}`);
    const results = await Promise.all(sizes.map(([u, d]) => verifiedExchange(pair.port, u, d)));
    results.forEach((r, i) => {
      assert.ok(r.uploadOk, `connection ${i}: upload hash mismatch`);
      assert.ok(r.downloadOk, `connection ${i}: download hash mismatch`);
    });
    // One log line per connection closed, with bytes and duration.
    await pair.logA.waitFor('connection closed', () => pair.logA.lines.filter((l) => l.msg === 'connection closed').length >= 100);
    const closed = pair.logA.lines.filter((l) => l.msg === 'connection closed');
    assert.equal(closed.length, 100);
    for (const l of closed) {
      assert.equal(l.end, 'closed');
      assert.equal(typeof l.bytesSent, 'number');
      assert.equal(typeof l.durationMs, 'number');
    }
    const st = pair.a.gateway.status();
    assert.equal(st.tunnels[0]!.total, 100);
    assert.equal(st.associations.length, 1);
    assert.ok(st.associations[0]!.bytesOutRaw >= sizes.reduce((s, [u]) => s + u, 0));
    assert.ok(st.crypto.endpoint && st.crypto.endpoint.packetsSealed > 0);
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('half-close: the client FIN reaches the target, which still answers afterwards', async () => {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => {
      // The upload is complete only now; answer after our side saw the FIN.
      setTimeout(() => s.end(Buffer.concat([Buffer.from('got:'), Buffer.concat(got)])), 100);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const pair = await startPair({ target: `127.0.0.1:${port}`, allow: ['127.0.0.1'] });
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const c = connect({ port: pair.port, host: '127.0.0.1', allowHalfOpen: true });
      const parts: Buffer[] = [];
      c.on('error', reject);
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('end', () => {
        resolve(Buffer.concat(parts).toString());
        c.end();
      });
      c.end('hello');
    });
    assert.equal(reply, 'got:hello');
  } finally {
    await pair.stop();
    server.close();
  }
});

function waitClose(s: Socket): Promise<{ error: string | null }> {
  return new Promise((resolve) => {
    let error: string | null = null;
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.on('close', () => resolve({ error }));
  });
}

test('reset propagates both ways', async () => {
  const serverSockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    serverSockets.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const pair = await startPair({ target: `127.0.0.1:${port}`, allow: ['127.0.0.1'] });
  try {
    // Client resets: the target's socket sees a reset.
    const c1 = connect({ port: pair.port, host: '127.0.0.1' });
    c1.on('error', () => {});
    c1.write('x');
    while (serverSockets.length < 1) await sleep(10);
    const s1Closed = waitClose(serverSockets[0]!);
    c1.resetAndDestroy();
    const r1 = await s1Closed;
    assert.equal(r1.error, 'ECONNRESET');

    // Target resets: the client sees a reset.
    const c2 = connect({ port: pair.port, host: '127.0.0.1' });
    const c2Closed = waitClose(c2);
    c2.write('y');
    while (serverSockets.length < 2) await sleep(10);
    serverSockets[1]!.resetAndDestroy();
    const r2 = await c2Closed;
    assert.equal(r2.error, 'ECONNRESET');
    await pair.logA.waitFor('connection closed', (l) => l.end === 'reset-remote');
  } finally {
    await pair.stop();
    server.close();
  }
});

test('a target outside the allow-list is refused: client closed, clear log line', async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['10.0.0.0/8'] });
  try {
    const c = connect({ port: pair.port, host: '127.0.0.1' });
    const closed = waitClose(c);
    c.write(Buffer.alloc(8));
    const started = Date.now();
    await closed;
    assert.ok(Date.now() - started < 5000);
    const line = await pair.logB.waitFor('inbound connection refused');
    assert.match(String(line.reason), /not in the allow-list/);
    assert.equal(target.sockets.size, 0);
    const aLine = await pair.logA.waitFor('connection closed');
    assert.match(String(aLine.reason), /allow-list/);
    assert.equal(pair.b.gateway.status().inbound.refused, 1);
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('a target that refuses the connection closes the client promptly with a reason', async () => {
  // A port that was just free: nothing listens there.
  const tmp = createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  const deadPort = (tmp.address() as { port: number }).port;
  await new Promise<void>((r) => tmp.close(() => r()));
  const pair = await startPair({ target: `127.0.0.1:${deadPort}`, allow: ['127.0.0.1'] });
  try {
    const c = connect({ port: pair.port, host: '127.0.0.1' });
    const closed = waitClose(c);
    c.write('hello');
    await closed;
    const line = await pair.logB.waitFor('inbound connection failed');
    assert.match(String(line.reason), /ECONNREFUSED/);
    const aLine = await pair.logA.waitFor('connection closed');
    assert.match(String(aLine.reason), /unreachable/);
  } finally {
    await pair.stop();
  }
});

test('a target that never answers: the far gateway gives up after its connect timeout and the client is closed', async () => {
  // A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
  // It lives in a child process whose only thread is parked in Atomics.wait (no accept, no CPU).
  const { spawn } = await import('node:child_process');
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    const net = require('node:net');
    const s = net.createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(String(s.address().port) + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000));
    });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: Socket[] = [];
  let pair: Awaited<ReturnType<typeof startPair>> | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
      child.once('exit', () => reject(new Error('listener child exited')));
    });
    // Fill the accept queue (backlog + 1 on Linux); these complete in the kernel without accept().
    for (let i = 0; i < 3; i++) {
      const f = connect({ port, host: '127.0.0.1' });
      f.on('error', () => {});
      fillers.push(f);
    }
    await sleep(200);
    pair = await startPair({ target: `127.0.0.1:${port}`, allow: ['127.0.0.1'], limits: { targetConnectTimeoutMs: 500 } });
    const c = connect({ port: pair.port, host: '127.0.0.1' });
    const closed = waitClose(c);
    c.write('hello');
    await closed;
    const line = await pair.logB.waitFor('inbound connection failed');
    assert.match(String(line.reason), /did not answer within 500 ms/);
    const aLine = await pair.logA.waitFor('connection closed');
    assert.match(String(aLine.reason), /did not answer in time/);
  } finally {
    for (const f of fillers) f.destroy();
    if (pair) await pair.stop();
    child.kill();
  }
});

test('plain HTTP download through the tunnel, hash-checked', async () => {
  const { createServer: createHttpServer, get } = await import('node:http');
  const { createHash } = await import('node:crypto');
  const body = randomBytes(5 * MiB);
  const expected = createHash('sha256').update(body).digest('hex');
  const http = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  const pair = await startPair({ target: `127.0.0.1:${port}`, allow: ['127.0.0.1'] });
  try {
    const got = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port: pair.port, path: '/file', agent: false }, (res) => {
        const h = createHash('sha256');
        res.on('data', (d: Buffer) => h.update(d));
        res.on('end', () => resolve(h.digest('hex')));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(got, expected);
  } finally {
    await pair.stop();
    http.close();
  }
});

test('plaintext debug mode carries data too (the crypto-cost benchmark baseline)', async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'], insecure: true, compression: 'none' });
  try {
    const r = await verifiedExchange(pair.port, 3 * MiB, 2 * MiB);
    assert.ok(r.uploadOk && r.downloadOk);
    assert.equal(pair.a.gateway.status().crypto.endpoint, null);
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('a gateway with the wrong key gets no association and no data through', async () => {
  const target = await startVerifyTarget();
  const { makeKeys } = await import('./helpers.ts');
  const good = makeKeys();
  const other = makeKeys();
  // A presents a key B does not list.
  const keys = { ...good, aKey: other.aKey };
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'], keys, limits: { connectWaitMs: 1500 } });
  try {
    const c = connect({ port: pair.port, host: '127.0.0.1' });
    const closed = waitClose(c);
    c.write(Buffer.alloc(8));
    await closed;
    await pair.logA.waitFor(/^connection reset: peer gateway unreachable/);
    assert.equal(target.sockets.size, 0);
    assert.equal(pair.b.gateway.status().associations.length, 0);
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('backpressure end to end: a target that stops reading stalls the client, then everything arrives', { timeout: 60_000 }, async () => {
  const { createHash } = await import('node:crypto');
  let targetSocket: Socket | null = null;
  const targetHash = createHash('sha256');
  let targetBytes = 0;
  let targetEnded: () => void = () => {};
  const ended = new Promise<void>((r) => {
    targetEnded = r;
  });
  const server = createServer((s) => {
    targetSocket = s;
    s.pause(); // a slow target: reads nothing until told
    s.on('data', (d: Buffer) => {
      targetHash.update(d);
      targetBytes += d.length;
    });
    s.on('end', () => targetEnded());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  // A small budget gives small windows (2 MiB receive, 1 MiB send buffer).
  const pair = await startPair({
    target: `127.0.0.1:${port}`,
    allow: ['127.0.0.1'],
    compression: 'none',
    limits: { memoryBudget: '8MiB', maxConnections: 16 },
  });
  try {
    const total = 64 * MiB;
    const payload = randomBytes(total);
    const c = connect({ port: pair.port, host: '127.0.0.1' });
    c.on('error', () => {});
    await new Promise<void>((r) => c.on('connect', () => r()));
    // Written in 64 KiB chunks; a chunk's callback fires once the kernel took it.
    let flushed = 0;
    const CHUNK = 64 * 1024;
    let offset = 0;
    const pump = (): void => {
      while (offset < total) {
        const chunk = payload.subarray(offset, offset + CHUNK);
        offset += chunk.length;
        const ok = c.write(chunk, () => {
          flushed += chunk.length;
        });
        if (!ok) {
          c.once('drain', pump);
          return;
        }
      }
      c.end();
    };
    pump();
    while (targetSocket === null) await sleep(10);
    // Let the pipeline fill up until the client stops making progress.
    let last = -1;
    for (let i = 0; i < 40 && flushed !== last; i++) {
      last = flushed;
      await sleep(150);
    }
    const accepted = flushed;
    assert.ok(accepted < 32 * MiB, `the tunnel took ${accepted} bytes from a client whose target reads nothing`);
    targetSocket!.resume();
    await ended;
    assert.equal(targetBytes, total);
    assert.equal(targetHash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  } finally {
    await pair.stop();
    server.close();
  }
});
