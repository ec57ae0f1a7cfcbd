// What limited a run (link, CPU, protocol) and the /proc accounting behind it, on fixtures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cpuDelta,
  parseMachineTicks,
  parseProcessTicks,
  readProcesses,
  takeCpuSnapshot,
  treeTicks,
} from '../../src/lab/bench/cpu-accounting.ts';
import { classifyLimit, CPU_BUSY_THRESHOLD, linkFloorSeconds } from '../../src/lab/bench/limits.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'bench-fixtures');
const BEFORE = join(FIXTURES, 'proc-before');
const AFTER = join(FIXTURES, 'proc-after');

test('/proc/stat: busy is everything but idle and iowait; guest time is not counted twice', () => {
  const t = parseMachineTicks('cpu  10000 50 3000 80000 700 0 250 0 400 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n');
  assert.deepEqual(t, { total: 94000, busy: 13300 });
  // An older kernel with only four fields still parses.
  assert.deepEqual(parseMachineTicks('cpu 10 0 5 85\n'), { total: 100, busy: 15 });
  assert.equal(parseMachineTicks('intr 5\n'), null);
  assert.equal(parseMachineTicks('cpu  a b c d\n'), null);
});

test('/proc/<pid>/stat: utime + stime and the parent, with spaces and parentheses in the name', () => {
  const p = parseProcessTicks('4200 (node (gw) a) S 1 4200 4200 0 -1 4194560 100 0 0 0 1000 250 0 0 20 0 11 0 600');
  assert.deepEqual(p, { pid: 4200, ppid: 1, ticks: 1250 });
  assert.equal(parseProcessTicks('garbage'), null);
  assert.equal(parseProcessTicks('12 (x) S'), null, 'truncated');
});

test('a process tree counts the emulator with its native child', () => {
  const procs = readProcesses(BEFORE);
  assert.equal(procs.size, 4);
  assert.equal(treeTicks(4100, procs), 150 + 500 + 10);
  assert.equal(treeTicks(4101, procs), 500);
  assert.equal(treeTicks(9999, procs), null);
});

test('CPU per role and machine busy share between two snapshots', () => {
  const pids = { emulator: 4100, gateway_a: 4200, sink: 4300, gateway_b: 9999, missing: undefined };
  const usage = cpuDelta(takeCpuSnapshot(pids, BEFORE), takeCpuSnapshot(pids, AFTER), 100);
  // The emulator tree: 660 ticks before (4102 included), 1290 after (4102 gone): 6.3 s.
  assert.equal(usage.cpu_seconds.emulator, 6.3);
  assert.equal(usage.cpu_seconds.gateway_a, 20);
  assert.equal(usage.cpu_seconds.sink, null, 'not there at the start');
  assert.equal(usage.cpu_seconds.gateway_b, null, 'never there');
  assert.equal(usage.cpu_seconds.missing, null);
  // 1500 busy of 1700 ticks.
  assert.ok(Math.abs(usage.machine_busy! - 1500 / 1700) < 1e-12);
  assert.equal(usage.machine_cpu_seconds, 15);
  // An unreadable /proc gives unknowns, not zeros.
  const none = cpuDelta(takeCpuSnapshot({ x: 1 }, join(FIXTURES, 'nowhere')), takeCpuSnapshot({ x: 1 }, join(FIXTURES, 'nowhere')), 100);
  assert.deepEqual(none, { cpu_seconds: { x: null }, machine_busy: null, machine_cpu_seconds: null });
});

test('the link floor: payload plus 28 bytes per datagram at the link rate; none for an unlimited link', () => {
  // 100 Mbit/s: 12.5 MB/s. 400 MB in 300k datagrams: (400e6 + 8.4e6) bytes.
  assert.ok(Math.abs(linkFloorSeconds(400e6, 300e3, 100e6)! - (408.4e6 * 8) / 100e6) < 1e-9);
  assert.equal(linkFloorSeconds(1e6, 1000, 0), null);
  assert.equal(linkFloorSeconds(1e6, 1000, NaN), null);
});

test('classification: link within 10% of the floor, else cpu at >= 90% busy, else protocol; unknown without figures', () => {
  assert.equal(classifyLimit({ seconds: 36, link_floor_seconds: 34, machine_busy: 0.95 }), 'link', 'the link floor comes first');
  assert.equal(classifyLimit({ seconds: 37.3, link_floor_seconds: 34, machine_busy: 0.3 }), 'link');
  assert.equal(classifyLimit({ seconds: 38, link_floor_seconds: 34, machine_busy: 0.3 }), 'protocol');
  assert.equal(classifyLimit({ seconds: 11.5, link_floor_seconds: 3.4, machine_busy: CPU_BUSY_THRESHOLD }), 'cpu');
  assert.equal(classifyLimit({ seconds: 11.5, link_floor_seconds: 3.4, machine_busy: 0.89 }), 'protocol');
  assert.equal(classifyLimit({ seconds: 11.5, link_floor_seconds: null, machine_busy: 0.5 }), 'protocol', 'unlimited link');
  // Old result lines: no floor, no CPU.
  assert.equal(classifyLimit({ seconds: 37.1 }), 'unknown');
  assert.equal(classifyLimit({ seconds: 37.1, link_floor_seconds: 20 }), 'unknown', 'not near the floor and CPU unknown');
  assert.equal(classifyLimit({ seconds: 37.1, machine_busy: null }), 'unknown');
});
