// `longhaul bench --perf-record DIR`: a CPU profile of the method's processes (the gateways, or
// kcptun's ends) while the workload runs, and only then (start-up and warm-up excluded). Linux
// perf samples user and kernel stacks; the gateways run with --perf-basic-prof-only-functions so
// JavaScript frames have names. The text report beside each profile is what bench/results quotes.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchCell } from './matrix.ts';

/** Node flags for processes that perf should see JavaScript frames of (writes /tmp/perf-PID.map). */
export const PERF_NODE_FLAGS = ['--perf-basic-prof-only-functions'];

// 999 Hz: below the kernel's default maximum sample rate, not in step with 1 ms timers.
const SAMPLE_HZ = 999;

export interface PerfRecording {
  child: ChildProcess;
  file: string;
  roles: Record<string, number>;
}

export function startPerfRecord(dir: string, cell: BenchCell, processes: Record<string, number | undefined>): PerfRecording | null {
  const roles: Record<string, number> = {};
  for (const [role, pid] of Object.entries(processes)) if (pid !== undefined) roles[role] = pid;
  if (Object.keys(roles).length === 0) return null;
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${cell.profile.name}-${cell.method}-${cell.payload}-${Date.now()}.perf.data`);
  const child = spawn('perf', ['record', '-q', '-F', String(SAMPLE_HZ), '-g', '-o', file, '-p', Object.values(roles).join(',')], {
    stdio: 'ignore',
  });
  child.on('error', () => {}); // perf not installed: the run goes on without a profile
  return { child, file, roles };
}

/** Stops the recording and writes a flat report per process (self time by shared object and symbol) next to it. */
export async function stopPerfRecord(rec: PerfRecording): Promise<void> {
  if (rec.child.exitCode === null && rec.child.signalCode === null) {
    const exited = new Promise<void>((done) => rec.child.once('exit', () => done()));
    rec.child.kill('SIGINT');
    await exited;
  }
  const parts: string[] = [];
  for (const [role, pid] of Object.entries(rec.roles)) {
    const r = spawnSync(
      'perf',
      [
        'report',
        '-i',
        rec.file,
        '--pid',
        String(pid),
        '--no-children',
        '--sort',
        'dso,sym',
        '-g',
        'none',
        '--stdio',
        '--percent-limit',
        '0.3',
      ],
      {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    parts.push(
      `## ${role} (pid ${pid})\n\n${(r.stdout ?? '')
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .join('\n')}\n`,
    );
  }
  writeFileSync(rec.file.replace(/\.perf\.data$/, '.txt'), parts.join('\n'));
}
