// A bulk transfer through the lab arrives intact for each method (root; uses the lab).
// Runs `longhaul bench` as a process under flock /tmp/longhaul-lab.lock, in a lab of its own
// (namespace prefix lhwt), which it brings up and tears down.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METHODS } from '../../src/lab/bench/matrix.ts';
import type { BenchResult } from '../../src/lab/bench/runner.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BENCH = join(ROOT, 'src/lab/bench/main.ts');
const PREFIX = 'lhwt';
const BYTES = 4 * 2 ** 20;

const why =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces)'
    : spawnSync('sh', ['-c', 'command -v ip && command -v flock && command -v ethtool'], { stdio: 'ignore' }).status !== 0
      ? 'needs iproute2, flock and ethtool'
      : null;

test('a bulk transfer through the lab arrives intact for each method', { skip: why ?? false, timeout: 300_000 }, () => {
  const run = spawnSync(
    'flock',
    [
      '/tmp/longhaul-lab.lock',
      process.execPath,
      BENCH,
      '--lab',
      PREFIX,
      '--profile',
      'metro',
      '--method',
      METHODS.join(','),
      '--workload',
      'bulk',
      '--payload',
      'vm',
      '--bytes',
      String(BYTES),
      '--cap',
      '60',
      '--json',
    ],
    { encoding: 'utf8', timeout: 280_000 },
  );
  const detail = `stderr: ${run.stderr.slice(-1500)}\nstdout: ${run.stdout.slice(-3000)}`;
  assert.equal(run.status, 0, `bench exited ${run.status ?? run.signal}: ${detail}`);
  const results = run.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as BenchResult);
  assert.deepEqual(
    results.map((r) => r.method),
    [...METHODS],
  );
  for (const r of results) {
    const about = `${r.method}: ${JSON.stringify(r)}\n${detail}`;
    assert.equal(r.skipped, undefined, about);
    assert.equal(r.error, undefined, about);
    assert.equal(r.verified, true, about);
    assert.equal(r.capped, false, about);
    assert.equal(r.bytes, BYTES, about);
    assert.equal(r.profile, 'metro');
    // The bytes crossed the emulator (a path around it would show no wire bytes).
    assert.ok(r.wire_bytes > BYTES * (r.method === 'longhaul' || r.method === 'kcptun' ? 0.2 : 1), about);
    // Where the time went: every process of the run was read (a 4 MiB run may stay under one
    // 10 ms /proc tick for some), together they used CPU, the machine's busy share is a share,
    // and the link floor is the wire bytes at the metro rate (1 Gbit/s).
    const roles = [
      'emulator',
      'sink',
      'client',
      ...(r.method === 'longhaul' ? ['gateway_a', 'gateway_b'] : r.method === 'kcptun' ? ['kcptun_client', 'kcptun_server'] : []),
    ];
    for (const role of roles) assert.equal(typeof r.cpu_seconds?.[role], 'number', `${role} CPU: ${about}`);
    assert.ok(roles.reduce((sum, role) => sum + (r.cpu_seconds?.[role] ?? 0), 0) > 0, about);
    assert.ok(typeof r.machine_busy === 'number' && r.machine_busy > 0 && r.machine_busy <= 1, about);
    assert.ok(typeof r.link_floor_seconds === 'number' && r.link_floor_seconds >= (r.wire_bytes * 8) / 1e9, about);
    assert.ok(r.link_floor_seconds! < r.seconds * 1.01, `the run cannot beat its link floor: ${about}`);
  }
  // The lab the test brought up is gone again.
  assert.equal(existsSync(`/run/netns/${PREFIX}-a`), false);
});
