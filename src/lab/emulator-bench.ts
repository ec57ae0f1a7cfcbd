// `npm run bench:emulator` (root; run under `flock /tmp/longhaul-bench.lock`): the emulator's
// own ceiling. For each engine (native, ts) the emulator runs as a pure relay (no rate, no
// delay) in a lab of its own, a C load tool offers 1450-byte datagrams at rising rates from
// site A and counts arrivals in site B; the ceiling is the highest delivered rate with <= 1%
// loss. Also reports the emulator's CPU time per packet (the machine is shared, so this is the
// steadier number) and plain TCP CUBIC goodput through the VXLAN overlay on the baseline
// profile (1 Gbit/s), which is what the benchmark's unaccelerated runs see.
// Results: bench/results/emulator-<date>.json and .md.

import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { labDown, labExec, labRun, labUp, readLabState, requestEmulatorStats, setLinkProfile, VXLAN, type LabId } from './netns.ts';
import { LAB_ADDRESSES } from './emulator-config.ts';
import type { EmulatorEngine } from './emulator-stats.ts';
import { benchCommand } from '../bench/args.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LOAD_TOOL = join(ROOT, 'native', 'build', 'lh-udpload');
const LAB: LabId = { prefix: 'lhbench', stateDir: '/run/longhaul-lab-bench' };
const DATAGRAM = 1450;
const STEP_SECONDS = 3;
const OFFERED_PPS = [25_000, 50_000, 80_000, 120_000, 160_000, 220_000, 300_000];
const MAX_LOSS = 0.01;
const TCP_SECONDS = 5;
const PORT = 4500;

interface Step {
  offeredPps: number;
  sentPps: number;
  deliveredPps: number;
  deliveredMbps: number;
  loss: number;
  emulatorCpuUsPerPacket: number;
}

interface EngineResult {
  engine: EmulatorEngine;
  steps: Step[];
  ceilingPps: number;
  ceilingMbps: number;
  /** Emulator CPU per relayed packet at the ceiling step -> packets/s one core could relay. */
  cpuUsPerPacket: number;
  ppsPerCore: number;
  tcpCubicBaselineMbps: number | null;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
}

/** The process doing the relaying: the node emulator, or its native child. */
function datapathPids(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* none */
  }
  return [pid, ...children];
}

async function runStep(pps: number, pids: number[]): Promise<Step> {
  const sink = labExec('b', [LOAD_TOOL, 'recv', LAB_ADDRESSES.bPeer, String(PORT), String(STEP_SECONDS + 3), '500'], {
    lab: LAB,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let sinkOut = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => {
    sinkOut += d;
  });
  const sinkDone = new Promise<void>((r) => sink.once('close', () => r()));
  while (!sinkOut.includes('listening')) await sleep(10);
  const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const sent = await labRun(
    'a',
    [LOAD_TOOL, 'send', LAB_ADDRESSES.aPeer, LAB_ADDRESSES.aNear, String(PORT), String(DATAGRAM), String(pps), String(STEP_SECONDS)],
    { lab: LAB, timeoutMs: (STEP_SECONDS + 10) * 1000 },
  );
  await sinkDone;
  const cpu1 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const s = JSON.parse(sent.stdout.trim().split('\n').pop()!) as { sent: number; seconds: number };
  const r = JSON.parse(sinkOut.trim().split('\n').pop()!) as { received: number };
  const deliveredPps = r.received / s.seconds;
  return {
    offeredPps: pps,
    sentPps: Math.round(s.sent / s.seconds),
    deliveredPps: Math.round(deliveredPps),
    deliveredMbps: Math.round((deliveredPps * DATAGRAM * 8) / 1e6),
    loss: s.sent > 0 ? Math.max(0, 1 - r.received / s.sent) : 0,
    emulatorCpuUsPerPacket: r.received > 0 ? ((cpu1 - cpu0) * 1e6) / r.received : 0,
  };
}

async function tcpBaseline(): Promise<number | null> {
  if (spawnSync('sh', ['-c', 'command -v iperf3'], { stdio: 'ignore' }).status !== 0) return null;
  await setLinkProfile('baseline', { lab: LAB });
  const server = labExec('b', ['iperf3', '-s', '-1', '-B', VXLAN.b], { lab: LAB, stdio: 'ignore' });
  await sleep(300);
  const c = await labRun('a', ['iperf3', '-c', VXLAN.b, '-t', String(TCP_SECONDS), '-C', 'cubic', '-J'], {
    lab: LAB,
    timeoutMs: (TCP_SECONDS + 15) * 1000,
  });
  server.kill();
  try {
    const j = JSON.parse(c.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return Math.round(j.end.sum_received.bits_per_second / 1e6);
  } catch {
    return null;
  }
}

async function benchEngine(engine: EmulatorEngine): Promise<EngineResult> {
  await labUp({ lab: LAB, profile: { rate: 'unlimited', rtt: '0ms' }, engine, ports: [PORT, VXLAN.port] });
  try {
    const pid = readLabState(LAB)!.emulator!.pid;
    const pids = datapathPids(pid);
    const steps: Step[] = [];
    for (const pps of OFFERED_PPS) {
      const step = await runStep(pps, pids);
      steps.push(step);
      process.stderr.write(
        `${engine}: offered ${pps} pps -> sent ${step.sentPps}, delivered ${step.deliveredPps} pps (${step.deliveredMbps} Mbit/s), loss ${(step.loss * 100).toFixed(2)}%, ${step.emulatorCpuUsPerPacket.toFixed(2)} us/packet\n`,
      );
      if (step.loss > 0.2) break; // far past the ceiling
    }
    await requestEmulatorStats(LAB);
    const good = steps.filter((s) => s.loss <= MAX_LOSS);
    const best = good.reduce<Step | undefined>((b, s) => (b === undefined || s.deliveredPps > b.deliveredPps ? s : b), undefined);
    const tcp = await tcpBaseline();
    process.stderr.write(`${engine}: TCP CUBIC through the overlay, baseline profile: ${tcp ?? 'n/a'} Mbit/s\n`);
    const us = best?.emulatorCpuUsPerPacket ?? 0;
    return {
      engine,
      steps,
      ceilingPps: best?.deliveredPps ?? 0,
      ceilingMbps: best?.deliveredMbps ?? 0,
      cpuUsPerPacket: Math.round(us * 100) / 100,
      ppsPerCore: us > 0 ? Math.round(1e6 / us) : 0,
      tcpCubicBaselineMbps: tcp,
    };
  } finally {
    await labDown({ lab: LAB });
  }
}

function machine(): Record<string, string | number> {
  return {
    nproc: Number(execFileSync('nproc', { encoding: 'utf8' }).trim()),
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
    node: process.version,
    loadavg1mAtStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

function markdown(date: string, m: Record<string, string | number>, results: EngineResult[]): string {
  const lines = [
    `# Emulator ceiling (${date})`,
    '',
    `Machine: ${m.nproc} cores, ${m.cpu}, kernel ${m.kernel}, Node ${m.node}, load average ${m.loadavg1mAtStart} at start.`,
    `Emulator as a pure relay (no rate limit, no delay), ${DATAGRAM}-byte UDP datagrams offered by a C load tool in site A,`,
    `counted in site B; generator, emulator and sink share the machine's cores. Ceiling = highest delivered rate with <= ${MAX_LOSS * 100}% loss.`,
    `CPU per packet is the emulator process's user + system time; it includes the kernel's delivery into the next`,
    `namespace (a veth transmit runs the receiver's stack in the sender's context), so it overstates the relay's own cost.`,
    '',
    '| engine | ceiling (packets/s) | ceiling (Mbit/s) | emulator CPU per packet (us) | packets/s per core | TCP CUBIC, baseline profile (Mbit/s) |',
    '|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.engine} | ${r.ceilingPps} | ${r.ceilingMbps} | ${r.cpuUsPerPacket} | ${r.ppsPerCore} | ${r.tcpCubicBaselineMbps ?? 'n/a'} |`,
    ),
    '',
    '## Steps',
    '',
    '| engine | offered pps | sent pps | delivered pps | delivered Mbit/s | loss | CPU us/packet |',
    '|---|---|---|---|---|---|---|',
    ...results.flatMap((r) =>
      r.steps.map(
        (s) =>
          `| ${r.engine} | ${s.offeredPps} | ${s.sentPps} | ${s.deliveredPps} | ${s.deliveredMbps} | ${(s.loss * 100).toFixed(2)}% | ${s.emulatorCpuUsPerPacket.toFixed(2)} |`,
      ),
    ),
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = benchCommand(
    'bench:emulator',
    "the emulator's own ceiling per engine (pure relay, rising offered rates) and TCP CUBIC through the overlay; root; writes bench/results/emulator-<date>.{json,md}",
  )
    .option('--ts-only', 'only the TypeScript engine')
    .option('--native-only', 'only the native engine')
    .parse()
    .opts<{ tsOnly?: boolean; nativeOnly?: boolean }>();
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:emulator needs root (it builds a lab of network namespaces)\n');
    process.exit(2);
  }
  execFileSync('make', ['-s', '-C', join(ROOT, 'native')], { stdio: 'inherit' });
  const m = machine();
  const engines: EmulatorEngine[] = args.tsOnly ? ['ts'] : args.nativeOnly ? ['native'] : ['native', 'ts'];
  const results: EngineResult[] = [];
  for (const e of engines) results.push(await benchEngine(e));
  const date = new Date().toISOString();
  const day = date.slice(0, 10);
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, `emulator-${day}.json`),
    `${JSON.stringify({ date, machine: m, datagramBytes: DATAGRAM, stepSeconds: STEP_SECONDS, results }, null, 2)}\n`,
  );
  writeFileSync(join(dir, `emulator-${day}.md`), markdown(date, m, results));
  process.stdout.write(markdown(date, m, results));
}

await main();
