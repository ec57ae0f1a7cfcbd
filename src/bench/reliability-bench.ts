// Reliability benchmark (issue #14), in the lab: a gateway pair in network namespaces over the
// emulator, as users run it.
//   1. Concurrency: N echo connections at once (256 KiB each way), for each N: how many completed
//      byte-exact, how many failed and how, peak RSS of both gateways, and whether any connection
//      or stream was left open on either gateway afterwards.
//   2. Soak: batches of concurrent echo connections for a while: RSS over time, failures, leftovers.
//   3. Outages: a verified stream of --bytes; once it runs at full rate the emulator is replaced by
//      one that drops everything for X s, then carries the profile again. Per outage: completed
//      byte-exact?, rate before, time to the first byte after the link returned, time until the
//      rate is back above 80% of the rate before, and what the gateways logged.
// Writes bench/results/reliability-DATE.{json,md}. Needs root (the lab); bounded in time throughout.
import { InvalidArgumentError } from 'commander';
import { execSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CLI_MAIN, setUpMethod, stopProcess, type MethodPath } from '../lab/bench/methods.ts';
import { labDown, labExec, labRun, labUp, readLabState, setLinkProfile, DEFAULT_LAB, type LabId, type Site } from '../lab/netns.ts';
import { benchCommand, sizeArg } from './args.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WORKLOAD = join(REPO, 'src/lab/workloads/reliability.ts');
const TARGET_PORT = 5201;
const KiB = 1024;

interface Options {
  profile: string;
  outageProfile: string;
  connections: number[];
  bytesEach: number;
  soakSeconds: number;
  outages: number[];
  bytes: number;
  out: string;
  prefix: string;
}

// ---- processes in the sites --------------------------------------------------------------

function spawnWorkload(
  lab: LabId,
  site: Site,
  args: string[],
): {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  next(pred: (l: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
} {
  const child = labExec(site, [process.execPath, WORKLOAD, ...args], { lab, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      return;
    }
    for (const w of waiters.splice(0)) w();
  });
  const next = async (pred: (l: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = lines.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`workload ${args[0]}: no expected line within ${timeoutMs} ms`);
      if (child.exitCode !== null) throw new Error(`workload ${args[0]} exited (${child.exitCode})`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { child, lines, next };
}

function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

type MemoryView = Record<string, number>;

async function memoryView(lab: LabId, site: Site): Promise<MemoryView | null> {
  const r = await labRun(site, [process.execPath, CLI_MAIN, 'status', '--json'], { lab, timeoutMs: 10_000 });
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout) as { memory: MemoryView }).memory;
}

/**
 * Samples both gateways' RSS every 250 ms until stopped, and their own memory accounting
 * (/status: heap, buffers by owner) every 2 s; returns the peaks and the accounting taken
 * closest to each peak.
 */
function rssSampler(
  lab: LabId,
  path: MethodPath,
): { stop(): Promise<{ a: number; b: number; viewA: MemoryView | null; viewB: MemoryView | null }> } {
  const peak = { a: 0, b: 0, viewA: null as MemoryView | null, viewB: null as MemoryView | null };
  const timer = setInterval(() => {
    peak.a = Math.max(peak.a, rssBytes(path.processes?.gateway_a));
    peak.b = Math.max(peak.b, rssBytes(path.processes?.gateway_b));
  }, 250);
  let running = true;
  const views = (async () => {
    while (running) {
      const [a, b] = await Promise.all([memoryView(lab, 'a'), memoryView(lab, 'b')]);
      if (a && a.rssBytes! >= (peak.viewA?.rssBytes ?? 0)) peak.viewA = a;
      if (b && b.rssBytes! >= (peak.viewB?.rssBytes ?? 0)) peak.viewB = b;
      await sleep(2000);
    }
  })();
  return {
    stop: async () => {
      clearInterval(timer);
      running = false;
      await views;
      return peak;
    },
  };
}

interface OpenCounts {
  connections: number;
  inbound: number;
  streams: number;
}

async function openCounts(lab: LabId, site: Site): Promise<OpenCounts | null> {
  const r = await labRun(site, [process.execPath, CLI_MAIN, 'status', '--json'], { lab, timeoutMs: 10_000 });
  if (r.code !== 0) return null;
  const s = JSON.parse(r.stdout) as {
    connections: { active: number };
    inbound: { active: number };
    associations: Array<{ activeStreams: number }>;
  };
  return { connections: s.connections.active, inbound: s.inbound.active, streams: s.associations.reduce((n, a) => n + a.activeStreams, 0) };
}

/** Both gateways' open connections and streams, once they are all zero or after `waitMs`. */
async function leftovers(lab: LabId, waitMs = 15_000): Promise<{ a: OpenCounts | null; b: OpenCounts | null }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const a = await openCounts(lab, 'a');
    const b = await openCounts(lab, 'b');
    const zero = (c: OpenCounts | null) => c !== null && c.connections + c.inbound + c.streams === 0;
    if ((zero(a) && zero(b)) || Date.now() > deadline) return { a, b };
    await sleep(500);
  }
}

async function gateways(lab: LabId, workDir: string): Promise<MethodPath> {
  return setUpMethod('longhaul', { lab, sinkPort: TARGET_PORT, workDir }, ['--max-connections', '6000']);
}

// ---- scenarios ---------------------------------------------------------------------------

interface ConcurrencyResult {
  connections: number;
  bytesEach: number;
  ok: number;
  outcomes: Record<string, number>;
  seconds: number;
  peakRssA: number;
  peakRssB: number;
  memoryAtPeakA: MemoryView | null;
  memoryAtPeakB: MemoryView | null;
  leftA: OpenCounts | null;
  leftB: OpenCounts | null;
}

async function concurrency(lab: LabId, path: MethodPath, n: number, bytesEach: number): Promise<ConcurrencyResult> {
  const rss = rssSampler(lab, path);
  const clients = spawnWorkload(lab, 'a', [
    'echo-clients',
    '--port',
    String(path.port),
    '--connections',
    String(n),
    '--bytes',
    String(bytesEach),
    '--timeout-ms',
    '600000',
  ]);
  const r = await clients.next((l) => 'ok' in l, 660_000);
  const peaks = await rss.stop();
  const left = await leftovers(lab);
  return {
    connections: n,
    bytesEach,
    ok: Number(r.ok),
    outcomes: r.outcomes as Record<string, number>,
    seconds: Number(r.seconds),
    peakRssA: peaks.a,
    peakRssB: peaks.b,
    memoryAtPeakA: peaks.viewA,
    memoryAtPeakB: peaks.viewB,
    leftA: left.a,
    leftB: left.b,
  };
}

interface SoakResult {
  seconds: number;
  batches: number;
  connections: number;
  ok: number;
  failed: Record<string, number>;
  rss: Array<{ atSec: number; a: number; b: number }>;
  leftA: OpenCounts | null;
  leftB: OpenCounts | null;
}

async function soak(lab: LabId, path: MethodPath, seconds: number): Promise<SoakResult> {
  const BATCH = 200;
  const t0 = Date.now();
  const rss: SoakResult['rss'] = [];
  let nextSample = 0;
  let batches = 0;
  let ok = 0;
  const failed: Record<string, number> = {};
  // Batches until the time is up (each batch bounded by its own timeout).
  while (Date.now() - t0 < seconds * 1000) {
    const at = (Date.now() - t0) / 1000;
    if (at >= nextSample) {
      rss.push({ atSec: Math.round(at), a: rssBytes(path.processes?.gateway_a), b: rssBytes(path.processes?.gateway_b) });
      nextSample += Math.max(5, seconds / 12);
    }
    const c = spawnWorkload(lab, 'a', [
      'echo-clients',
      '--port',
      String(path.port),
      '--connections',
      String(BATCH),
      '--bytes',
      String(64 * KiB),
      '--timeout-ms',
      '60000',
    ]);
    const r = await c.next((l) => 'ok' in l, 90_000);
    batches++;
    ok += Number(r.ok);
    for (const [k, v] of Object.entries(r.outcomes as Record<string, number>)) if (k !== 'ok') failed[k] = (failed[k] ?? 0) + v;
  }
  const left = await leftovers(lab);
  rss.push({ atSec: Math.round((Date.now() - t0) / 1000), a: rssBytes(path.processes?.gateway_a), b: rssBytes(path.processes?.gateway_b) });
  return { seconds, batches, connections: batches * BATCH, ok, failed, rss, leftA: left.a, leftB: left.b };
}

interface OutageResult {
  outageSec: number;
  profile: string;
  bytes: number;
  completed: boolean;
  exact: boolean;
  end: string;
  rateBeforeBps: number;
  firstByteAfterMs: number | null;
  back80Ms: number | null;
  totalSec: number;
  logA: string[];
  logB: string[];
}

function bytesAt(progress: Array<{ t: number; bytes: number }>, t: number): number {
  let b = 0;
  for (const p of progress) {
    if (p.t > t) break;
    b = p.bytes;
  }
  return b;
}

async function outage(lab: LabId, workDir: string, profile: string, outageSec: number, bytes: number): Promise<OutageResult> {
  await setLinkProfile({ profile }, { lab });
  const path = await gateways(lab, workDir);
  try {
    const sink = spawnWorkload(lab, 'b', ['stream-sink', '--port', String(TARGET_PORT)]);
    await sink.next((l) => 'listening' in l, 10_000);
    const t0 = Date.now();
    const sender = spawnWorkload(lab, 'a', ['stream-send', '--port', String(path.port), '--bytes', String(bytes)]);
    // Down once a fifth of the bytes arrived (several seconds at full rate on every profile).
    await sink.next((l) => Number(l.bytes) >= bytes / 5, 120_000);
    const downAt = Date.now();
    await setLinkProfile({ profile, outage: `0ms-${outageSec * 1000}ms` }, { lab });
    // The new emulator drops from its start: the link returns outageSec after it is up.
    const upAt = Date.now() + outageSec * 1000;
    const done = await sink.next((l) => 'done' in l, outageSec * 1000 + 300_000);
    await stopProcess(sender.child);
    const progress = sink.lines.filter((l) => 't' in l && !('done' in l)).map((l) => ({ t: Number(l.t), bytes: Number(l.bytes) }));
    const rateBeforeBps = ((bytesAt(progress, downAt - 500) - bytesAt(progress, downAt - 2500)) * 8) / 2;
    const atUp = bytesAt(progress, upAt);
    const first = progress.find((p) => p.t > upAt && p.bytes > atUp);
    // Back: the first moment after the link returned when the last 500 ms ran at >= 80% of before.
    let back80: number | null = null;
    for (const p of progress) {
      if (p.t < upAt + 500) continue;
      if (((p.bytes - bytesAt(progress, p.t - 500)) * 8) / 0.5 >= 0.8 * rateBeforeBps) {
        back80 = p.t - upAt;
        break;
      }
    }
    // A transfer that ends within 500 ms of the link's return cannot show a rate: count its end.
    if (back80 === null && done.done === 'end' && Number(done.bytes) === bytes) back80 = Number(done.t) - upAt;
    const grep = (file: string) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => /peer unreachable|peer reachable again|association closed|restarted/.test(l))
        .map((l) => {
          try {
            return String((JSON.parse(l) as { msg: string }).msg);
          } catch {
            return l;
          }
        });
    return {
      outageSec,
      profile,
      bytes,
      completed: done.done === 'end' && Number(done.bytes) === bytes,
      exact: done.exact === true,
      end: String(done.done),
      rateBeforeBps,
      firstByteAfterMs: first ? first.t - upAt : null,
      back80Ms: back80,
      totalSec: (Number(done.t) - t0) / 1000,
      logA: grep(join(workDir, 'gateway-a.log')),
      logB: grep(join(workDir, 'gateway-b.log')),
    };
  } finally {
    await path.tearDown();
  }
}

// ---- report ------------------------------------------------------------------------------

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
const counts = (c: OpenCounts | null) => (c === null ? 'status failed' : `${c.connections}/${c.inbound}/${c.streams}`);

function markdown(
  o: Options,
  machine: Record<string, unknown>,
  conc: ConcurrencyResult[],
  soakR: SoakResult | null,
  outs: OutageResult[],
): string {
  const L: string[] = [];
  L.push(`# Reliability benchmark, ${new Date().toISOString().slice(0, 10)}`, '');
  L.push(`Machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memGiB} GiB, Node ${machine.node}, load ${machine.load} at start.`);
  L.push(
    `Lab: gateways in network namespaces, the lab emulator as the link; default gateway settings (memory budget 256 MiB, outage budget 180 s) except --max-connections 6000.`,
  );
  L.push(`Command: \`npm run bench:reliability -- ${process.argv.slice(2).join(' ')}\``, '');
  if (conc.length > 0) {
    L.push(`## Concurrent echo connections (${o.profile}, ${o.bytesEach / KiB} KiB each way)`, '');
    L.push(
      'Each client sends its bytes, half-closes, and reads the echo to EOF; "ok" is byte-exact. Left open: connections/inbound/streams on each gateway once all closed (15 s allowed for the last acks).',
      '',
    );
    L.push('| concurrent | ok | failed (how) | seconds | peak RSS A | peak RSS B | left open A | left open B |');
    L.push('|---:|---:|---|---:|---:|---:|---|---|');
    for (const c of conc) {
      const failed =
        Object.entries(c.outcomes)
          .filter(([k]) => k !== 'ok')
          .map(([k, v]) => `${v} ${k}`)
          .join(', ') || '0';
      L.push(
        `| ${c.connections} | ${c.ok} | ${failed} | ${c.seconds.toFixed(1)} | ${mib(c.peakRssA)} | ${mib(c.peakRssB)} | ${counts(c.leftA)} | ${counts(c.leftB)} |`,
      );
    }
    L.push('');
  }
  if (soakR) {
    L.push(`## Soak (${o.profile}, ${soakR.seconds} s of batches of 200 concurrent 64 KiB echoes)`, '');
    const failed =
      Object.entries(soakR.failed)
        .map(([k, v]) => `${v} ${k}`)
        .join(', ') || 'none';
    L.push(
      `${soakR.connections} connections in ${soakR.batches} batches: ${soakR.ok} ok, failed: ${failed}. Left open afterwards: A ${counts(soakR.leftA)}, B ${counts(soakR.leftB)}.`,
      '',
    );
    L.push('| at | RSS A | RSS B |', '|---:|---:|---:|');
    for (const r of soakR.rss) L.push(`| ${r.atSec} s | ${mib(r.a)} | ${mib(r.b)} |`);
    L.push('');
  }
  if (outs.length > 0) {
    L.push(`## WAN outages mid-transfer (${mib(o.bytes)} verified stream)`, '');
    L.push(
      'The link drops everything for the outage once a fifth of the bytes arrived. Rate before: the 2 s before the outage. First byte: after the link returned. Back to 80%: until a 500 ms window ran at 80% of the rate before (or the transfer ended).',
      '',
    );
    L.push('| profile | outage | completed byte-exact | rate before | first byte after | back to 80% | total | gateway A said |');
    L.push('|---|---:|---|---:|---:|---:|---:|---|');
    for (const r of outs) {
      L.push(
        `| ${r.profile} | ${r.outageSec} s | ${r.completed && r.exact ? 'yes' : `NO (${r.end}, exact ${r.exact})`} | ${(r.rateBeforeBps / 1e6).toFixed(0)} Mbit/s | ` +
          `${r.firstByteAfterMs === null ? 'never' : `${r.firstByteAfterMs} ms`} | ${r.back80Ms === null ? 'never' : `${r.back80Ms} ms`} | ${r.totalSec.toFixed(1)} s | ${r.logA.join('; ')} |`,
      );
    }
    L.push('');
  }
  return L.join('\n');
}

// ---- main --------------------------------------------------------------------------------

function list(v: string): number[] {
  const out = v.split(',').map((x) => Number(x.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 0))
    throw new InvalidArgumentError('expected comma-separated whole numbers, e.g. 100,1000');
  return out.filter((n) => n > 0);
}

async function main(): Promise<void> {
  const program = benchCommand('bench:reliability', 'concurrency, soak and WAN-outage reliability of a gateway pair in the lab (root)')
    .option('--profile <name>', 'link profile for the concurrency and soak runs', 'metro')
    .option('--outage-profile <name>', 'link profile for the outage runs', 'mpls')
    .option('--connections <list>', 'concurrent echo connections per run (0 or empty: skip)', list, [100, 1000, 5000])
    .option('--bytes-each <size>', 'bytes each echo connection sends (and gets back)', sizeArg, 256 * KiB)
    .option('--soak-seconds <n>', 'soak duration (0: skip)', (v) => list(v)[0] ?? 0, 120)
    .option('--outages <list>', 'outage lengths in seconds (0 or empty: skip)', list, [10, 30, 90])
    .option('--bytes <size>', 'bytes of the stream carried through each outage', sizeArg, 256 * 1024 * 1024)
    .option('--out <path>', 'output path without extension', `bench/results/reliability-${new Date().toISOString().slice(0, 10)}`)
    .option('--prefix <p>', 'lab namespace prefix', DEFAULT_LAB.prefix);
  program.parse();
  const o = program.opts<Options>();
  const lab: LabId = o.prefix === DEFAULT_LAB.prefix ? DEFAULT_LAB : { prefix: o.prefix, stateDir: `${DEFAULT_LAB.stateDir}-${o.prefix}` };
  const machine = {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    load: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    kernel: execSync('uname -r').toString().trim(),
    date: new Date().toISOString(),
  };
  if (readLabState(lab)?.emulator)
    throw new Error(`lab "${lab.prefix}" is already up: run \`longhaul lab down\` first (this benchmark brings its own up and down)`);
  const workDir = mkdtempSync(join(os.tmpdir(), 'lh-reliability-'));
  const conc: ConcurrencyResult[] = [];
  let soakR: SoakResult | null = null;
  const outs: OutageResult[] = [];
  await labUp({ lab, profile: { profile: o.profile }, congestionControl: 'cubic' });
  try {
    if (o.connections.length > 0 || o.soakSeconds > 0) {
      const path = await gateways(lab, workDir);
      const echo = spawnWorkload(lab, 'b', ['echo-server', '--port', String(TARGET_PORT)]);
      try {
        await echo.next((l) => 'listening' in l, 10_000);
        for (const n of o.connections) {
          const r = await concurrency(lab, path, n, o.bytesEach);
          conc.push(r);
          process.stderr.write(`concurrency ${n}: ${JSON.stringify(r)}\n`);
        }
        if (o.soakSeconds > 0) {
          soakR = await soak(lab, path, o.soakSeconds);
          process.stderr.write(`soak: ${JSON.stringify(soakR)}\n`);
        }
      } finally {
        await stopProcess(echo.child);
        await path.tearDown();
      }
    }
    for (const s of o.outages) {
      const r = await outage(lab, workDir, o.outageProfile, s, o.bytes);
      outs.push(r);
      process.stderr.write(`outage ${s} s: ${JSON.stringify(r)}\n`);
    }
  } finally {
    await labDown({ lab });
  }
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(`${o.out}.json`, `${JSON.stringify({ machine, options: o, concurrency: conc, soak: soakR, outages: outs }, null, 2)}\n`);
  writeFileSync(`${o.out}.md`, `${markdown(o, machine, conc, soakR, outs)}\n`);
  process.stdout.write(`wrote ${o.out}.md and .json\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:reliability: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
