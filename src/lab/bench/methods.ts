// How each method carries the workload from site A to the sink in site B, inside a running
// lab: namespace sysctls for the plain-TCP variants, a kcptun pair, or a Longhaul gateway
// pair. setUp returns where the client in site A connects and how to undo it all.

import { existsSync, openSync, closeSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { labExec, labRun, VXLAN, DEFAULT_LAB, type LabId, type Site } from '../netns.ts';
import { LAB_ADDRESSES } from '../emulator-config.ts';
import type { Method } from './matrix.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI_MAIN = join(REPO, 'src/cli/main.ts');

export const KCPTUN_PORT = 29900;
export const LONGHAUL_PORT = 4500;
/** Where the client connects in site A for the tunnelled methods. */
export const LOCAL_TUNNEL_PORT = 6600;
const READY_TIMEOUT_MS = 15_000;
// kcptun's defaults (128/512 packets) cap it at ~115 Mbit/s over 12 ms; its docs advise
// raising the windows for high bandwidth-delay links, so it gets 1024 packets (~440 Mbit/s at 25 ms).
const KCPTUN_WINDOW = '1024';
const KCPTUN_KEY = 'longhaul-bench';

export interface MethodPath {
  host: string;
  port: number;
  /** Human-readable settings, recorded with the result. */
  notes: string;
  /** The method's own processes (role -> PID), for CPU accounting. */
  processes?: Record<string, number | undefined>;
  /** The method's own view of the run (e.g. gateway A's status), taken right after it. */
  snapshot?(): Promise<Record<string, unknown> | undefined>;
  /** The far end's view (gateway B's event-loop and socket counters), taken right after the run. */
  peerSnapshot?(): Promise<Record<string, unknown> | undefined>;
  tearDown(): Promise<void>;
}

export interface MethodContext {
  lab: LabId;
  sinkPort: number;
  /** Scratch directory for keys and logs. */
  workDir: string;
  /** Extra node flags for the method's Node processes (the gateways), e.g. for profiling. */
  nodeFlags?: string[];
}

async function sysctl(site: Site, lab: LabId, settings: Record<string, string>): Promise<void> {
  const r = await labRun(site, ['sysctl', '-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)], { lab, timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`sysctl in ${site}: ${r.stderr.trim()}`);
}

async function readSysctls(site: Site, lab: LabId, keys: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    const r = await labRun(site, ['sysctl', '-n', key], { lab, timeoutMs: 5000 });
    if (r.code !== 0) throw new Error(`sysctl -n ${key} in ${site}: ${r.stderr.trim()}`);
    out[key] = r.stdout.trim().replace(/\s+/g, ' ');
  }
  return out;
}

/** Apply sysctls to sites for the run; the returned function restores what was there. */
async function withSysctls(lab: LabId, sites: Site[], settings: Record<string, string>): Promise<() => Promise<void>> {
  const saved: Array<[Site, Record<string, string>]> = [];
  for (const site of sites) {
    saved.push([site, await readSysctls(site, lab, Object.keys(settings))]);
    await sysctl(site, lab, settings);
  }
  return async () => {
    for (const [site, values] of saved) await sysctl(site, lab, values);
  };
}

/** Polls `ss` in the namespace until something listens on the port (TCP or UDP). */
async function waitListening(
  site: Site,
  lab: LabId,
  port: number,
  proto: 'tcp' | 'udp',
  child: ChildProcess,
  what: string,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      // Give the dying process a moment to flush its last words to the log.
      await sleep(100);
      throw new Error(`${what} exited (code ${child.exitCode ?? child.signalCode}): ${tail(logFile, 3)}`);
    }
    const r = await labRun(site, ['ss', '-Hln', proto === 'tcp' ? '-t' : '-u', `sport = :${port}`], { lab, timeoutMs: 5000 });
    if (r.code === 0 && r.stdout.trim() !== '') return;
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${proto} port ${port} within ${READY_TIMEOUT_MS} ms: ${tail(logFile, 3)}`);
}

function spawnLogged(site: Site, lab: LabId, argv: string[], logFile: string): ChildProcess {
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, 'w');
  try {
    return labExec(site, argv, { lab, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

export async function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function tail(file: string, lines = 10): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// Every plain-TCP run sets all of these in both sites, so a run never inherits another's
// settings (e.g. from a bench killed during a tcp-64k run). The buffer ceilings match the
// lab's (netns.ts): 64 MiB, enough for 1 Gbit/s x 100 ms.
const NORMAL_TCP = {
  'net.ipv4.tcp_window_scaling': '1',
  'net.ipv4.tcp_rmem': '4096 131072 67108864',
  'net.ipv4.tcp_wmem': '4096 16384 67108864',
};
// Window scaling off on both ends caps the window at 64 KB whatever the buffers; the buffers
// are capped too, as on the legacy stacks the report measured.
const LEGACY_TCP = {
  'net.ipv4.tcp_window_scaling': '0',
  'net.ipv4.tcp_rmem': '4096 65536 65536',
  'net.ipv4.tcp_wmem': '4096 65536 65536',
};

async function plainTcp(method: Method, ctx: MethodContext): Promise<MethodPath> {
  const overlay = { host: VXLAN.b, port: ctx.sinkPort };
  // Only the sender's (site A's) congestion control matters for A -> B.
  const cc = method === 'tcp-bbr' ? 'bbr' : 'cubic';
  const tcp = method === 'tcp-64k' ? LEGACY_TCP : NORMAL_TCP;
  const restoreB = await withSysctls(ctx.lab, ['b'], tcp);
  const restoreA = await withSysctls(ctx.lab, ['a'], { ...tcp, 'net.ipv4.tcp_congestion_control': cc });
  const notes = method === 'tcp-64k' ? 'cubic, window scaling off, 64 KB buffers' : cc;
  return {
    ...overlay,
    notes,
    tearDown: async () => {
      await restoreA();
      await restoreB();
    },
  };
}

async function kcptun(ctx: MethodContext): Promise<MethodPath> {
  const restoreTcp = await withSysctls(ctx.lab, ['a', 'b'], NORMAL_TCP);
  const common = [
    '--mode',
    'fast',
    '--crypt',
    'aes-128',
    '--key',
    KCPTUN_KEY,
    '--sndwnd',
    KCPTUN_WINDOW,
    '--rcvwnd',
    KCPTUN_WINDOW,
    '--quiet',
  ];
  const serverLog = join(ctx.workDir, 'kcptun-server.log');
  const clientLog = join(ctx.workDir, 'kcptun-client.log');
  const server = spawnLogged(
    'b',
    ctx.lab,
    ['kcptun-server', '-l', `${LAB_ADDRESSES.bPeer}:${KCPTUN_PORT}`, '-t', `127.0.0.1:${ctx.sinkPort}`, ...common],
    serverLog,
  );
  const client = spawnLogged(
    'a',
    ctx.lab,
    ['kcptun-client', '-l', `127.0.0.1:${LOCAL_TUNNEL_PORT}`, '-r', `${LAB_ADDRESSES.aNear}:${KCPTUN_PORT}`, ...common],
    clientLog,
  );
  const tearDown = async () => {
    await Promise.all([stopProcess(client), stopProcess(server)]);
    await restoreTcp();
  };
  try {
    await waitListening('b', ctx.lab, KCPTUN_PORT, 'udp', server, 'kcptun-server', serverLog);
    await waitListening('a', ctx.lab, LOCAL_TUNNEL_PORT, 'tcp', client, 'kcptun-client', clientLog);
  } catch (e) {
    await tearDown();
    throw e;
  }
  return {
    host: '127.0.0.1',
    port: LOCAL_TUNNEL_PORT,
    notes: `fast mode, aes-128, windows ${KCPTUN_WINDOW}, default compression`,
    tearDown,
    processes: { kcptun_client: client.pid, kcptun_server: server.pid },
  };
}

async function runCli(site: Site, lab: LabId, args: string[]): Promise<void> {
  const r = await labRun(site, [process.execPath, CLI_MAIN, ...args], { lab, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`longhaul ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
}

async function longhaul(ctx: MethodContext, extraFlags: string[]): Promise<MethodPath> {
  const restoreTcp = await withSysctls(ctx.lab, ['a', 'b'], NORMAL_TCP);
  const keys = join(ctx.workDir, 'keys');
  rmSync(keys, { recursive: true, force: true });
  mkdirSync(keys, { recursive: true });
  await runCli('a', ctx.lab, ['keygen', 'a', '--dir', keys]);
  await runCli('a', ctx.lab, ['keygen', 'b', '--dir', keys]);
  const logB = join(ctx.workDir, 'gateway-b.log');
  const logA = join(ctx.workDir, 'gateway-a.log');
  // Both gateways: node (with the run's node flags), the CLI, a WAN address in the site's namespace.
  const gateway = (wanAddress: string, flags: string[]): string[] => [
    process.execPath,
    ...(ctx.nodeFlags ?? []),
    CLI_MAIN,
    'gateway',
    '--wan',
    `${wanAddress}:${LONGHAUL_PORT}`,
    ...flags,
    ...extraFlags,
  ];
  const gatewayB = spawnLogged(
    'b',
    ctx.lab,
    gateway(LAB_ADDRESSES.bPeer, ['--key', join(keys, 'b.key'), '--peer-key', join(keys, 'a.pub'), '--allow', '127.0.0.1/32']),
    logB,
  );
  const gatewayA = spawnLogged(
    'a',
    ctx.lab,
    gateway(LAB_ADDRESSES.aPeer, [
      '--peer',
      `${LAB_ADDRESSES.aNear}:${LONGHAUL_PORT}`,
      '--tunnel',
      `127.0.0.1:${LOCAL_TUNNEL_PORT}=127.0.0.1:${ctx.sinkPort}`,
      '--key',
      join(keys, 'a.key'),
      '--peer-key',
      join(keys, 'b.pub'),
    ]),
    logA,
  );
  const tearDown = async () => {
    await Promise.all([stopProcess(gatewayA), stopProcess(gatewayB)]);
    await restoreTcp();
  };
  try {
    await waitListening('b', ctx.lab, LONGHAUL_PORT, 'udp', gatewayB, 'gateway B', logB);
    await waitListening('a', ctx.lab, LOCAL_TUNNEL_PORT, 'tcp', gatewayA, 'gateway A', logA);
  } catch (e) {
    await tearDown();
    throw e;
  }
  const status = async (side: 'a' | 'b') => {
    const r = await labRun(side, [process.execPath, CLI_MAIN, 'status', '--json'], { lab: ctx.lab, timeoutMs: 10_000 });
    if (r.code !== 0) return { error: (r.stderr || r.stdout).trim().slice(0, 300) };
    try {
      return { status: JSON.parse(r.stdout) as { associations?: Array<Record<string, unknown>>; codec?: unknown; udp?: unknown } };
    } catch {
      return { error: `unparsable status: ${r.stdout.slice(0, 200)}` };
    }
  };
  // Wake-ups (flushes, timer wake-ups) and system calls per side: what a datagram costs beyond its own work.
  const loopCounters = (s: { associations?: Array<Record<string, unknown>>; udp?: unknown }) => ({
    driver: s.associations?.[0]?.driver,
    recv_coalescing_us: s.associations?.[0]?.recvCoalescingUs,
    udp: s.udp,
  });
  const peerSnapshot = async () => {
    const r = await status('b');
    return 'error' in r ? r : { min_rtt_ms: r.status.associations?.[0]?.minRttMs, ...loopCounters(r.status) };
  };
  const snapshot = async () => {
    const r = await status('a');
    if ('error' in r) return r;
    const s = r.status;
    const a = s.associations?.[0];
    const pick = (k: string) => a?.[k];
    return {
      rtt_ms: pick('rttMs'),
      bandwidth_bps: pick('bandwidthBps'),
      send_rate_bps: pick('sendRateBps'),
      loss_rate: pick('lossRate'),
      retransmit_rate: pick('retransmitRate'),
      bytes_out_raw: pick('bytesOutRaw'),
      bytes_out_wire: pick('bytesOutWire'),
      send_waits_ms: pick('sendWaits'),
      cwnd_bytes: pick('cwndBytes'),
      min_rtt_ms: pick('minRttMs'),
      pacing_rate_bps: pick('pacingRateBps'),
      codec: s.codec,
      ...loopCounters(s),
    };
  };
  return {
    host: '127.0.0.1',
    port: LOCAL_TUNNEL_PORT,
    notes: extraFlags.join(' ') || 'defaults',
    snapshot,
    peerSnapshot,
    tearDown,
    processes: { gateway_a: gatewayA.pid, gateway_b: gatewayB.pid },
  };
}

export async function setUpMethod(method: Method, ctx: MethodContext, longhaulFlags: string[] = []): Promise<MethodPath> {
  switch (method) {
    case 'tcp-cubic':
    case 'tcp-bbr':
    case 'tcp-64k':
      return plainTcp(method, ctx);
    case 'kcptun':
      return kcptun(ctx);
    case 'longhaul':
      return longhaul(ctx, longhaulFlags);
  }
}

/** Why a method cannot run on this machine, or null when it can. */
export function methodUnavailable(method: Method): string | null {
  if (method === 'kcptun') {
    if (!existsSync('/usr/bin/kcptun-client')) return 'kcptun is not installed (apt-get install -y kcptun)';
  }
  if (method === 'longhaul') {
    if (!existsSync(CLI_MAIN)) return `the Longhaul CLI (${CLI_MAIN}) does not exist yet`;
  }
  return null;
}

export { DEFAULT_LAB };
