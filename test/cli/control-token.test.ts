// The control token from the command line: a gateway refuses a non-loopback --control without
// one, and `longhaul status` sends it (--token-file or $LONGHAUL_CONTROL_TOKEN) or says it is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { startControlServer } from '../../src/gateway/control.ts';

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));
const TOKEN = 'fedcba9876543210fedcba9876543210';

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const childEnv = { ...process.env, ...env };
    if (!('LONGHAUL_CONTROL_TOKEN' in env)) delete childEnv.LONGHAUL_CONTROL_TOKEN;
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000, killSignal: 'SIGKILL', env: childEnv }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test('longhaul gateway refuses a control address other machines can reach without a token, in one line', { timeout: 30_000 }, async () => {
  const r = await run(['gateway', '--insecure-plaintext', '--wan', '127.0.0.1:0', '--control', '0.0.0.0:0']);
  assert.equal(r.code, 2);
  assert.deepEqual(
    r.stderr.split('\n').filter((l) => l !== ''),
    [
      'longhaul gateway: invalid configuration; not starting:',
      '  control: 0.0.0.0:0 is reachable from other machines, so the control interface needs a bearer token: set controlToken or controlTokenFile (--control-token-file), or bind it to 127.0.0.1',
    ],
  );
  assert.doesNotMatch(r.stdout, /gateway started/);
});

test('longhaul status sends the control token from --token-file or the environment, and says when one is needed', {
  timeout: 60_000,
}, async () => {
  const server = await startControlServer({ host: '127.0.0.1', port: 0 }, () => ({ name: 'tok', associations: [] }), new Registry(), {
    token: TOKEN,
  });
  const at = `127.0.0.1:${server.address.port}`;
  const dir = mkdtempSync(join(tmpdir(), 'lh-status-token-'));
  const good = join(dir, 'good.token');
  const bad = join(dir, 'bad.token');
  writeFileSync(good, `${TOKEN}\n`);
  writeFileSync(bad, 'not-the-token-not-the-token\n');
  try {
    const [none, fromFile, fromEnv, wrong, missing] = await Promise.all([
      run(['status', '--json', '--control', at]),
      run(['status', '--json', '--control', at, '--token-file', good]),
      run(['status', '--json', '--control', at], { LONGHAUL_CONTROL_TOKEN: TOKEN }),
      run(['status', '--json', '--control', at, '--token-file', bad]),
      run(['status', '--json', '--control', at, '--token-file', join(dir, 'nosuch')]),
    ]);
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      `longhaul status: ${at}: the gateway's control interface requires a token: --token-file FILE or LONGHAUL_CONTROL_TOKEN\n`,
    );
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(JSON.parse(fromFile.stdout).name, 'tok');
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal(JSON.parse(fromEnv.stdout).name, 'tok');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the control token/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--token-file .*nosuch: cannot read \(ENOENT\)/);
  } finally {
    await server.close();
  }
});
