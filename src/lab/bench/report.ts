// Benchmark results as files: JSON lines (one per run), a Markdown table in the report's
// shape (seconds per method, speed-ups) with the details per run, and an SVG chart.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPORT_PROFILES } from '../profiles.ts';
import { METHOD_DOC, METHODS, type MigrationSettings } from './matrix.ts';
import type { BenchResult } from './runner.ts';
import { renderChart } from './chart.ts';
import { formatSeconds, speedUp, usable } from './figures.ts';

export { formatSeconds, speedUp, usable };

const RESULTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bench/results');

// The report's table (validation-report.md): plain TCP and appliance seconds for one VM.
const REPORT_SECONDS: Record<string, [number, number]> = {
  baseline: [9.6, 9.9], sonet: [13.1, 12.9], llmetro: [17.8, 13.7], metro: [127.5, 14.7], mpls: [395.2, 22.9],
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
  } catch { /* cpus() is close enough */ }
  return { date: new Date().toISOString(), nproc, cpu: cpus()[0]?.model ?? 'unknown', kernel: release(), node: process.version };
}

/** The emulator's measured ceiling per engine, from its benchmark (bench/results/emulator-<date>.json). */
function emulatorCeiling(): string | null {
  try {
    const files = readdirSync(RESULTS_DIR).filter((f) => /^emulator-.*\.json$/.test(f)).sort();
    const last = files.at(-1);
    if (!last) return null;
    const data = JSON.parse(readFileSync(join(RESULTS_DIR, last), 'utf8')) as { results?: Array<Record<string, unknown>> };
    const engines = (data.results ?? []).filter((r) => r.ceilingPps !== undefined);
    if (engines.length === 0) return `see ${last}`;
    return `${engines.map((r) => `${String(r.engine)} ${Number(r.ceilingPps).toFixed(0)} packets/s (${Number(r.ceilingMbps).toFixed(0)} Mbit/s of 1450-byte datagrams)`).join(', ')} (${last})`;
  } catch {
    return null;
  }
}

// Below this fraction of the link rate, even the best method did not fill the link.
const LINK_FILLED = 0.8;

/**
 * Which resource bounded a profile: if no method's goodput came near the link rate (and the
 * best did not compress), the machine (CPU shared by emulator, endpoints, gateways) did.
 */
export function limitNote(profile: string, results: BenchResult[]): string {
  const rate = REPORT_PROFILES.find((p) => p.name === profile)?.rateBps;
  const runs = results.filter((r) => r.profile === profile && usable(r) && !r.capped);
  if (rate === undefined || runs.length === 0) return '';
  const best = runs.reduce((a, b) => (b.goodput_mbps > a.goodput_mbps ? b : a));
  const wireMbps = best.seconds > 0 ? (best.wire_bytes * 8) / best.seconds / 1e6 : 0;
  const linkMbps = rate / 1e6;
  if (wireMbps >= LINK_FILLED * linkMbps || best.goodput_mbps >= LINK_FILLED * linkMbps) return 'link';
  return `machine (best ${best.method}: ${wireMbps.toFixed(0)} of ${linkMbps.toFixed(0)} Mbit/s on the wire)`;
}

export interface ReportContext {
  workload: string;
  payload: string;
  bytes: number;
  migration: MigrationSettings;
  machine?: MachineInfo;
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);
}

export function renderMarkdown(results: BenchResult[], ctx: ReportContext): string {
  const machine = ctx.machine ?? machineInfo();
  const profiles = REPORT_PROFILES.map((p) => p.name).filter((p) => results.some((r) => r.profile === p));
  const extra = [...new Set(results.map((r) => r.profile))].filter((p) => !profiles.includes(p));
  const methods = METHODS.filter((m) => results.some((r) => r.method === m));
  const find = (p: string, m: string) => results.find((r) => r.profile === p && r.method === m);
  const lines: string[] = [];
  const what = ctx.workload === 'migration'
    ? `pre-copy live migration of a ${mib(ctx.bytes)} MiB \`${ctx.payload}\` memory image (dirty rate ${ctx.migration.dirtyPagesPerSec} pages/s, downtime budget ${ctx.migration.downtimeBudgetMs} ms)`
    : `bulk transfer of ${mib(ctx.bytes)} MiB of \`${ctx.payload}\` payload`;
  lines.push(`# Lab benchmark: ${ctx.workload}`, '');
  lines.push(`${machine.date}, ${machine.nproc} cores (${machine.cpu}), Linux ${machine.kernel}, Node ${machine.node}.`);
  lines.push(`Workload: ${what}, site A to site B through the lab's link emulator.`, '');
  lines.push('## Seconds per method (lower is better)', '');
  lines.push(`| profile | ${methods.join(' | ')} | longhaul vs tcp-cubic | longhaul vs tcp-bbr | report: plain TCP / appliance (speed-up) | limit |`);
  lines.push(`|---|${methods.map(() => '---:').join('|')}|---:|---:|---|---|`);
  for (const p of [...profiles, ...extra]) {
    const rep = REPORT_SECONDS[p];
    const repText = rep ? `${rep[0]} s / ${rep[1]} s (${(rep[0] / rep[1]).toFixed(rep[0] / rep[1] >= 10 ? 1 : 2)}x)` : '';
    lines.push(`| ${p} | ${methods.map((m) => formatSeconds(find(p, m))).join(' | ')} | ${speedUp(find(p, 'tcp-cubic'), find(p, 'longhaul'))} | ${speedUp(find(p, 'tcp-bbr'), find(p, 'longhaul'))} | ${repText} | ${limitNote(p, results)} |`);
  }
  const lhBase = find('baseline', 'longhaul');
  if (usable(lhBase) && !lhBase.capped) {
    lines.push('', `Longhaul's time relative to its own baseline time: ${profiles.filter((p) => p !== 'baseline').map((p) => {
      const r = find(p, 'longhaul');
      return usable(r) ? `${p} ${(r.seconds / lhBase.seconds).toFixed(2)}x` : `${p} n/a`;
    }).join(', ')} (target: within 1.5x).`);
  }
  lines.push('', '## Every run', '');
  lines.push('| profile | method | seconds | goodput Mbit/s | source MiB | wire MiB (A->B) | wire / source | underlay lost / queue drops | rounds | downtime ms | verified | notes |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  for (const r of results) {
    const ratio = r.bytes > 0 ? (r.wire_bytes / r.bytes).toFixed(2) : '';
    const status = r.skipped ? `skipped: ${r.skipped}` : r.error && !r.capped ? `error: ${r.error}` : r.notes;
    lines.push(`| ${r.profile} | ${r.method} | ${formatSeconds(r)} | ${r.goodput_mbps.toFixed(1)} | ${mib(r.bytes)} | ${mib(r.wire_bytes)} | ${ratio} | ` +
      `${r.wire_lost} / ${r.wire_queue_drops} | ${r.rounds ?? ''} | ${r.downtime_ms !== undefined ? r.downtime_ms.toFixed(0) : ''} | ${r.verified ? 'yes' : r.capped ? 'capped' : 'no'} | ${status.replaceAll('|', '/')} |`);
  }
  lines.push('', '## Methods', '');
  for (const m of methods) lines.push(`- \`${m}\`: ${METHOD_DOC[m]}`);
  lines.push('', 'Wire bytes are the UDP payload bytes the emulator delivered from site A to site B (VXLAN-encapsulated TCP for the tcp-* methods).');
  const ceiling = emulatorCeiling();
  lines.push('', `CPU: the emulator, the endpoints, the gateways and the hashing share ${machine.nproc} cores; on the 1 Gbit/s profiles the machine, not the link, can be the limit. ` +
    (ceiling ? `Emulator ceiling measured on this machine: ${ceiling}; the engine each run used is in the JSON lines (\`emulator\`).` : 'The emulator\'s own ceiling: see its benchmark under bench/results/.'));
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
  const jsonl = results.map((r) => JSON.stringify({ ...r, machine })).join('\n') + '\n';
  writeFileSync(`${base}.jsonl`, jsonl);
  const md = renderMarkdown(results, { ...ctx, machine });
  writeFileSync(`${base}.md`, md.replace('## Seconds per method', `![time per profile and method](${base.split('/').pop()}.svg)\n\n## Seconds per method`));
  writeFileSync(`${base}.svg`, renderChart(results, { title: `${ctx.workload}: ${mib(ctx.bytes)} MiB ${ctx.payload}, seconds per profile and method (log scale)`, subtitle: `${machine.date.slice(0, 16).replace('T', ' ')} UTC, ${machine.nproc} cores ${machine.cpu}` }));
  const files = [`${base}.jsonl`, `${base}.md`, `${base}.svg`] as WrittenResults;
  files.markdownTable = md;
  return files;
}
