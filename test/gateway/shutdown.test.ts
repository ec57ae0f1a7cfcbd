// SIGTERM: listeners close at once, open connections finish within the grace period, then
// the association is closed cleanly and the process exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LogCapture, makeKeys, sleep, startB, startVerifyTarget, verifiedExchange } from './helpers.ts';

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

test('SIGTERM: listener closes, the open connection finishes, the association closes, exit 0', { timeout: 60_000 }, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const b = await startB({ target: '', allow: ['127.0.0.1'] }, keys, logB);
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const tunnelPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const dir = mkdtempSync(join(tmpdir(), 'lh-term-'));
  const cfg = join(dir, 'a.yaml');
  writeFileSync(
    cfg,
    [
      'name: a',
      'wan: 127.0.0.1:0',
      `key: ${keys.aKey}`,
      `peers: [{ name: b, address: "127.0.0.1:${b.gateway.wanAddress.port}", publicKey: "${keys.bPub}" }]`,
      `tunnels: [{ listen: "127.0.0.1:${tunnelPort}", peer: b, target: "127.0.0.1:${target.port}" }]`,
      'limits: { shutdownGraceMs: 20000 }',
      'control: false',
      '',
    ].join('\n'),
  );
  const proc = spawn(process.execPath, [CLI, 'gateway', '--config', cfg, '--log-json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let started: () => void = () => {};
  const ready = new Promise<void>((r) => {
    started = r;
  });
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      const j = JSON.parse(l) as Record<string, unknown>;
      lines.push(j);
      if (j.msg === 'gateway started') started();
    } catch {
      /* not a log line */
    }
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  try {
    await ready;
    // A slow client: 20 chunks of 64 KiB, one every 100 ms (~2 s).
    const exchange = verifiedExchange(tunnelPort, 20 * 64 * 1024, 256 * 1024, 100);
    while (target.sockets.size < 1) await sleep(20);
    proc.kill('SIGTERM');
    await sleep(300);
    // The listener is closed: new connections are refused.
    const refused = await new Promise<string>((resolve) => {
      const c = connect({ port: tunnelPort, host: '127.0.0.1' });
      c.on('connect', () => {
        c.destroy();
        resolve('connected');
      });
      c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
    // The open connection still completes intact.
    const r = await exchange;
    assert.ok(r.uploadOk && r.downloadOk);
    assert.equal(await exited, 0);
    assert.ok(lines.some((l) => l.msg === 'connection closed' && l.end === 'closed'));
    assert.ok(lines.some((l) => l.msg === 'gateway stopped'));
    await logB.waitFor('association closed', (l) => l.byPeer === true);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await b.stop(0);
    await target.close();
  }
});
