// The benchmark's pure parts: caps, speed-ups, the Markdown table and the SVG chart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findProfile } from '../../src/link/profiles.ts';
import { buildMatrix, capSeconds, idealSeconds, METHODS, MIN_CAP_SECONDS, type Method } from '../../src/lab/bench/matrix.ts';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  codecNote,
  formatSeconds,
  limitCell,
  limitText,
  medianRun,
  mplsFloorSentence,
  renderMarkdown,
  speedUp,
} from '../../src/lab/bench/report.ts';
import { renderChart } from '../../src/lab/bench/chart.ts';
import type { BenchResult } from '../../src/lab/bench/runner.ts';

function result(profile: string, method: Method, seconds: number, extra: Partial<BenchResult> = {}): BenchResult {
  return {
    profile,
    method,
    workload: 'migration',
    payload: 'vm',
    bytes: 128 * 2 ** 20,
    planned_bytes: 128 * 2 ** 20,
    seconds,
    goodput_mbps: (128 * 8 * 1.048576) / seconds,
    wire_bytes: 100 * 2 ** 20,
    wire_bytes_reverse: 2 ** 20,
    wire_lost: 3,
    wire_queue_drops: 0,
    capped: false,
    cap_seconds: 120,
    verified: true,
    rounds: 2,
    downtime_ms: 120,
    notes: '',
    date: '2026-01-01T00:00:00Z',
    ...extra,
  };
}

test('the default matrix is the five report profiles times the five methods', () => {
  const cells = buildMatrix({ workload: 'migration', payload: 'vm', bytes: 2 ** 27 });
  assert.equal(cells.length, 25);
  assert.deepEqual([...new Set(cells.map((c) => c.method))], [...METHODS]);
  assert.deepEqual([...new Set(cells.map((c) => c.profile.name))], ['baseline', 'sonet', 'llmetro', 'metro', 'mpls']);
});

test('caps grow with the ideal time, within [MIN_CAP_SECONDS, max]', () => {
  const mpls = findProfile('mpls')!;
  const baseline = findProfile('baseline')!;
  const cell = (profile = mpls, bytes = 2 ** 30) => ({
    profile,
    method: 'tcp-cubic' as const,
    workload: 'migration' as const,
    payload: 'vm' as const,
    bytes,
  });
  // 1 GiB over 100 Mbit/s is ~86 s before re-sent pages.
  assert.ok(idealSeconds(cell()) > 86 && idealSeconds(cell()) < 100, `ideal ${idealSeconds(cell())}`);
  assert.equal(capSeconds(cell(), 600), 600);
  assert.equal(capSeconds(cell(baseline, 2 ** 20), 600), MIN_CAP_SECONDS);
  const mid = capSeconds(cell(mpls, 2 ** 26), 600);
  assert.ok(mid > MIN_CAP_SECONDS && mid < 600, `cap ${mid}`);
});

test('speed-ups: plain, lower bound when the slow run was capped, none for failures', () => {
  assert.equal(speedUp(result('mpls', 'tcp-cubic', 100), result('mpls', 'longhaul', 10)), '10.0x');
  assert.equal(speedUp(result('mpls', 'tcp-cubic', 120, { capped: true, verified: false }), result('mpls', 'longhaul', 10)), '>=12.0x');
  assert.equal(speedUp(result('mpls', 'tcp-cubic', 100), result('mpls', 'longhaul', 0, { verified: false, error: 'boom' })), '');
  assert.equal(formatSeconds(result('mpls', 'tcp-cubic', 120, { capped: true, verified: false })), '>120 (capped)');
  assert.equal(formatSeconds(result('mpls', 'kcptun', 0, { skipped: 'not installed' })), 'skipped');
});

test('the Markdown table has a row per profile, every run, and the machine', () => {
  const results = [
    result('baseline', 'tcp-cubic', 2),
    result('baseline', 'longhaul', 2.5),
    result('mpls', 'tcp-cubic', 120, { capped: true, verified: false }),
    result('mpls', 'longhaul', 12),
    result('mpls', 'kcptun', 0, { skipped: 'kcptun is not installed' }),
  ];
  const md = renderMarkdown(results, {
    workload: 'migration',
    payload: 'vm',
    bytes: 2 ** 27,
    migration: { dirtyPagesPerSec: 256, downtimeBudgetMs: 300, maxRounds: 30 },
    machine: { date: '2026-01-01T00:00:00Z', nproc: 2, cpu: 'Test CPU', kernel: '6.0', node: 'v24' },
  });
  assert.match(md, /2 cores \(Test CPU\)/);
  assert.match(md, /\| mpls \| >120 \(capped\) \| skipped \| 12\.0 \| >=10\.0x \|/);
  assert.ok(md.includes('| baseline | 2.00 |  | 2.50 | 0.80x |'), 'a run missing from a row leaves its cell empty');
  assert.match(md, /mpls 4\.80x/, 'longhaul relative to its baseline time');
  assert.equal((md.match(/^\| (baseline|mpls) \| (tcp-cubic|longhaul|kcptun) \|/gm) ?? []).length, 5, 'one detail row per run');
  assert.match(md, /395\.2 s \/ 22\.9 s/, "the report's figures next to ours");
});

test('the chart draws one bar per usable run, hatches capped ones, and is valid-looking SVG', () => {
  const results = [
    result('baseline', 'tcp-cubic', 2),
    result('baseline', 'longhaul', 2.5),
    result('mpls', 'tcp-cubic', 120, { capped: true, verified: false }),
    result('mpls', 'longhaul', 12),
    result('mpls', 'kcptun', 0, { verified: false, error: 'failed' }),
  ];
  const svg = renderChart(results, { title: 'a <test> & more' });
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, 4);
  assert.equal((svg.match(/fill="url\(#capped\)"/g) ?? []).length, 1);
  assert.match(svg, />fail</);
  assert.match(svg, /a &lt;test&gt; &amp; more/);
  // Log scale: 120 s is drawn higher than 12 s, which is higher than 2 s.
  const yOf = (label: string) => Number(new RegExp(`y="([\\d.]+)"[^>]*>${label.replace('.', '\\.')}<`).exec(svg)?.[1]);
  assert.ok(yOf('>120') < yOf('12.0') && yOf('12.0') < yOf('2.00'));
});

const MACHINE = { date: '2026-01-01T00:00:00Z', nproc: 2, cpu: 'Test CPU', kernel: '6.0', node: 'v24' };
const CTX = {
  workload: 'migration',
  payload: 'vm',
  bytes: 2 ** 30,
  migration: { dirtyPagesPerSec: 256, downtimeBudgetMs: 300, maxRounds: 30 },
  machine: MACHINE,
};
const CEILINGS = { file: 'emulator-test.json', byEngine: { native: { pps: 187000, mbps: 2170 } } };

// A run recorded with the CPU and link-floor figures (2026-11-26 on).
function measured(
  profile: string,
  method: Method,
  seconds: number,
  floor: number | null,
  busy: number,
  extra: Partial<BenchResult> = {},
): BenchResult {
  return result(profile, method, seconds, {
    link_rate_bps: profile === 'mpls' ? 100e6 : 1e9,
    link_floor_seconds: floor,
    machine_busy: busy,
    machine_cpu_seconds: busy * 2 * seconds,
    wire_packets: 280_000,
    wire_packets_reverse: 20_000,
    emulator: 'native',
    cpu_seconds: { gateway_a: 4.2, gateway_b: 3.1, emulator: 2.3, sink: 1.5, client: 1.75 },
    ...extra,
  });
}

test("limit cells: the class with its figures, Longhaul's run first, else the fastest run named", () => {
  // Own processes: 4.2 + 3.1 + 2.3 + 1.5 + 1.75 = 12.85 CPU s; machine 0.35 x 2 cores x 36 s = 25.2.
  assert.equal(
    limitText(measured('mpls', 'longhaul', 36, 34.5, 0.35)),
    "link (floor 34.5 s = 96% of the time; machine 35% busy; run's processes 13 of 25 busy CPU s; gateway A 12% of a core)",
  );
  assert.equal(
    limitText(measured('mpls', 'longhaul', 45, 34.5, 0.35, { machine_cpu_seconds: 40 })),
    "protocol (floor 34.5 s = 77% of the time; machine 35% busy; run's processes 13 of 40 busy CPU s; gateway A 9% of a core)",
  );
  // CPU-limited: the emulator's packet rate next to its measured ceiling. 300k packets in 10 s.
  assert.equal(
    limitText(measured('baseline', 'longhaul', 10, 3.4, 0.97, { machine_cpu_seconds: 19.4 }), CEILINGS),
    "cpu (floor 3.40 s = 34% of the time; machine 97% busy; run's processes 13 of 19 busy CPU s; gateway A 42% of a core; emulator 30k packets/s of its 187k ceiling)",
  );
  const runs = [measured('baseline', 'tcp-cubic', 9, 8.8, 0.6), measured('baseline', 'tcp-bbr', 9.5, 9.3, 0.6)];
  assert.match(limitCell('baseline', runs), /^tcp-cubic: link \(/);
  assert.match(limitCell('baseline', [...runs, measured('baseline', 'longhaul', 11, 3.4, 0.95)]), /^cpu \(/);
  assert.equal(limitCell('metro', runs), '');
  // A failed run has no limit.
  assert.equal(limitText(measured('mpls', 'longhaul', 0, null, 0.2, { verified: false, error: 'boom' })), '');
  // One gateway thread at 95% of a core limits the run although the machine had a core to spare.
  const sender = measured('sonet', 'longhaul', 10, 3.4, 0.7, {
    cpu_seconds: { gateway_a: 9.5, gateway_b: 5, emulator: 2, sink: 1, client: 1 },
  });
  assert.match(limitText(sender), /^cpu \(.*gateway A 95% of a core/);
  assert.match(limitText({ ...sender, cpu_seconds: { gateway_a: 5, gateway_b: 9.2 } }), /^cpu \(/);
  assert.match(limitText({ ...sender, cpu_seconds: { gateway_a: 8.5, gateway_b: 5 } }), /^protocol \(/);
});

test("Longhaul's notes name what its codec did (setting on most bytes, codec output / input)", () => {
  const codec = (encode: Record<string, unknown>) => measured('mpls', 'longhaul', 36, 34.5, 0.4, { gateway_a: { codec: { encode } } });
  const bySetting = {
    'zstd:7': { blocks: 900, bytesIn: 900e6, bytesOut: 290e6 },
    'zstd:3': { blocks: 100, bytesIn: 100e6, bytesOut: 33e6 },
    none: { blocks: 200, bytesIn: 300e6, bytesOut: 300e6 },
  };
  assert.equal(codecNote(codec({ ratio: 0.3443, setting: 'zstd:7', bySetting })), 'codec zstd:7 on 90% of compressed bytes, out/in 0.344');
  // Lines from before the per-setting counters: the final setting.
  assert.equal(codecNote(codec({ ratio: 0.3516, setting: 'zstd:7' })), 'codec final zstd:7, out/in 0.352');
  assert.equal(codecNote(measured('mpls', 'tcp-bbr', 100, 99, 0.2)), '');
  const md = renderMarkdown([codec({ ratio: 0.3443, setting: 'zstd:7', bySetting })], { ...CTX, ceilings: null });
  assert.match(md, /\| mpls \| longhaul \| 36\.0 \|.*\| link \| codec zstd:7 on 90% of compressed bytes, out\/in 0\.344 \|/);
});

test('old result lines (no CPU, no floor) render as unknown, never as a guess', () => {
  const old = result('mpls', 'longhaul', 37.1);
  assert.equal(limitText(old), 'unknown (floor unknown; CPU unknown)');
  assert.match(mplsFloorSentence([old]) ?? '', /link floor is unknown/);
  const md = renderMarkdown([result('baseline', 'longhaul', 11.5), old], { ...CTX, ceilings: null });
  assert.match(md, /\| mpls \| longhaul \| 37\.1 \|.*\| yes \| unknown \| unknown \| unknown \| unknown \|/);
  assert.ok(!/\| (link|cpu|protocol) \|/.test(md), 'no class is made up for old lines');
});

test('new result lines: floor, busy share, CPU per process and the mpls sentence', () => {
  const results = [
    measured('baseline', 'tcp-cubic', 9.4, 9.1, 0.7, { cpu_seconds: { emulator: 4, sink: 3, client: 5 } }),
    measured('baseline', 'longhaul', 11.5, 3.5, 0.96),
    measured('mpls', 'longhaul', 36.0, 34.5, 0.4),
  ];
  const md = renderMarkdown(results, { ...CTX, ceilings: CEILINGS });
  assert.match(
    md,
    /\| baseline \| longhaul \| 11\.5 \|.*\| 3\.50 \| 96% \| gw A 4\.2, gw B 3\.1, emu 2\.3, client 1\.8, sink 1\.5 \| cpu \|/,
  );
  assert.match(md, /\| baseline \| tcp-cubic \| 9\.40 \|.*\| 9\.10 \| 70% \| emu 4\.0, client 5\.0, sink 3\.0 \| link \|/);
  assert.match(
    md,
    /\| mpls \|.*\| link \(floor 34\.5 s = 96% of the time; machine 40% busy; run's processes 13 of 29 busy CPU s; gateway A 12% of a core\) \|/,
  );
  assert.match(
    md,
    /\| baseline \|.*\| cpu \(floor 3\.50 s = 30% of the time; machine 96% busy; run's processes 13 of 22 busy CPU s; gateway A 37% of a core; emulator 26k packets\/s of its 187k ceiling\) \|/,
  );
  assert.match(
    md,
    /Longhaul on mpls: 36\.0 s against a link floor of 34\.5 s .*at 100 Mbit\/s\): the link was busy 96% of the time\. The floor alone is 3\.00x Longhaul's baseline time \(11\.5 s\), so the 1\.5x-of-baseline target cannot hold/,
  );
});

test('the committed 1 GiB migration results (old lines) still render', () => {
  const file = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results/lab-2026-11-25-migration-1gib.jsonl');
  const results = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as BenchResult);
  const md = renderMarkdown(results, { ...CTX, ceilings: null });
  assert.match(md, /\| mpls \| 574\.1 \|/);
  assert.match(md, /Longhaul on mpls: 37\.1 s; its link floor is unknown/);
  assert.equal(
    (md.match(/^\| (baseline|sonet|llmetro|metro|mpls) \| (tcp-cubic|tcp-bbr|tcp-64k|kcptun|longhaul) \|/gm) ?? []).length,
    results.length,
  );
});

test('the progress bar draws on a terminal and stays silent otherwise', async () => {
  const { ProgressBar } = await import('../../src/lab/bench/progress.ts');
  const cell = {
    profile: findProfile('mpls')!,
    method: 'longhaul' as const,
    workload: 'bulk' as const,
    payload: 'vm' as const,
    bytes: 100 * 2 ** 20,
  };
  const fake = (isTTY: boolean) => {
    const writes: string[] = [];
    return {
      writes,
      stream: {
        isTTY,
        columns: 200,
        write: (s: string) => {
          writes.push(s);
          return true;
        },
      } as unknown as NodeJS.WriteStream,
    };
  };
  const tty = fake(true);
  const bar = new ProgressBar(tty.stream);
  bar.update('[1/1] mpls longhaul', cell, 50 * 2 ** 20, 5, 60);
  assert.match(tty.writes.join(''), /\[1\/1\] mpls longhaul \[#{14}-{14}\] {2}50% 50 MiB 84 Mbit\/s 5\.0\/60s/);
  bar.done('done line');
  assert.equal(tty.writes.at(-1), 'done line\n');
  const pipe = fake(false);
  const quiet = new ProgressBar(pipe.stream);
  quiet.update('x', cell, 1, 1, 1);
  quiet.done('y');
  assert.deepEqual(pipe.writes, []);
});

test("repeated runs: the tables show the median run, and a medians table gives the spread and the gateways' CPU per GiB", () => {
  const gib = 2 ** 30;
  const runs = [3, 5, 4].map((seconds) =>
    result('baseline', 'longhaul', seconds, {
      workload: 'bulk',
      bytes: gib,
      goodput_mbps: 8192 / seconds,
      link_floor_seconds: 2,
      cpu_seconds: { gateway_a: seconds, gateway_b: seconds / 2, emulator: 1 },
    }),
  );
  assert.equal(medianRun(runs)!.seconds, 4);
  assert.equal(medianRun([runs[0]!, runs[1]!])!.seconds, 3, 'the lower of two');
  assert.equal(medianRun([]), undefined);
  const md = renderMarkdown([...runs, result('baseline', 'tcp-bbr', 2, { workload: 'bulk' })], {
    workload: 'bulk',
    payload: 'vm',
    bytes: gib,
    migration: { dirtyPagesPerSec: 0, downtimeBudgetMs: 0, maxRounds: 1 },
    ceilings: null,
    machine: { date: '2026-12-05T00:00:00Z', nproc: 2, cpu: 'test', kernel: 'k', node: 'v24' },
  });
  assert.match(md, /\| baseline \| 2\.00 \| 4\.00 \|/, 'the summary shows the median run (4 s) beside BBR');
  assert.match(md, /## Medians of repeated runs/);
  // Median goodput of 8192/3, 8192/5, 8192/4 = 2048; gateway A 4 s per GiB, B 2; link busy 2/4.
  assert.match(md, /\| baseline \| longhaul \| 3 \| 2048\.0 \| 1638\.4-2730\.7 \| 4\.00 \| 2\.00 \| 1\.00 \| 50% \|/);
  assert.doesNotMatch(md, /\| baseline \| tcp-bbr \| 1 \|/, 'single runs have no medians row');
});

test('runs after a larger tunnel warm-up say so: they measure gateways that carried traffic before', () => {
  const warm = renderMarkdown([result('baseline', 'longhaul', 11.5, { tunnel_warm_up_bytes: 256 * 2 ** 20 })], { ...CTX, ceilings: null });
  assert.match(warm, /Tunnels carried 256 MiB before each run's clock started/);
  const first = renderMarkdown([result('baseline', 'longhaul', 11.5, { tunnel_warm_up_bytes: 64 * 1024 })], { ...CTX, ceilings: null });
  assert.doesNotMatch(first, /Tunnels carried/);
});
