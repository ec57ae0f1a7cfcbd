// Start-up failures as an operator sees them (child processes of bin/longhaul.js): one line that
// names the flag or config key, printed once, and never a "gateway stopped" before "failed to start".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeUdpPort, spawnGateway, stopChild } from '../gateway/helpers.ts';

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

function run(args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');
// The plaintext debug mode needs no key files; it warns about itself on stdout (a log line).
const QUICK = ['gateway', '--insecure-plaintext', '--control', 'off'];

test('a second gateway on the same --wan refuses to start with one line, unless --wan-reuse-port asks for sharing', {
  timeout: 60_000,
}, async () => {
  const port = await freeUdpPort();
  const wan = `127.0.0.1:${port}`;
  const first = await spawnGateway(['--insecure-plaintext', '--wan', wan]);
  try {
    const second = await run([...QUICK, '--wan', wan], 10_000);
    assert.equal(second.code, 1);
    assert.deepEqual(lines(second.stderr), [`longhaul gateway: --wan ${wan} is already in use by another process`]);
    assert.doesNotMatch(second.stdout, /gateway started/);
    // From a config file: the file and key are named instead of the flag.
    const dir = mkdtempSync(join(tmpdir(), 'lh-startup-'));
    const file = join(dir, 'site.yaml');
    writeFileSync(file, `wan: ${wan}\ncontrol: false\n`);
    const fromFile = await run(['gateway', '--insecure-plaintext', '--config', file], 10_000);
    assert.equal(fromFile.code, 1);
    assert.deepEqual(lines(fromFile.stderr), [`longhaul gateway: ${file}: wan: ${wan} is already in use by another process`]);
    // Sharing on purpose: it starts.
    const shared = await spawnGateway(['--insecure-plaintext', '--wan', wan, '--wan-reuse-port']);
    await stopChild(shared);
  } finally {
    await stopChild(first);
  }
});

test('an unresolvable address names the flag or config key it came from', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-startup-'));
  const file = join(dir, 'site.yaml');
  writeFileSync(
    file,
    'wan: 127.0.0.1:0\ncontrol: false\npeers:\n  - { name: dc2, address: "127.0.0.1:4500" }\n  - { name: dc3, address: "nosuch.invalid:4500" }\n',
  );
  const [peer, wan, tunnel, fromFile] = await Promise.all([
    run([...QUICK, '--wan', '127.0.0.1:0', '--peer', 'nosuch.invalid:4500']),
    run([...QUICK, '--wan', 'nosuch.invalid:4500']),
    run([...QUICK, '--wan', '127.0.0.1:0', '--peer', '127.0.0.1:4500', '--tunnel', 'nosuch.invalid:6600=10.0.0.7:6600']),
    run(['gateway', '--insecure-plaintext', '--config', file]),
  ]);
  assert.equal(peer.code, 1);
  assert.deepEqual(lines(peer.stderr), [
    'longhaul gateway: --peer nosuch.invalid:4500: cannot resolve host name "nosuch.invalid" (ENOTFOUND)',
  ]);
  assert.equal(wan.code, 1);
  assert.deepEqual(lines(wan.stderr), [
    'longhaul gateway: --wan nosuch.invalid:4500: cannot resolve host name "nosuch.invalid" (ENOTFOUND)',
  ]);
  assert.equal(tunnel.code, 1);
  assert.deepEqual(lines(tunnel.stderr), [
    'longhaul gateway: --tunnel nosuch.invalid:6600=10.0.0.7:6600: cannot resolve host name "nosuch.invalid" (ENOTFOUND)',
  ]);
  assert.equal(fromFile.code, 1);
  assert.deepEqual(lines(fromFile.stderr), [
    `longhaul gateway: ${file}: peers[1].address: nosuch.invalid:4500: cannot resolve host name "nosuch.invalid" (ENOTFOUND)`,
  ]);
});

test('--log-json: a start-up error is one JSON line, and no "gateway stopped" comes before it', { timeout: 60_000 }, async () => {
  // The tunnel's listen port is taken: the gateway fails after binding its WAN socket.
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  const port = (busy.address() as { port: number }).port;
  try {
    const r = await run([
      ...QUICK,
      '--log-json',
      '--wan',
      '127.0.0.1:0',
      '--peer',
      '127.0.0.1:4500',
      '--tunnel',
      `127.0.0.1:${port}=10.0.0.7:6600`,
    ]);
    assert.equal(r.code, 1);
    const expected = `--tunnel 127.0.0.1:${port}=10.0.0.7:6600 is already in use by another process`;
    // Once in all the output: not also on stderr.
    assert.equal((r.stdout + r.stderr).split(expected).length - 1, 1, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.equal(r.stderr, '');
    const logged = lines(r.stdout).map((l) => JSON.parse(l) as { msg: string; err?: string; level: number });
    const failed = logged.findIndex((l) => l.msg === 'gateway failed to start');
    assert.ok(failed >= 0, r.stdout);
    assert.equal(logged[failed]!.err, expected);
    assert.equal(logged[failed]!.level, 50);
    const stopped = logged.findIndex((l) => l.msg === 'gateway stopped');
    assert.ok(stopped === -1 || stopped > failed, `"gateway stopped" (line ${stopped}) before "gateway failed to start" (line ${failed})`);
    // The control address is taken: the gateway itself had started and is stopped again.
    const c = await run(['gateway', '--insecure-plaintext', '--log-json', '--wan', '127.0.0.1:0', '--control', `127.0.0.1:${port}`]);
    assert.equal(c.code, 1);
    assert.equal(c.stderr, '');
    const clogged = lines(c.stdout).map((l) => JSON.parse(l) as { msg: string; err?: string });
    const cfailed = clogged.findIndex((l) => l.msg === 'gateway failed to start');
    assert.equal(clogged[cfailed]?.err, `--control 127.0.0.1:${port} is already in use by another process`, c.stdout);
    const cstopped = clogged.findIndex((l) => l.msg === 'gateway stopped');
    assert.ok(
      cstopped === -1 || cstopped > cfailed,
      `"gateway stopped" (line ${cstopped}) before "gateway failed to start" (line ${cfailed})`,
    );
  } finally {
    await new Promise<void>((r) => busy.close(() => r()));
  }
});
