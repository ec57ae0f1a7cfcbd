// Health on the control interface: GET /healthz (alive, event loop responsive), GET /readyz
// (every configured peer associated), POST /reload (loopback only), and the `longhaul health` /
// `longhaul reload` commands' exit statuses that keepalived and probes act on.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isLoopback } from '../../src/gateway/control.ts';
import { loadConfigFile, validateConfig } from '../../src/gateway/config.ts';
import { formatEndpoint } from '../../src/gateway/address.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { runGateway } from '../../src/gateway/run.ts';
import type { RunningGateway } from '../../src/gateway/run.ts';
import { LogCapture, freePort, makeKeys, reportIfProcessLingers, sleep } from './helpers.ts';

reportIfProcessLingers('health.test.ts');

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function get(g: RunningGateway, path: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${formatEndpoint(g.control!.address)}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function start(raw: Record<string, unknown>, log: LogCapture, file?: string): Promise<RunningGateway> {
  const r = validateConfig(raw);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return runGateway(r.config, {
    logger: createLogger({ level: 'debug', destination: log.stream }),
    ...(file ? { reloadConfig: () => loadConfigFile(file) } : {}),
  });
}

test('isLoopback: POST /reload is for 127/8, ::1 and v4-mapped loopback only', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a);
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '::', '0.0.0.0', '', undefined, '128.0.0.1'])
    assert.equal(isLoopback(a), false, String(a));
});

test('/healthz, /readyz and `longhaul health [--ready]`: 200/503 and exit 0/1, as the gateway and its peer come and go', async () => {
  const keys = makeKeys();
  const logA = new LogCapture();
  const logB = new LogCapture();
  const b = await start(
    {
      name: 'b',
      wan: '127.0.0.1:0',
      key: keys.bKey,
      peers: [{ name: 'a', publicKey: keys.aPub }],
      control: '127.0.0.1:0',
      logLevel: 'debug',
    },
    logB,
  );
  const a = await start(
    {
      name: 'a',
      wan: '127.0.0.1:0',
      key: keys.aKey,
      control: '127.0.0.1:0',
      logLevel: 'debug',
      peers: [{ name: 'b', address: `127.0.0.1:${b.gateway.wanAddress.port}`, publicKey: keys.bPub }],
      limits: { peerTimeoutMs: 3000 },
    },
    logA,
  );
  const ctlA = formatEndpoint(a.control!.address);
  let bStopped = false;
  try {
    const h = await get(a, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    const delay = h.body.eventLoopDelayMs as { maxMs: number; p99Ms: number };
    assert.ok(typeof delay.maxMs === 'number' && delay.maxMs < 1000, JSON.stringify(delay));

    // B has heard from nobody yet: not ready, and says which peer and why.
    const rb = await get(b, '/readyz');
    assert.equal(rb.status, 503);
    assert.match(String(rb.body.reason), /^a: no association: the peer has not connected to this gateway/);

    // A has no association until asked: the first /readyz opens one and says so.
    const r0 = await get(a, '/readyz');
    assert.equal(r0.status, 503);
    assert.deepEqual(r0.body.peers, [{ peer: 'b', ready: false, reason: 'no association yet (opening one now)' }]);
    let r1 = r0;
    for (let i = 0; i < 100 && r1.status !== 200; i++) {
      await sleep(50);
      r1 = await get(a, '/readyz');
    }
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.deepEqual(r1.body, { status: 'ready', peers: [{ peer: 'b', ready: true }] });
    assert.equal((await get(b, '/readyz')).status, 200, 'B sees A associated too');

    const ok = await cli(['health', '--control', ctlA]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).status, 'ok');
    const ready = await cli(['health', '--ready', '--control', ctlA]);
    assert.equal(ready.code, 0, ready.stdout + ready.stderr);

    // A stalled event loop (1.3 s of synchronous work) is unhealthy for the next probes.
    const until = Date.now() + 1300;
    while (Date.now() < until) {
      /* stall */
    }
    const stalled = await get(a, '/healthz');
    assert.equal(stalled.status, 503);
    assert.equal(stalled.body.status, 'unhealthy');
    assert.match(String(stalled.body.reason), /^event loop stalled for \d+ ms \(limit 1000 ms\)/);
    const sick = await cli(['health', '--control', ctlA]);
    assert.equal(sick.code, 1, 'exit 1 while the stall is remembered');

    // The peer goes away: A is alive but not ready.
    await b.stop(0);
    bStopped = true;
    let r2 = await get(a, '/readyz');
    for (let i = 0; i < 200 && r2.status === 200; i++) {
      await sleep(50);
      r2 = await get(a, '/readyz');
    }
    assert.equal(r2.status, 503);
    assert.equal((r2.body.peers as Array<{ ready: boolean }>)[0]!.ready, false);
    const notReady = await cli(['health', '--ready', '--control', ctlA]);
    assert.equal(notReady.code, 1);
    assert.equal(JSON.parse(notReady.stdout).status, 'not ready');

    // Wrong methods are refused.
    assert.equal((await get(a, '/healthz', { method: 'POST' })).status, 405);
    assert.equal((await get(a, '/reload')).status, 405);
  } finally {
    await a.stop(0);
    if (!bStopped) await b.stop(0);
  }
  // Stopped: /healthz is gone, and the command says so with exit 1.
  const gone = await cli(['health', '--control', ctlA, '--timeout', '1000']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no gateway answering at http:\/\/127\.0\.0\.1:\d+\/healthz/);
});

test('`longhaul reload` (POST /reload): exit 0 with the changes, exit 1 naming the key of a refused file', async () => {
  const keys = makeKeys();
  const log = new LogCapture();
  const file = join(keys.dir, 'b.yaml');
  const control = await freePort();
  const yaml = (extra: string): string =>
    `name: b\nwan: 127.0.0.1:0\nkey: ${keys.bKey}\npeers: [{ name: a, publicKey: ${keys.aPub} }]\ncontrol: 127.0.0.1:${control}\n${extra}`;
  writeFileSync(file, yaml('logLevel: debug\n'));
  const r = loadConfigFile(file);
  assert.ok(r.ok);
  const g = await runGateway(r.config, {
    logger: createLogger({ level: 'debug', destination: log.stream }),
    reloadConfig: () => loadConfigFile(file),
  });
  try {
    writeFileSync(file, yaml('logLevel: info\nallow: ["10.0.0.0/8"]\n'));
    const ok = await cli(['reload', '--control', `127.0.0.1:${control}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /reloaded:\n {2}allow: \[10\.0\.0\.0\/8\]\n {2}logLevel: debug -> info/);
    assert.equal(g.gateway.log.level, 'info');

    writeFileSync(file, yaml('logLevel: info\nallow: ["10.0.0.0/33"]\n'));
    const bad = await cli(['reload', '--control', `127.0.0.1:${control}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /refused; the gateway keeps its previous configuration:\n {2}.*b\.yaml: allow\[0\]: /);
    assert.equal(g.gateway.config.allow[0]!.text, '10.0.0.0/8', 'the previous configuration still runs');
  } finally {
    await g.stop(0);
  }
});
