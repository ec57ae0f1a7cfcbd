// Real QEMU live migrations in a lab of their own (root, QEMU; namespace prefix lhqm), run as
// `longhaul bench --workload qemu` processes under flock /tmp/longhaul-lab.lock like the other
// lab tests: a 128 MiB guest through Longhaul completes and verifies on the destination, and a
// migration whose destination QEMU is killed half-way is reported failed, not timed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from '../../src/lab/bench/runner.ts';
import { formatSeconds } from '../../src/lab/bench/figures.ts';
import { guestUnavailable } from '../../src/lab/qemu/guest-image.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BENCH = join(ROOT, 'src/lab/bench/main.ts');
const PREFIX = 'lhqm';
const GUEST = '128MiB';

const why =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces)'
    : spawnSync('sh', ['-c', 'command -v ip && command -v flock && command -v ethtool'], { stdio: 'ignore' }).status !== 0
      ? 'needs iproute2, flock and ethtool'
      : guestUnavailable();

function bench(args: string[]): { results: BenchResult[]; detail: string } {
  const run = spawnSync(
    'flock',
    [
      '/tmp/longhaul-lab.lock',
      process.execPath,
      BENCH,
      '--lab',
      PREFIX,
      '--workload',
      'qemu',
      '--bytes',
      GUEST,
      '--cap',
      '90',
      '--json',
      ...args,
    ],
    { encoding: 'utf8', timeout: 280_000 },
  );
  const detail = `stderr: ${run.stderr.slice(-1500)}\nstdout: ${run.stdout.slice(-3000)}`;
  assert.equal(run.status, 0, `bench exited ${run.status ?? run.signal}: ${detail}`);
  const results = run.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as BenchResult);
  // The lab the run brought up is gone again.
  assert.equal(existsSync(`/run/netns/${PREFIX}-a`), false, detail);
  return { results, detail };
}

test('a 128 MiB guest migrates through Longhaul and verifies on the destination', { skip: why ?? false, timeout: 300_000 }, () => {
  const { results, detail } = bench(['--profile', 'baseline', '--method', 'longhaul']);
  assert.equal(results.length, 1, detail);
  const r = results[0]!;
  const about = `${JSON.stringify(r)}\n${detail}`;
  assert.equal(r.workload, 'qemu', about);
  assert.equal(r.error, undefined, about);
  assert.equal(r.skipped, undefined, about);
  assert.equal(r.capped, false, about);
  assert.equal(r.verified, true, about);
  const q = r.qemu!;
  assert.equal(q.status, 'completed', about);
  // The guest filled memory and re-checked every page it filled on the destination.
  assert.ok((q.filled_pages ?? 0) > 1000, about);
  assert.equal(q.bad_pages, 0, about);
  assert.match(q.verification, new RegExp(`${q.filled_pages} pages checked, 0 bad`), about);
  // QEMU's own figures are there; the stream crossed the emulator (compressed, but not nothing).
  assert.ok(typeof q.transferred_bytes === 'number' && q.transferred_bytes > 16 * 2 ** 20, about);
  assert.equal(r.bytes, q.transferred_bytes, about);
  assert.ok(r.wire_bytes > 0.1 * q.transferred_bytes, about);
  assert.ok((r.rounds ?? 0) >= 1 && typeof r.downtime_ms === 'number', about);
  assert.ok(q.total_time_ms !== null && r.seconds * 1000 >= q.total_time_ms * 0.99, about);
  for (const role of ['qemu_src', 'qemu_dst', 'gateway_a', 'gateway_b', 'emulator'])
    assert.equal(typeof r.cpu_seconds?.[role], 'number', `${role}: ${about}`);
  assert.ok((r.cpu_seconds?.qemu_src ?? 0) > 0, about);
});

test('a migration whose destination QEMU is killed is reported failed, not timed', { skip: why ?? false, timeout: 300_000 }, () => {
  // mpls moves the guest in ~8 s; the destination dies after the first 8 MiB.
  const { results, detail } = bench(['--profile', 'mpls', '--method', 'tcp-bbr', '--cut-destination-after', '8MiB']);
  assert.equal(results.length, 1, detail);
  const r = results[0]!;
  const about = `${JSON.stringify(r)}\n${detail}`;
  assert.equal(r.verified, false, about);
  assert.equal(r.capped, false, about);
  assert.equal(r.qemu?.status, 'failed', about);
  assert.match(r.error ?? '', /fail|exited/i, about);
  // The kill came mid-stream: QEMU had sent some but not all of the guest.
  const sent = r.qemu?.transferred_bytes ?? 0;
  assert.ok(sent >= 8 * 2 ** 20 && sent < 128 * 2 ** 20, about);
  assert.equal(formatSeconds(r), 'failed', about);
});
