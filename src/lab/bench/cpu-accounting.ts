// Where a run's CPU went: CPU seconds per process of the run (gateways, emulator, sink; the
// client reports its own), and how busy the whole machine was, from /proc before and after.
// On the 2-core lab machine this is what tells a link-limited run from a CPU-limited one.

import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Aggregate CPU time of the machine from /proc/stat, in clock ticks. */
export interface MachineTicks {
  /** All ticks (user, nice, system, idle, iowait, irq, softirq, steal). */
  total: number;
  /** total minus idle and iowait. */
  busy: number;
}

/** Parses the first (`cpu `) line of /proc/stat; null if it is not there. */
export function parseMachineTicks(procStat: string): MachineTicks | null {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return null;
  // guest and guest_nice are already counted in user and nice, so only the first eight add up.
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return null;
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0);
  return { total, busy: total - idle };
}

/** One process from /proc/<pid>/stat: its parent and its own user+system ticks. */
export interface ProcessTicks {
  pid: number;
  ppid: number;
  ticks: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last ')'. Null if malformed.
 */
export function parseProcessTicks(stat: string): ProcessTicks | null {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const pid = Number(stat.slice(0, open).trim());
  // After ')': state(3) ppid(4) ... utime(14) stime(15): indexes 0, 1, ... 11, 12.
  const rest = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (![pid, ppid, utime, stime].every(Number.isFinite)) return null;
  return { pid, ppid, ticks: utime + stime };
}

/** Ticks of `root` and all its live descendants (the TS emulator runs the native datapath as a child). */
export function treeTicks(root: number, processes: ReadonlyMap<number, ProcessTicks>): number | null {
  if (!processes.has(root)) return null;
  const children = new Map<number, number[]>();
  for (const p of processes.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  let sum = 0;
  const todo = [root];
  const seen = new Set<number>();
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    sum += processes.get(pid)?.ticks ?? 0;
    todo.push(...(children.get(pid) ?? []));
  }
  return sum;
}

/** What a snapshot holds: machine ticks and, per role, the ticks of that process tree. */
export interface CpuSnapshot {
  machine: MachineTicks | null;
  roles: Record<string, number | null>;
}

export interface CpuUsage {
  /** CPU seconds per role over the interval; null if the process was not there at both ends. */
  cpu_seconds: Record<string, number | null>;
  /** Busy share of the whole machine (all cores) over the interval, 0..1; null if unknown. */
  machine_busy: number | null;
  /** Busy CPU seconds of the whole machine (all cores) over the interval. */
  machine_cpu_seconds: number | null;
}

/** The difference of two snapshots, ticks turned into seconds. */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot, ticksPerSecond: number): CpuUsage {
  const cpu_seconds: Record<string, number | null> = {};
  for (const role of Object.keys(after.roles)) {
    const a = after.roles[role];
    const b = before.roles[role];
    cpu_seconds[role] = a === null || a === undefined || b === null || b === undefined || a < b ? null : (a - b) / ticksPerSecond;
  }
  let machine_busy: number | null = null;
  let machine_cpu_seconds: number | null = null;
  if (before.machine && after.machine) {
    const total = after.machine.total - before.machine.total;
    const busy = after.machine.busy - before.machine.busy;
    if (total > 0 && busy >= 0) {
      machine_busy = busy / total;
      machine_cpu_seconds = busy / ticksPerSecond;
    }
  }
  return { cpu_seconds, machine_busy, machine_cpu_seconds };
}

function readOr(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Every process on the machine (all namespaces share one /proc of PIDs as seen from here). */
export function readProcesses(procDir = '/proc'): Map<number, ProcessTicks> {
  const out = new Map<number, ProcessTicks>();
  let entries: string[];
  try {
    entries = readdirSync(procDir);
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const text = readOr(`${procDir}/${name}/stat`);
    const p = text === null ? null : parseProcessTicks(text);
    if (p) out.set(p.pid, p);
  }
  return out;
}

/** Snapshot of the machine and of each role's process tree (role -> root PID). */
export function takeCpuSnapshot(pids: Record<string, number | undefined>, procDir = '/proc'): CpuSnapshot {
  const statText = readOr(`${procDir}/stat`);
  const processes = readProcesses(procDir);
  const roles: Record<string, number | null> = {};
  for (const [role, pid] of Object.entries(pids)) roles[role] = pid === undefined ? null : treeTicks(pid, processes);
  return { machine: statText === null ? null : parseMachineTicks(statText), roles };
}

let cachedTicks: number | undefined;

/** USER_HZ: the unit of /proc's CPU times (100 on Linux almost everywhere). */
export function clockTicksPerSecond(): number {
  if (cachedTicks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      cachedTicks = Number.isFinite(n) && n > 0 ? n : 100;
    } catch {
      cachedTicks = 100;
    }
  }
  return cachedTicks;
}
