// The benchmark scripts' command lines: --help prints the usage and exits at once (it used to run
// the whole benchmark), a size takes a unit, and a value that does not parse or an unknown option
// is refused with one line instead of a benchmark that runs with NaN or forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
// Every script under src/bench/ (args.ts is their shared helper, not a script), and bench:emulator.
const SCRIPTS = [
  ...readdirSync(`${SRC}bench`)
    .filter((f) => f.endsWith('-bench.ts'))
    .map((f) => `bench/${f}`)
    .sort(),
  'lab/emulator-bench.ts',
];

/**
 * Runs a script in its own process group. A script that ignores --help starts its benchmark,
 * which may start gateways or other children: on timeout the whole group is killed, not only
 * the script.
 */
function run(
  script: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SRC + script, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, timeoutMs);
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

test('there are benchmark scripts to check', () => {
  assert.ok(SCRIPTS.length >= 7, SCRIPTS.join(', '));
  assert.ok(SCRIPTS.includes('bench/sim-bench.ts'));
});

for (const script of SCRIPTS) {
  test(`${script} --help prints the usage and exits`, { timeout: 30_000 }, async () => {
    const r = await run(script, ['--help']);
    assert.equal(r.code, 0, `exit ${r.code} after ${r.ms} ms; stderr: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: \S+ \[options\]/);
    assert.match(r.stdout, /-h, --help\s+print this usage and exit/);
  });

  test(`${script}: an unknown option is refused with one line`, { timeout: 30_000 }, async () => {
    const r = await run(script, ['--no-such-option']);
    assert.equal(r.code, 1, `exit ${r.code} after ${r.ms} ms; stderr: ${r.stderr}`);
    assert.deepEqual(
      r.stderr.split('\n').filter((l) => l !== ''),
      ["error: unknown option '--no-such-option'"],
    );
  });
}

test('bench:sim --bytes takes a unit (64MiB) and refuses one it does not know', { timeout: 60_000 }, async () => {
  const bad = await run('bench/sim-bench.ts', ['--bytes', '64XB']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: option '--bytes <size>' argument '64XB' is invalid\. expected a size in bytes such as 64MiB/);
  // One small profile with a unit: the transfer has exactly that many bytes.
  const ok = await run('bench/sim-bench.ts', ['--profile', 'baseline', '--bytes', '4MiB', '--json'], 50_000);
  assert.equal(ok.code, 0, ok.stderr);
  const row = JSON.parse(ok.stdout) as { bytes: number; completed: boolean; byte_exact: boolean };
  assert.equal(row.bytes, 4 * 1024 * 1024);
  assert.ok(row.completed && row.byte_exact);
});
