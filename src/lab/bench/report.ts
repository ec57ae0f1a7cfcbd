// Benchmark results as files: JSON lines (one per run), a Markdown table in the report's
// shape (seconds per method, speed-ups) with the details per run, and an SVG chart.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPORT_PROFILES, WIRE_OVERHEAD_BYTES } from '../../link/profiles.ts';
import { METHOD_DOC, METHODS, type MigrationSettings } from './matrix.ts';
import { WARM_UP_BYTES, type BenchResult } from './runner.ts';
import { renderChart } from './chart.ts';
import type { QemuSettings } from '../qemu/settings.ts';
import { QEMU_NOTES, qemuCpuCell, qemuRunsTable, qemuWorkloadText } from '../qemu/report.ts';
import { formatSeconds, speedUp, usable } from './figures.ts';
import { classifyLimit, CPU_BUSY_THRESHOLD, GATEWAY_CORE_THRESHOLD, LINK_FLOOR_TOLERANCE } from './limits.ts';

export { formatSeconds, speedUp, usable };

export const RESULTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bench/results');

// The report's table (the published lab report, README): plain TCP and appliance seconds for one VM.
const REPORT_SECONDS: Record<string, [number, number]> = {
  baseline: [9.6, 9.9],
  sonet: [13.1, 12.9],
  llmetro: [17.8, 13.7],
  metro: [127.5, 14.7],
  mpls: [395.2, 22.9],
};

export interface MachineInfo {
  date: string;
  nproc: number;
  cpu: string;
  kernel: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  let nproc = cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    /* cpus() is close enough */
  }
  return { date: new Date().toISOString(), nproc, cpu: cpus()[0]?.model ?? 'unknown', kernel: release(), node: process.version };
}

/** The emulator's measured ceiling per engine, from its benchmark (bench/results/emulator-<date>.json). */
export interface EmulatorCeilings {
  file: string;
  byEngine: Record<string, { pps: number; mbps: number }>;
}

function readEmulatorCeilings(): EmulatorCeilings | null {
  try {
    const files = readdirSync(RESULTS_DIR)
      .filter((f) => /^emulator-.*\.json$/.test(f))
      .sort();
    const last = files.at(-1);
    if (!last) return null;
    const data = JSON.parse(readFileSync(join(RESULTS_DIR, last), 'utf8')) as { results?: Array<Record<string, unknown>> };
    const byEngine: EmulatorCeilings['byEngine'] = {};
    for (const r of data.results ?? []) {
      if (r.ceilingPps !== undefined) byEngine[String(r.engine)] = { pps: Number(r.ceilingPps), mbps: Number(r.ceilingMbps) };
    }
    return { file: last, byEngine };
  } catch {
    return null;
  }
}

function ceilingText(c: EmulatorCeilings | null): string | null {
  if (c === null) return null;
  const engines = Object.entries(c.byEngine);
  if (engines.length === 0) return `see ${c.file}`;
  return `${engines.map(([engine, e]) => `${engine} ${e.pps.toFixed(0)} packets/s (${e.mbps.toFixed(0)} Mbit/s of 1450-byte datagrams)`).join(', ')} (${c.file})`;
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const secs = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(1));

/**
 * A run's limit with the figures behind it: its link floor and the share of the link the run
 * used, how busy the machine was, and for a CPU-limited run the emulator's packet rate
 * against its measured ceiling.
 */
export function limitText(r: BenchResult, ceilings: EmulatorCeilings | null = null): string {
  if (!usable(r)) return '';
  const limit = classifyLimit(r);
  const figures: string[] = [];
  const floor = r.link_floor_seconds;
  figures.push(
    typeof floor === 'number'
      ? `floor ${secs(floor)} s = ${pct(floor / r.seconds)} of the time`
      : floor === null
        ? 'no link floor (unlimited link)'
        : 'floor unknown',
  );
  figures.push(typeof r.machine_busy === 'number' ? `machine ${pct(r.machine_busy)} busy` : 'CPU unknown');
  // How much of that busy time was the run's own processes (the rest: the kernel's network
  // work, and anything else running on the machine).
  const own = ownCpuSeconds(r);
  if (own !== null && typeof r.machine_cpu_seconds === 'number')
    figures.push(`run's processes ${own.toFixed(0)} of ${r.machine_cpu_seconds.toFixed(0)} busy CPU s`);
  // The sending gateway is one thread: its share of a core says how close it came to limiting.
  const sender = r.method === 'longhaul' ? r.cpu_seconds?.gateway_a : undefined;
  if (typeof sender === 'number' && r.seconds > 0) figures.push(`gateway A ${pct(sender / r.seconds)} of a core`);
  if (limit === 'cpu' && r.wire_packets !== undefined && r.seconds > 0) {
    const pps = (r.wire_packets + (r.wire_packets_reverse ?? 0)) / r.seconds;
    const ceiling = r.emulator !== undefined ? ceilings?.byEngine[r.emulator] : undefined;
    figures.push(`emulator ${(pps / 1000).toFixed(0)}k packets/s${ceiling ? ` of its ${(ceiling.pps / 1000).toFixed(0)}k ceiling` : ''}`);
  }
  return `${limit} (${figures.join('; ')})`;
}

/** The summary's limit cell for a profile: Longhaul's run, else the fastest usable run (named). */
export function limitCell(profile: string, results: BenchResult[], ceilings: EmulatorCeilings | null = null): string {
  const runs = results.filter((r) => r.profile === profile && usable(r));
  if (runs.length === 0) return '';
  const longhaul = runs.find((r) => r.method === 'longhaul');
  if (longhaul) return limitText(longhaul, ceilings);
  const fastest = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return `${fastest.method}: ${limitText(fastest, ceilings)}`;
}

/** CPU seconds of the run's own processes, or null if none were recorded. */
function ownCpuSeconds(r: BenchResult): number | null {
  const values = Object.values(r.cpu_seconds ?? {}).filter((v): v is number => typeof v === 'number');
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0);
}

/** CPU seconds of one process role, or '?' when the run did not record it. */
function cpuOf(r: BenchResult, role: string): string {
  const v = r.cpu_seconds?.[role];
  return typeof v === 'number' ? v.toFixed(1) : '?';
}

/**
 * Per-process CPU of a run, each figure named (a bare list of four or five numbers was misread:
 * the emulator's 8.6 s on mpls was taken for the client's): the tunnel's two ends (gateways or
 * kcptun), emulator, client, sink.
 */
function cpuCell(r: BenchResult): string {
  if (r.cpu_seconds === undefined) return 'unknown';
  const ends: Array<[string, string]> =
    r.method === 'longhaul'
      ? [
          ['gateway_a', 'gw A'],
          ['gateway_b', 'gw B'],
        ]
      : r.method === 'kcptun'
        ? [
            ['kcptun_client', 'kcp A'],
            ['kcptun_server', 'kcp B'],
          ]
        : [];
  if (r.workload === 'qemu') return qemuCpuCell(r);
  const cells: Array<[string, string]> = [...ends, ['emulator', 'emu'], ['client', 'client'], ['sink', 'sink']];
  return cells.map(([role, name]) => `${name} ${cpuOf(r, role)}`).join(', ');
}

/**
 * Longhaul: what the sending gateway's codec did, from its status after the run: the setting
 * that compressed most of the bytes (with its share) and the codec's output / input. Empty when
 * the run has no codec figures.
 */
export function codecNote(r: BenchResult): string {
  const encode = (r.gateway_a?.codec as { encode?: Record<string, unknown> } | undefined)?.encode;
  if (!encode || typeof encode.ratio !== 'number') return '';
  const by = encode.bySetting as Record<string, { bytesIn: number }> | undefined;
  const compressed = by ? Object.entries(by).filter(([k]) => k !== 'none') : [];
  const total = compressed.reduce((n, [, c]) => n + c.bytesIn, 0);
  let main = `final ${String(encode.setting)}`;
  if (total > 0) {
    const [name, c] = compressed.reduce((a, b) => (b[1].bytesIn > a[1].bytesIn ? b : a));
    main = `${name} on ${pct(c.bytesIn / total)} of compressed bytes`;
  }
  return `codec ${main}, out/in ${encode.ratio.toFixed(3)}`;
}

/** The sentence under the table: Longhaul's mpls time against its link floor, and what that means for the 1.5x target. */
export function mplsFloorSentence(results: BenchResult[]): string | null {
  const r = results.find((x) => x.profile === 'mpls' && x.method === 'longhaul');
  if (!usable(r) || r.capped) return null;
  const floor = r.link_floor_seconds;
  if (typeof floor !== 'number') {
    return `Longhaul on mpls: ${secs(r.seconds)} s; its link floor is unknown (the run predates its recording).`;
  }
  const base = results.find((x) => x.profile === 'baseline' && x.method === 'longhaul');
  const rate = (r.link_rate_bps ?? 0) / 1e6;
  let text =
    `Longhaul on mpls: ${secs(r.seconds)} s against a link floor of ${secs(floor)} s (${mib(r.wire_bytes)} MiB of datagrams A->B ` +
    `plus ${WIRE_OVERHEAD_BYTES} bytes of IP/UDP headers each, at ${rate.toFixed(0)} Mbit/s): the link was busy ${pct(floor / r.seconds)} of the time.`;
  if (usable(base) && !base.capped && base.seconds > 0) {
    const x = floor / base.seconds;
    text +=
      ` The floor alone is ${x.toFixed(2)}x Longhaul's baseline time (${secs(base.seconds)} s), so ` +
      (x > 1.5
        ? 'the 1.5x-of-baseline target cannot hold on mpls with these wire bytes: only fewer bytes on the wire (a better compression ratio) can move the floor.'
        : "the 1.5x-of-baseline target is within the link's reach.");
  }
  return text;
}

export interface ReportContext {
  workload: string;
  payload: string;
  bytes: number;
  migration: MigrationSettings;
  /** `qemu` workload: the guest and QEMU's migration settings. */
  qemu?: QemuSettings;
  machine?: MachineInfo;
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);
}

/** The median run of a cell by time (the lower one of an even count); capped and failed runs count as slowest. */
export function medianRun(runs: BenchResult[]): BenchResult | undefined {
  if (runs.length <= 1) return runs[0];
  const key = (r: BenchResult) => (usable(r) && !r.capped ? r.seconds : Infinity);
  const sorted = [...runs].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0 ? NaN : v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

/** CPU seconds of a role per GiB of source data, or null. */
export function cpuPerGiB(r: BenchResult, role: string): number | null {
  const v = r.cpu_seconds?.[role];
  return typeof v === 'number' && r.bytes > 0 ? v / (r.bytes / 2 ** 30) : null;
}

/** Cells run more than once: median goodput with its spread, the gateways' CPU per GiB and the link's busy share. */
function mediansTable(results: BenchResult[], profiles: string[], methods: readonly string[]): string[] {
  const rows: string[] = [];
  for (const p of profiles) {
    for (const m of methods) {
      const runs = results.filter((r) => r.profile === p && r.method === m && usable(r));
      if (runs.length < 2) continue;
      const goodput = runs.map((r) => r.goodput_mbps);
      const per = (role: string) => {
        const v = runs.map((r) => cpuPerGiB(r, role)).filter((x): x is number => x !== null);
        return v.length === 0 ? '' : median(v).toFixed(2);
      };
      const busy = runs
        .map((r) => (typeof r.link_floor_seconds === 'number' && r.seconds > 0 ? r.link_floor_seconds / r.seconds : NaN))
        .filter((x) => !Number.isNaN(x));
      rows.push(
        `| ${p} | ${m} | ${runs.length} | ${median(goodput).toFixed(1)} | ${Math.min(...goodput).toFixed(1)}-${Math.max(...goodput).toFixed(1)} | ` +
          `${m === 'longhaul' ? per('gateway_a') : ''} | ${m === 'longhaul' ? per('gateway_b') : ''} | ${per('emulator')} | ${busy.length > 0 ? pct(median(busy)) : ''} |`,
      );
    }
  }
  if (rows.length === 0) return [];
  return [
    '## Medians of repeated runs',
    '',
    '| profile | method | runs | goodput Mbit/s (median) | min-max | gw A CPU s/GiB | gw B CPU s/GiB | emulator CPU s/GiB | link busy |',
    '|---|---|---:|---:|---|---:|---:|---:|---:|',
    ...rows,
    '',
    "CPU seconds per GiB of source data (the bytes the sink confirmed); link busy: the link floor over the run's time. The tables above show the median run of each cell.",
  ];
}

export function renderMarkdown(results: BenchResult[], ctx: ReportContext & { ceilings?: EmulatorCeilings | null }): string {
  const machine = ctx.machine ?? machineInfo();
  const ceilings = ctx.ceilings !== undefined ? ctx.ceilings : readEmulatorCeilings();
  const profiles = REPORT_PROFILES.map((p) => p.name).filter((p) => results.some((r) => r.profile === p));
  const extra = [...new Set(results.map((r) => r.profile))].filter((p) => !profiles.includes(p));
  const methods = METHODS.filter((m) => results.some((r) => r.method === m));
  // Several runs of a cell (--runs): the tables show the median run by time.
  const find = (p: string, m: string) => medianRun(results.filter((r) => r.profile === p && r.method === m));
  const lines: string[] = [];
  const what =
    ctx.workload === 'qemu' && ctx.qemu !== undefined
      ? qemuWorkloadText(ctx.qemu, results)
      : ctx.workload === 'migration'
        ? `pre-copy live migration of a ${mib(ctx.bytes)} MiB \`${ctx.payload}\` memory image (dirty rate ${ctx.migration.dirtyPagesPerSec} pages/s, downtime budget ${ctx.migration.downtimeBudgetMs} ms)`
        : `bulk transfer of ${mib(ctx.bytes)} MiB of \`${ctx.payload}\` payload`;
  lines.push(`# Lab benchmark: ${ctx.workload}`, '');
  lines.push(`${machine.date}, ${machine.nproc} cores (${machine.cpu}), Linux ${machine.kernel}, Node ${machine.node}.`);
  lines.push(`Workload: ${what}, site A to site B through the lab's link emulator.`, '');
  const warmUp = Math.max(0, ...results.map((r) => r.tunnel_warm_up_bytes ?? 0));
  if (warmUp > WARM_UP_BYTES) {
    lines.push(
      `Tunnels carried ${mib(warmUp)} MiB before each run's clock started: these runs measure gateways that have carried traffic before, not the first transfer after their start.`,
      '',
    );
  }
  lines.push('## Seconds per method (lower is better)', '');
  lines.push(
    `| profile | ${methods.join(' | ')} | longhaul vs tcp-cubic | longhaul vs tcp-bbr | report: plain TCP / appliance (speed-up) | limit |`,
  );
  lines.push(`|---|${methods.map(() => '---:').join('|')}|---:|---:|---|---|`);
  for (const p of [...profiles, ...extra]) {
    const rep = REPORT_SECONDS[p];
    const repText = rep ? `${rep[0]} s / ${rep[1]} s (${(rep[0] / rep[1]).toFixed(rep[0] / rep[1] >= 10 ? 1 : 2)}x)` : '';
    lines.push(
      `| ${p} | ${methods.map((m) => formatSeconds(find(p, m))).join(' | ')} | ${speedUp(find(p, 'tcp-cubic'), find(p, 'longhaul'))} | ${speedUp(find(p, 'tcp-bbr'), find(p, 'longhaul'))} | ${repText} | ${limitCell(p, results, ceilings)} |`,
    );
  }
  const lhBase = find('baseline', 'longhaul');
  if (usable(lhBase) && !lhBase.capped && profiles.some((p) => p !== 'baseline')) {
    lines.push(
      '',
      `Longhaul's time relative to its own baseline time: ${profiles
        .filter((p) => p !== 'baseline')
        .map((p) => {
          const r = find(p, 'longhaul');
          return usable(r) ? `${p} ${(r.seconds / lhBase.seconds).toFixed(2)}x` : `${p} n/a`;
        })
        .join(', ')} (target: within 1.5x).`,
    );
  }
  const floorSentence = mplsFloorSentence(results);
  if (floorSentence) lines.push('', floorSentence);
  const medians = mediansTable(results, [...profiles, ...extra], methods);
  if (medians.length > 0) lines.push('', ...medians);
  lines.push(
    '',
    `Limit (Longhaul's run, else the fastest): \`link\` when the run took at most ${pct(LINK_FLOOR_TOLERANCE)} longer than its link floor ` +
      `(the bytes that crossed the link A->B at the link rate), \`cpu\` when the machine's cores were at least ${pct(CPU_BUSY_THRESHOLD)} busy during the run ` +
      `or a Longhaul gateway (one thread) used at least ${pct(GATEWAY_CORE_THRESHOLD)} of a core, ` +
      'else `protocol`; `unknown` for runs recorded before these figures were. A `link` run kept the link busy at least ' +
      `${pct(1 / (1 + LINK_FLOOR_TOLERANCE))} of the time, so it gets faster mainly by putting fewer bytes on the wire; a \`cpu\` or \`protocol\` run left the link idle longer.`,
  );
  lines.push('', '## Every run', '');
  if (ctx.workload === 'qemu') lines.push(...qemuRunsTable(results), '', QEMU_NOTES, '', "### The bench's common figures", '');
  lines.push(
    '| profile | method | seconds | goodput Mbit/s | source MiB | wire MiB (A->B) | wire / source | underlay lost / queue drops | rounds | downtime ms | verified | link floor s | machine busy | CPU s per process | limit | notes |',
  );
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|---|');
  for (const r of results) {
    const ratio = r.bytes > 0 ? (r.wire_bytes / r.bytes).toFixed(2) : '';
    const codec = codecNote(r);
    const status = r.skipped
      ? `skipped: ${r.skipped}`
      : r.error && !r.capped
        ? `error: ${r.error}`
        : [r.notes, codec].filter((x) => x !== '').join('; ');
    lines.push(
      `| ${r.profile} | ${r.method} | ${formatSeconds(r)} | ${r.goodput_mbps.toFixed(1)} | ${mib(r.bytes)} | ${mib(r.wire_bytes)} | ${ratio} | ` +
        `${r.wire_lost} / ${r.wire_queue_drops} | ${r.rounds ?? ''} | ${r.downtime_ms !== undefined ? r.downtime_ms.toFixed(0) : ''} | ${r.verified ? 'yes' : r.capped ? 'capped' : 'no'} | ` +
        `${typeof r.link_floor_seconds === 'number' ? secs(r.link_floor_seconds) : r.link_floor_seconds === null ? '-' : 'unknown'} | ` +
        `${typeof r.machine_busy === 'number' ? pct(r.machine_busy) : 'unknown'} | ${cpuCell(r)} | ${usable(r) ? classifyLimit(r) : ''} | ${status.replaceAll('|', '/')} |`,
    );
  }
  lines.push('', '## Methods', '');
  for (const m of methods) lines.push(`- \`${m}\`: ${METHOD_DOC[m]}`);
  lines.push(
    '',
    'Wire bytes are the UDP payload bytes the emulator delivered from site A to site B (VXLAN-encapsulated TCP for the tcp-* methods).',
  );
  const ceiling = ceilingText(ceilings);
  lines.push(
    '',
    `CPU: the emulator, the endpoints, the gateways and the hashing share ${machine.nproc} cores; on the 1 Gbit/s profiles the machine, not the link, can be the limit. ` +
      (ceiling
        ? `Emulator ceiling measured on this machine: ${ceiling}; the engine each run used is in the JSON lines (\`emulator\`).`
        : "The emulator's own ceiling: see its benchmark under bench/results/.") +
      ' CPU seconds per process are counted while the workload ran (from /proc; the emulator with its native datapath child; the client self-reports its whole life); ' +
      '"gw A" / "gw B" are the Longhaul gateways, "kcp A" / "kcp B" the kcptun client and server; "?" marks a process that could not be read. ' +
      "The machine's busy CPU seconds come from /proc/stat's per-CPU counters, the processes' from their own run-time counters; on the bursty 100 Mbit/s runs the processes have shown more CPU seconds than the machine (30 against 25), so read \"machine busy\" as approximate. " +
      "For Longhaul the notes name the codec setting that compressed most bytes on gateway A and the codec's output / input bytes (before the transport's packet overhead).",
  );
  return `${lines.join('\n')}\n`;
}

export interface WrittenResults extends Array<string> {
  markdownTable: string;
}

export function writeResults(results: BenchResult[], ctx: ReportContext & { base?: string | undefined }): WrittenResults {
  const machine = ctx.machine ?? machineInfo();
  const day = machine.date.slice(0, 10);
  const base = ctx.base ?? join(RESULTS_DIR, `lab-${day}-${ctx.workload}`);
  mkdirSync(dirname(base), { recursive: true });
  const jsonl = `${results.map((r) => JSON.stringify({ ...r, machine })).join('\n')}\n`;
  writeFileSync(`${base}.jsonl`, jsonl);
  const md = renderMarkdown(results, { ...ctx, machine });
  writeFileSync(
    `${base}.md`,
    md.replace('## Seconds per method', `![time per profile and method](${base.split('/').pop()}.svg)\n\n## Seconds per method`),
  );
  writeFileSync(
    `${base}.svg`,
    renderChart(results, {
      title: `${ctx.workload}: ${mib(ctx.bytes)} MiB ${ctx.workload === 'qemu' ? 'guest, verified QEMU live migration' : ctx.payload}, seconds per profile and method (log scale)`,
      subtitle: `${machine.date.slice(0, 16).replace('T', ' ')} UTC, ${machine.nproc} cores ${machine.cpu}`,
    }),
  );
  const files = [`${base}.jsonl`, `${base}.md`, `${base}.svg`] as WrittenResults;
  files.markdownTable = md;
  return files;
}
