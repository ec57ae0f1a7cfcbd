// Gateway throughput benchmark: one bulk TCP connection through a gateway pair on loopback,
// no link emulation, compression none; with packet protection and (debug switch) without.
// Reports Mbit/s and CPU seconds per GiB on each gateway (from /proc/PID/stat).
// Run: flock /tmp/longhaul-bench.lock npm run bench:gateway [-- --bytes 2GiB --runs 1 --profile --out NAME]
//   --udp native,native-nogso,dgram: compare WAN socket backends (LONGHAUL_UDP, LONGHAUL_UDP_GSO in
//   the gateways' environment); default: what the gateways pick (native when lh_udp.node is built).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { generateStaticKeyPair, writeKeyFiles } from '../crypto/keys.ts';
import { loadAddon } from '../native/load.ts';
import { benchCommand, listArg, positiveIntArg, sizeArg } from './args.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/longhaul.js');
const TARGET_MBPS = 800;
const CLK_TCK = 100; // Linux USER_HZ

// native: lh_udp with UDP GSO/GRO; native-nogso: lh_udp, sendmmsg/recvmmsg only; dgram: node:dgram.
type Udp = 'native' | 'native-nogso' | 'dgram';
const UDP_DEFAULT: Udp = loadAddon('lh_udp').ok ? 'native' : 'dgram';
const args = benchCommand(
  'bench:gateway',
  'one bulk TCP connection through a gateway pair on loopback (no emulation, compression none), encrypted and plaintext; writes bench/results/<out>.{json,md}',
)
  .option('--bytes <size>', 'bytes per run, e.g. 2GiB', sizeArg, 2 ** 30)
  .option('--runs <n>', 'runs per mode', positiveIntArg, 1)
  .option('--profile', 'CPU profiles of both gateways (top self-time entries)', false)
  // A run that cannot finish in this time is reported as what it moved so far.
  .option('--timeout-ms <ms>', 'bound per run', positiveIntArg, 90_000)
  .option('--trace', "print gateway A's association figures every 500 ms (diagnosis)", false)
  // Path MTU given to both gateways (1500 = Ethernet, what the lab and most WANs carry).
  .option('--mtu <bytes>', 'WAN path MTU of both gateways', (t: string) => String(positiveIntArg(t)), '1500')
  .option('--modes <list>', 'encrypted,plaintext or one of them', listArg(['encrypted', 'plaintext'] as const), ['encrypted', 'plaintext'])
  // --max-rate 900M: both gateways paced below this (the lab's links are 1 Gbit/s): smaller flushes.
  .option('--max-rate <bps>', "both gateways' --max-rate, e.g. 900M", '')
  .option(
    '--udp <list>',
    `WAN socket backends to compare: native, native-nogso, dgram (default ${UDP_DEFAULT})`,
    listArg(['native', 'native-nogso', 'dgram'] as const),
    [UDP_DEFAULT],
  )
  .option('--out <name>', 'results as bench/results/NAME.{json,md}')
  .parse()
  .opts<{
    bytes: number;
    runs: number;
    profile: boolean;
    timeoutMs: number;
    trace: boolean;
    mtu: string;
    modes: Array<'encrypted' | 'plaintext'>;
    maxRate: string;
    udp: Udp[];
    out?: string;
  }>();
const BYTES = args.bytes;
const RUNS = args.runs;
const PROFILE = args.profile;
const RUN_TIMEOUT_MS = args.timeoutMs;
const TRACE = args.trace;
const MTU = args.mtu;
const MODES = args.modes;
const MAX_RATE = args.maxRate;
const RATE_ARGS = MAX_RATE ? ['--max-rate', MAX_RATE] : [];
const UDPS = args.udp;

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); after the comm field they are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

interface Gw {
  proc: ChildProcess;
  wanPort: number;
  tunnelPort: number;
}

function startGateway(args: string[], profileDir: string | null, udp: Udp, control = 'off'): Promise<Gw> {
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const proc = spawn(process.execPath, [...nodeArgs, CLI, 'gateway', '--log-json', '--log-level', 'info', '--control', control, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LONGHAUL_UDP: udp === 'dgram' ? 'dgram' : 'native', LONGHAUL_UDP_GSO: udp === 'native-nogso' ? '0' : '1' },
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr}`)), 15_000);
    rl.on('line', (line) => {
      let j: { msg?: string; wan?: string; tunnels?: string[]; err?: string };
      try {
        j = JSON.parse(line);
      } catch {
        return;
      }
      // With --log-json a start-up error is this line, not stderr.
      if (j.msg === 'gateway failed to start') stderr += `${j.err}\n`;
      if (j.msg === 'gateway started') {
        clearTimeout(timer);
        const wanPort = Number(j.wan!.split(':').pop());
        const t = j.tunnels?.[0];
        const tunnelPort = t ? Number(t.split(' ')[0]!.split(':').pop()) : 0;
        resolvePromise({ proc, wanPort, tunnelPort });
      }
    });
    proc.once('close', (code) => reject(new Error(`gateway exited (${code}): ${stderr}`)));
  });
}

function stopGateway(g: Gw): Promise<void> {
  return new Promise((r) => {
    if (g.proc.exitCode !== null) return r();
    g.proc.once('exit', () => r());
    g.proc.kill('SIGTERM');
    setTimeout(() => {
      if (g.proc.exitCode === null) g.proc.kill('SIGKILL');
    }, 5000);
  });
}

/** Self time by function from a V8 .cpuprofile, as "percent function file:line", top `n`. */
function summarizeProfile(file: string, n = 12): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const t = p.timeDeltas[i] ?? 0;
    total += t;
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + t);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1)}% ${k}`);
}

function profileOf(dir: string, pid: number): string[] {
  const f = readdirSync(dir).find((name) => name.includes(`.${pid}.`) && name.endsWith('.cpuprofile'));
  return f ? summarizeProfile(join(dir, f)) : [];
}

interface RunResult {
  mode: 'encrypted' | 'plaintext';
  /** The gateways' WAN socket backend. */
  udp: Udp;
  bytes: number;
  seconds: number;
  mbps: number;
  cpuA: number;
  cpuB: number;
  cpuPerGiBA: number;
  cpuPerGiBB: number;
  completed: boolean;
  /** With --profile: top self-time entries of each gateway process (whole process lifetime). */
  profileA?: string[];
  profileB?: string[];
}

async function runOnce(mode: 'encrypted' | 'plaintext', udp: Udp, keysDir: string, profileDir: string | null): Promise<RunResult> {
  // Sink: counts bytes and reports when all arrived.
  let received = 0;
  let doneAt = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const sink = createServer((s) => {
    s.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= BYTES && doneAt === 0) {
        doneAt = performance.now();
        resolveDone();
      }
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const sinkPort = (sink.address() as { port: number }).port;
  const sec = mode === 'encrypted';
  const b = await startGateway(
    [
      '--name',
      'bench-b',
      '--wan',
      '127.0.0.1:0',
      '--allow',
      '127.0.0.1',
      '--compression',
      'none',
      '--mtu',
      MTU,
      ...RATE_ARGS,
      ...(sec ? ['--key', join(keysDir, 'b.key'), '--peer-key', join(keysDir, 'a.pub')] : ['--insecure-plaintext']),
    ],
    profileDir,
    udp,
    TRACE ? '127.0.0.1:45020' : 'off',
  );
  const a = await startGateway(
    [
      '--name',
      'bench-a',
      '--wan',
      '127.0.0.1:0',
      '--peer',
      `127.0.0.1:${b.wanPort}`,
      '--tunnel',
      `127.0.0.1:0=127.0.0.1:${sinkPort}`,
      '--compression',
      'none',
      '--mtu',
      MTU,
      ...RATE_ARGS,
      ...(sec ? ['--key', join(keysDir, 'a.key'), '--peer-key', join(keysDir, 'b.pub')] : ['--insecure-plaintext']),
    ],
    profileDir,
    udp,
    TRACE ? '127.0.0.1:45019' : 'off',
  );
  let tracer: NodeJS.Timeout | null = null;
  if (TRACE) {
    tracer = setInterval(() => {
      fetch('http://127.0.0.1:45019/status')
        .then((r) => r.json())
        .then(
          (st: { associations: Array<Record<string, number>>; udp: Record<string, number> }) => {
            const x = st.associations[0] as Record<string, number> & { driver: Record<string, number> };
            if (x)
              process.stdout.write(
                `  udp out ${st.udp.datagramsOut} in ${st.udp.datagramsIn} calls out ${st.udp.sendCalls} in ${st.udp.recvCalls}   rtt ${x.rttMs!.toFixed(2)} min ${x.minRttMs!.toFixed(2)} bw ${(x.bandwidthBps! / 1e6).toFixed(0)} pacing ${(x.pacingRateBps! / 1e6).toFixed(0)} send ${(x.sendRateBps! / 1e6).toFixed(0)} Mbit/s cwnd ${x.cwndBytes} inflight ${x.bytesInFlight} lost ${x.packetsLost} sent ${x.packetsSent} backlog ${x.sendBacklogBytes} waiting ${x.readersWaitingForBacklog} streams ${x.activeStreams} flushes ${x.driver.flushes} timers ${x.driver.timerWakeups}\n`,
              );
          },
          () => {},
        );
    }, 500);
  }
  const cpuA0 = cpuSeconds(a.proc.pid!);
  const cpuB0 = cpuSeconds(b.proc.pid!);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const started = performance.now();
  const client = connect({ port: a.tunnelPort, host: '127.0.0.1' });
  client.on('error', () => {});
  let sent = 0;
  const pump = (): void => {
    while (sent < BYTES) {
      const n = Math.min(chunk.length, BYTES - sent);
      sent += n;
      if (!client.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        client.once('drain', pump);
        return;
      }
    }
    client.end();
  };
  client.on('connect', pump);
  const timeout = new Promise<void>((r) => setTimeout(r, RUN_TIMEOUT_MS).unref());
  await Promise.race([done, timeout]);
  const end = doneAt || performance.now();
  if (tracer) {
    clearInterval(tracer);
    const st = (await (await fetch('http://127.0.0.1:45020/status')).json()) as { associations: unknown[]; udp: unknown };
    process.stdout.write(`  B at the end: ${JSON.stringify(st.associations[0])} udp ${JSON.stringify(st.udp)}\n`);
  }
  const cpuA = cpuSeconds(a.proc.pid!) - cpuA0;
  const cpuB = cpuSeconds(b.proc.pid!) - cpuB0;
  client.destroy();
  await Promise.all([stopGateway(a), stopGateway(b)]);
  sink.close();
  const seconds = (end - started) / 1000;
  const gib = received / 2 ** 30;
  const profiles = profileDir ? { profileA: profileOf(profileDir, a.proc.pid!), profileB: profileOf(profileDir, b.proc.pid!) } : {};
  return {
    ...profiles,
    mode,
    udp,
    bytes: received,
    seconds,
    mbps: (received * 8) / seconds / 1e6,
    cpuA,
    cpuB,
    cpuPerGiBA: gib > 0 ? cpuA / gib : 0,
    cpuPerGiBB: gib > 0 ? cpuB / gib : 0,
    completed: doneAt !== 0,
  };
}

async function main(): Promise<void> {
  const keysDir = mkdtempSync(join(tmpdir(), 'lh-gwbench-'));
  for (const n of ['a', 'b']) {
    const w = writeKeyFiles(keysDir, n, generateStaticKeyPair());
    if (!w.ok) throw new Error(w.error);
  }
  const date = new Date().toISOString();
  // Raw .cpuprofile files stay in a temp dir (hundreds of KB each); the results keep summaries.
  const profileDir = PROFILE ? mkdtempSync(join(tmpdir(), 'lh-gwbench-prof-')) : null;
  const results: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const udp of UDPS)
      for (const mode of MODES) {
        const r = await runOnce(mode, udp, keysDir, profileDir);
        results.push(r);
        process.stdout.write(
          `${mode} (udp ${udp}): ${r.mbps.toFixed(0)} Mbit/s (${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${r.seconds.toFixed(1)} s${r.completed ? '' : ', TIMED OUT'}), CPU s/GiB: A ${r.cpuPerGiBA.toFixed(2)}, B ${r.cpuPerGiBB.toFixed(2)}\n`,
        );
      }
  }
  // Headline figures: the first --udp backend (by default the one the gateway picks itself).
  const main = results.filter((r) => r.udp === UDPS[0]);
  const best = (mode: string): RunResult | undefined => main.filter((r) => r.mode === mode).sort((x, y) => y.mbps - x.mbps)[0];
  const enc = best('encrypted');
  const plain = best('plaintext');
  // The machine is shared and noisy: the median of each mode is the figure to compare.
  const medianOf = (v: number[]): number | null => {
    v.sort((x, y) => x - y);
    if (v.length === 0) return null;
    const m = v.length >> 1;
    return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
  };
  const median = (mode: string): number | null => medianOf(main.filter((r) => r.mode === mode).map((r) => r.mbps));
  const byUdp = UDPS.flatMap((udp) =>
    MODES.map((mode) => {
      const rs = results.filter((r) => r.udp === udp && r.mode === mode);
      return {
        udp,
        mode,
        runs: rs.length,
        medianMbps: medianOf(rs.map((r) => r.mbps)),
        medianCpuPerGiBA: medianOf(rs.map((r) => r.cpuPerGiBA)),
        medianCpuPerGiBB: medianOf(rs.map((r) => r.cpuPerGiBB)),
      };
    }),
  );
  const encMedian = median('encrypted');
  const plainMedian = median('plaintext');
  const machine = {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
  const summary = {
    benchmark: 'gateway',
    date,
    machine,
    setup: `one bulk TCP connection, source -> gateway A -> UDP loopback -> gateway B -> sink, compression none, no emulation, WAN MTU ${MTU}${MAX_RATE ? `, --max-rate ${MAX_RATE}` : ''}; source and sink in the bench process`,
    mtu: Number(MTU),
    udp: UDPS,
    bytesPerRun: BYTES,
    targetMbps: TARGET_MBPS,
    results,
    best: {
      encryptedMbps: enc?.mbps ?? 0,
      plaintextMbps: plain?.mbps ?? 0,
      encryptionCost: enc && plain ? 1 - enc.mbps / plain.mbps : null,
    },
    median: {
      encryptedMbps: encMedian,
      plaintextMbps: plainMedian,
      encryptionCost: encMedian !== null && plainMedian ? 1 - encMedian / plainMedian : null,
    },
    byUdp,
    meetsTarget: (enc?.mbps ?? 0) >= TARGET_MBPS,
    profileDir,
  };
  const outDir = join(ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  // --out NAME: results as bench/results/NAME.{json,md} (e.g. a paced comparison next to the default run).
  const stem = join(outDir, args.out ?? `gateway-${date.slice(0, 10)}`);
  writeFileSync(`${stem}.json`, `${JSON.stringify(summary, null, 2)}\n`);
  const md = [
    `# Gateway throughput (${date})`,
    '',
    `Machine: ${machine.nproc} cores, ${machine.cpuModel}, Node ${machine.node}. ${summary.setup}. ${(BYTES / 2 ** 20).toFixed(0)} MiB per run.`,
    '',
    '| mode | WAN socket | Mbit/s | seconds | CPU s/GiB gateway A | CPU s/GiB gateway B | completed |',
    '|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.mode} | ${r.udp} | ${r.mbps.toFixed(0)} | ${r.seconds.toFixed(1)} | ${r.cpuPerGiBA.toFixed(2)} | ${r.cpuPerGiBB.toFixed(2)} | ${r.completed ? 'yes' : 'no'} |`,
    ),
    '',
    'Medians by WAN socket backend (native: lh_udp sendmmsg/recvmmsg with UDP GSO/GRO; native-nogso: without GSO/GRO; dgram: node:dgram):',
    '',
    '| mode | WAN socket | runs | Mbit/s | CPU s/GiB A | CPU s/GiB B |',
    '|---|---|---|---|---|---|',
    ...byUdp.map(
      (u) =>
        `| ${u.mode} | ${u.udp} | ${u.runs} | ${u.medianMbps?.toFixed(0) ?? '-'} | ${u.medianCpuPerGiBA?.toFixed(2) ?? '-'} | ${u.medianCpuPerGiBB?.toFixed(2) ?? '-'} |`,
    ),
    '',
    `Target ${TARGET_MBPS} Mbit/s (encrypted): ${summary.meetsTarget ? 'met' : 'NOT met'} (best run).` +
      (summary.median.encryptionCost !== null
        ? ` Medians: encrypted ${summary.median.encryptedMbps!.toFixed(0)}, plaintext ${summary.median.plaintextMbps!.toFixed(0)} Mbit/s; encryption cost ${(summary.median.encryptionCost * 100).toFixed(1)}% of throughput (target at most 15%).`
        : ''),
    '',
    ...results
      .filter((r) => r.profileA)
      .flatMap((r) => [
        `## Profile, ${r.mode} run, udp ${r.udp} (self time, whole gateway process incl. startup and idle)`,
        '',
        '| gateway A (sender) | gateway B (receiver) |',
        '|---|---|',
        ...r.profileA!.map((x, i) => `| ${x} | ${r.profileB![i] ?? ''} |`),
        '',
      ]),
  ].join('\n');
  writeFileSync(`${stem}.md`, md);
  process.stdout.write(`results: ${stem}.json, ${stem}.md\n`);
}

await main();
