// `longhaul bench`: the report's experiment in the lab. One cell with --profile and
// --method (JSON lines with --json), or the whole matrix, saved under bench/results/.

import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { findProfile, REPORT_PROFILES, type LinkProfile } from '../../link/profiles.ts';
import { parseBytes, parsePayload } from '../workloads/run.ts';
import type { PayloadKind } from '../workloads/payload.ts';
import {
  buildMatrix,
  capSeconds,
  DEFAULT_BYTES,
  DEFAULT_MAX_CAP_SECONDS,
  DEFAULT_MIGRATION,
  isMethod,
  isWorkload,
  METHODS,
  type Method,
  type MigrationSettings,
  type Workload,
} from './matrix.ts';
import { ensureLab, runCell, stopActiveRuns, type BenchResult } from './runner.ts';
import { runQemuCell } from '../qemu/bench-cell.ts';
import { DEFAULT_QEMU, parseMix, QEMU_COMPRESSIONS, type QemuCompression, type QemuSettings } from '../qemu/settings.ts';
import { DEFAULT_LAB, type LabId } from '../netns.ts';

function labId(prefix: string): LabId {
  return prefix === DEFAULT_LAB.prefix ? DEFAULT_LAB : { prefix, stateDir: `${DEFAULT_LAB.stateDir}-${prefix}` };
}
import { ProgressBar } from './progress.ts';
import { machineInfo, writeResults, type MachineInfo } from './report.ts';

function parseList<T extends string>(what: string, valid: (x: string) => x is T, all: readonly string[]) {
  return (text: string): T[] => {
    const items = text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const x of items) if (!valid(x)) throw new InvalidArgumentError(`unknown ${what} "${x}" (one of: ${all.join(', ')})`);
    return items as T[];
  };
}

function parseProfiles(text: string): LinkProfile[] {
  return text.split(',').map((name) => {
    const p = findProfile(name.trim());
    if (!p)
      throw new InvalidArgumentError(`unknown profile "${name}" (one of: ${REPORT_PROFILES.map((x) => x.name).join(', ')}, loss1, loss3)`);
    return p;
  });
}

function positive(text: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new InvalidArgumentError(`not a positive number: ${text}`);
  return n;
}

interface BenchFlags {
  profile?: LinkProfile[];
  method?: Method[];
  workload: Workload;
  payload: PayloadKind;
  bytes?: number;
  json: boolean;
  cap: number;
  dirtyRate: number;
  downtime: number;
  out?: string;
  save: boolean;
  seed: number;
  longhaulFlag: string[];
  gatewayNodeFlag: string[];
  lab: string;
  render?: string;
  perfRecord?: string;
  tunnelWarmUp?: number;
  runs: number;
  fill?: number;
  mix?: string;
  multifd?: number;
  qemuCompression?: QemuCompression;
  cutDestinationAfter?: number;
}

/** Guest RAM of the `qemu` workload (whole MiB); the VM image size or bulk bytes otherwise. */
export const DEFAULT_QEMU_BYTES = DEFAULT_QEMU.memoryMiB * 2 ** 20;

function defaultBytes(workload: Workload): number {
  return workload === 'qemu' ? DEFAULT_QEMU_BYTES : DEFAULT_BYTES;
}

function qemuSettings(flags: BenchFlags, bytes: number): QemuSettings {
  if (bytes % 2 ** 20 !== 0 || bytes < 64 * 2 ** 20)
    throw new InvalidArgumentError(`--bytes for the qemu workload is the guest's RAM: whole MiB, at least 64MiB (got ${bytes})`);
  const fill = flags.fill ?? DEFAULT_QEMU.fillShare;
  if (!(fill > 0 && fill <= 0.95)) throw new InvalidArgumentError(`--fill must be in (0, 0.95]: ${fill}`);
  return {
    ...DEFAULT_QEMU,
    memoryMiB: bytes / 2 ** 20,
    fillShare: fill,
    mix: flags.mix !== undefined ? parseMix(flags.mix) : DEFAULT_QEMU.mix,
    dirtyPagesPerSec: flags.dirtyRate,
    downtimeLimitMs: flags.downtime,
    multifdChannels: flags.multifd ?? DEFAULT_QEMU.multifdChannels,
    compression: flags.qemuCompression ?? DEFAULT_QEMU.compression,
    seed: flags.seed,
  };
}

/** Re-write the Markdown and SVG of a results file from its JSON lines (e.g. after a report change). */
function render(jsonlPath: string): void {
  const lines = readFileSync(jsonlPath, 'utf8').trim().split('\n').filter(Boolean);
  const rows = lines.map((l) => JSON.parse(l) as BenchResult & { machine?: MachineInfo });
  const first = rows[0];
  if (!first) throw new Error(`${jsonlPath}: no results`);
  const results = rows.map(({ machine: _m, ...r }) => r as BenchResult);
  const files = writeResults(results, {
    base: jsonlPath.replace(/\.jsonl$/, ''),
    workload: first.workload,
    payload: first.payload,
    // Files from before size_bytes was recorded used the default size.
    bytes: first.size_bytes ?? DEFAULT_BYTES,
    ...(first.qemu ? { qemu: first.qemu.settings } : {}),
    // Lines printed by --json carry no machine: this machine, dated by the first run.
    migration: first.migration ?? DEFAULT_MIGRATION,
    machine: first.machine ?? { ...machineInfo(), date: first.date },
  });
  process.stderr.write(`results: ${files.join(', ')}\n`);
}

function summary(r: BenchResult): string {
  if (r.skipped) return `${r.profile.padEnd(8)} ${r.method.padEnd(9)} skipped: ${r.skipped}`;
  if (r.error && !r.capped) return `${r.profile.padEnd(8)} ${r.method.padEnd(9)} FAILED: ${r.error}`;
  const mig = r.downtime_ms !== undefined ? `, ${r.rounds} rounds, downtime ${r.downtime_ms.toFixed(0)} ms` : '';
  return (
    `${r.profile.padEnd(8)} ${r.method.padEnd(9)} ${r.capped ? `>${r.seconds.toFixed(0)} s (capped)` : `${r.seconds.toFixed(2)} s`}` +
    `, ${r.goodput_mbps.toFixed(0)} Mbit/s, wire ${(r.wire_bytes / 2 ** 20).toFixed(0)} MiB${mig}${r.verified ? '' : r.capped ? '' : ' NOT VERIFIED'}`
  );
}

export async function benchAction(flags: BenchFlags): Promise<BenchResult[]> {
  if (flags.render !== undefined) {
    render(flags.render);
    return [];
  }
  const migration: MigrationSettings = { ...DEFAULT_MIGRATION, dirtyPagesPerSec: flags.dirtyRate, downtimeBudgetMs: flags.downtime };
  const bytes = flags.bytes ?? defaultBytes(flags.workload);
  const qemu = flags.workload === 'qemu' ? qemuSettings(flags, bytes) : undefined;
  const cells = buildMatrix({ profiles: flags.profile, methods: flags.method, workload: flags.workload, payload: flags.payload, bytes });
  const wholeMatrix = flags.profile === undefined || flags.method === undefined;
  const bar = new ProgressBar();
  const results: BenchResult[] = [];
  const lab = labId(flags.lab);
  const labDone = await ensureLab(lab);
  const stop = () => {
    process.stderr.write('\ninterrupted: stopping the run in progress\n');
    void stopActiveRuns()
      .then(labDone)
      .then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  try {
    // Repeated runs go round the whole matrix, so slow drift on the machine spreads over every cell.
    const schedule = Array.from({ length: flags.runs }, () => cells).flat();
    for (const [i, cell] of schedule.entries()) {
      const cap = capSeconds(cell, flags.cap, migration);
      const label = `[${i + 1}/${schedule.length}] ${cell.profile.name} ${cell.method}`;
      const runOpts = {
        lab,
        maxCapSeconds: flags.cap,
        migration,
        seed: flags.seed,
        longhaulFlags: flags.longhaulFlag,
        gatewayNodeFlags: flags.gatewayNodeFlag,
        perfDir: flags.perfRecord,
        ...(flags.tunnelWarmUp !== undefined ? { tunnelWarmUpBytes: flags.tunnelWarmUp } : {}),
        onProgress: (c: typeof cell, sent: number, seconds: number) => bar.update(label, c, sent, seconds, cap),
      };
      const r =
        qemu !== undefined
          ? await runQemuCell(cell, {
              ...runOpts,
              qemu,
              ...(flags.cutDestinationAfter !== undefined ? { cutAfterBytes: flags.cutDestinationAfter } : {}),
            })
          : await runCell(cell, runOpts);
      results.push(r);
      bar.done(`${label.split(' ')[0]} ${summary(r)}`);
      if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    }
  } finally {
    process.off('SIGINT', stop);
    await labDone();
  }
  if (flags.save || (wholeMatrix && !flags.json) || flags.out !== undefined) {
    const files = writeResults(results, {
      base: flags.out,
      workload: flags.workload,
      payload: flags.payload,
      bytes,
      migration,
      ...(qemu ? { qemu } : {}),
    });
    process.stderr.write(`results: ${files.join(', ')}\n`);
    if (!flags.json) process.stdout.write(`${files.markdownTable}\n`);
  } else if (!flags.json && !(process.stderr.isTTY && process.stdout.isTTY)) {
    // On a terminal the progress lines already said it.
    for (const r of results) process.stdout.write(`${summary(r)}\n`);
  }
  return results;
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description("run the report's experiment in the lab: each profile x method, time / speed-up / goodput / wire bytes")
    .option('--profile <names>', `link profile(s), comma-separated (default: all five report profiles)`, parseProfiles)
    .option('--method <names>', `method(s): ${METHODS.join(', ')} (default: all)`, parseList('method', isMethod, METHODS))
    .option(
      '--workload <w>',
      'migration (the model) | qemu (a real QEMU live migration) | bulk',
      (x: string) => {
        if (!isWorkload(x)) throw new InvalidArgumentError('workload must be migration, qemu or bulk');
        return x;
      },
      'migration' as Workload,
    )
    .option('--payload <kind>', 'vm | random', parsePayload, 'vm' as PayloadKind)
    .option(
      '--bytes <size>',
      'bulk bytes, VM memory for migration, guest RAM for qemu (e.g. 128MiB, 1GiB; default 1GiB, qemu 512MiB)',
      parseBytes,
    )
    .option('--cap <seconds>', 'longest any run may take (capped runs are reported as such)', positive, DEFAULT_MAX_CAP_SECONDS)
    .option('--dirty-rate <pages/s>', 'migration: pages the VM dirties per second', positive, DEFAULT_MIGRATION.dirtyPagesPerSec)
    .option('--downtime <ms>', 'migration: downtime budget', positive, DEFAULT_MIGRATION.downtimeBudgetMs)
    .option('--seed <n>', 'payload seed', positive, 1)
    .option('--fill <share>', "qemu: share of the guest's memory its workload fills", positive, DEFAULT_QEMU.fillShare)
    .option('--mix <weights>', 'qemu: page mix zero,text,structured,random', '35,20,20,25')
    .option(
      '--multifd <n>',
      'qemu: multifd channels (TCP connections); 0 for the single stream',
      (x: string) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 0 || n > 16) throw new InvalidArgumentError('--multifd must be an integer 0..16');
        return n;
      },
      0,
    )
    .option(
      '--qemu-compression <c>',
      `qemu: QEMU's multifd compression: ${QEMU_COMPRESSIONS.join(', ')}`,
      (x: string) => {
        if (!(QEMU_COMPRESSIONS as readonly string[]).includes(x)) throw new InvalidArgumentError(`one of ${QEMU_COMPRESSIONS.join(', ')}`);
        return x as QemuCompression;
      },
      'none' as QemuCompression,
    )
    .addOption(
      new Option('--cut-destination-after <size>', 'qemu, fault injection for tests: kill the destination QEMU once this much was sent')
        .argParser(parseBytes)
        .hideHelp(),
    )
    .option(
      '--longhaul-flag <flag>',
      'extra flag for both gateways (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--gateway-node-flag <flag>',
      'extra node/V8 flag for both gateways, e.g. --max-semi-space-size=16 (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--tunnel-warm-up <size>',
      'bytes through Longhaul or kcptun before the clock starts (default 64KiB: opens the session; e.g. 256MiB measures gateways that carried traffic before)',
      parseBytes,
    )
    .option('--lab <prefix>', 'namespace prefix of the lab to use (a separate lab for tests)', DEFAULT_LAB.prefix)
    .option('--runs <n>', 'run every cell this many times (the tables show medians)', positive, 1)
    .option('--perf-record <dir>', 'record a CPU profile (linux perf) of the gateways while each workload runs, with a text report per run')
    .option('--render <jsonl>', 'only re-write the .md and .svg of a results file from its .jsonl')
    .option('--json', 'print one JSON object per run on stdout', false)
    .option('--save', 'also write results files for a single cell', false)
    .option('--out <base>', 'results file base name (default bench/results/lab-<date>-<workload>)')
    .addHelpText(
      'after',
      `
Examples:
  longhaul bench                                  # whole matrix, migration of a 1 GiB vm image (~25 min)
  longhaul bench --bytes 128MiB                   # a quicker look (~10 min)
  longhaul bench --workload qemu --method tcp-cubic,tcp-bbr,longhaul   # real QEMU migrations, 512 MiB guest
  longhaul bench --profile mpls --method longhaul --workload bulk --payload random --bytes 64MiB --json
Needs root and the lab (brought up and down automatically unless one is up already).`,
    )
    .action(async (flags: BenchFlags) => {
      await benchAction(flags);
    });
}
