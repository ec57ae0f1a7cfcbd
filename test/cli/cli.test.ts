// The `longhaul` command line as users run it (child processes of bin/longhaul.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPair, startVerifyTarget, verifiedExchange } from '../gateway/helpers.ts';
import { startControlServer } from '../../src/gateway/control.ts';
import { createMetrics } from '../../src/gateway/metrics.ts';

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

function run(args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'lh-cli-'));

test('gateway --help documents every flag with an example', async () => {
  const r = await run(['gateway', '--help']);
  assert.equal(r.code, 0);
  for (const flag of [
    '--config',
    '--wan',
    '--peer',
    '--tunnel',
    '--key',
    '--peer-key',
    '--allow',
    '--controller',
    '--rate',
    '--max-rate',
    '--max-connections',
    '--memory',
    '--compression',
    '--mtu',
    '--control',
    '--log-level',
    '--insecure-plaintext',
  ]) {
    assert.ok(r.stdout.includes(flag), `help mentions ${flag}`);
  }
  assert.match(r.stdout, /--tunnel 127\.0\.0\.1:6600=10\.0\.0\.7:6600/);
  assert.match(r.stdout, /Config file \(YAML\)/);
});

test('a config file with mistakes: the gateway refuses to start and names each key', async () => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    [
      'wan: 0.0.0.0:70000',
      'key: a.key',
      'peers: [{ name: dc2, address: 10.0.0.1:4500, publicKey: b.pub }]',
      'tunnels: [{ listen: 127.0.0.1:6600, peer: nowhere, target: 10.0.0.7 }]',
      'compression: gzip',
      'limits: { memoryBudget: lots }',
      '',
    ].join('\n'),
  );
  const r = await run(['gateway', '--config', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /invalid configuration; not starting/);
  assert.match(r.stderr, /bad\.yaml: wan: "70000" is not a valid port/);
  assert.match(r.stderr, /bad\.yaml: tunnels\[0\]\.target: expected HOST:PORT/);
  assert.match(r.stderr, /bad\.yaml: compression: /);
  assert.match(r.stderr, /bad\.yaml: limits\.memoryBudget: expected a positive size/);
});

test('keygen writes a key pair, and a world-readable private key is refused at start', async () => {
  const k = await run(['keygen', 'site', '--dir', dir]);
  assert.equal(k.code, 0, k.stderr);
  assert.ok(existsSync(join(dir, 'site.key')) && existsSync(join(dir, 'site.pub')));
  assert.equal(statSync(join(dir, 'site.key')).mode & 0o777, 0o600);
  chmodSync(join(dir, 'site.key'), 0o644);
  const r = await run([
    'gateway',
    '--wan',
    '127.0.0.1:0',
    '--key',
    join(dir, 'site.key'),
    '--peer-key',
    join(dir, 'site.pub'),
    '--control',
    'off',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /accessible by group\/others/);
});

test('status prints live figures as a table and as JSON; metrics in Prometheus format', { timeout: 60_000 }, async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'] });
  const gw = pair.a.gateway;
  const control = await startControlServer(
    { host: '127.0.0.1', port: 0 },
    () => gw.status(),
    createMetrics(() => gw.status()),
  );
  try {
    const x = await verifiedExchange(pair.port, 1024 * 1024, 1024 * 1024);
    assert.ok(x.uploadOk && x.downloadOk);
    const at = `127.0.0.1:${control.address.port}`;
    const j = await run(['status', '--json', '--control', at]);
    assert.equal(j.code, 0, j.stderr);
    const s = JSON.parse(j.stdout);
    assert.equal(s.name, 'a');
    assert.equal(s.associations.length, 1);
    const a = s.associations[0];
    for (const k of [
      'rttMs',
      'bandwidthBps',
      'sendRateBps',
      'lossRate',
      'retransmitRate',
      'bytesOutRaw',
      'bytesInRaw',
      'bytesOutWire',
      'bytesInWire',
    ]) {
      assert.equal(typeof a[k], 'number', k);
    }
    assert.ok(a.bytesOutRaw >= 1024 * 1024 && a.bytesOutWire > a.bytesOutRaw * 0.5);
    assert.equal(s.tunnels[0].total, 1);
    assert.ok(s.codec.encode.bytesIn >= 1024 * 1024);
    assert.ok(s.crypto.endpoint.packetsSealed > 0);
    const h = await run(['status', '--control', at]);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /associations:/);
    assert.match(h.stdout, /peer\s+role\s+remote/);
    assert.match(h.stdout, /tunnels:/);
    const m = await fetch(`http://${at}/metrics`);
    const text = await m.text();
    assert.match(text, /longhaul_association_rtt_seconds\{peer="b",role="client"\} /);
    assert.match(text, /longhaul_tunnel_connections_total\{tunnel="tunnel0",peer="b"\} 1/);
  } finally {
    await control.close();
    await pair.stop();
    await target.close();
  }
});

test('status with no gateway listening fails with a clear message', async () => {
  const r = await run(['status', '--control', '127.0.0.1:1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no gateway answering at 127\.0\.0\.1:1/);
});
