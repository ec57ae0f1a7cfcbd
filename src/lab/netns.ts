// The lab network: sites A and B and the emulator as network namespaces, veths between
// each site and the emulator, a VXLAN overlay whose underlay datagrams cross the emulator,
// and the emulator process itself. Addresses are fixed (docs/lab.md) so gateways and
// benchmarks agree; only the namespace prefix and state directory vary (tests run a lab
// of their own next to a user's).
//
// Everything created is recorded in a state directory so `labDown` can undo it after a
// crash; it is idempotent and kills only the PIDs it recorded.

import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_PORTS, LAB_ADDRESSES, linkToArgs, resolveLink, linkSettingsFromProfile, type LinkOptions } from './emulator-config.ts';
import type { LinkSettings } from './emulator-link.ts';
import { readStatsFile, type EmulatorReport } from './emulator-stats.ts';
import type { EngineChoice } from './emulator-run.ts';
import type { LinkProfile } from '../link/profiles.ts';

export type Site = 'a' | 'b' | 'emu';

export interface LabId {
  /** Namespaces are `${prefix}-a`, `${prefix}-b`, `${prefix}-emu`. */
  prefix: string;
  stateDir: string;
}

export const DEFAULT_LAB: LabId = { prefix: 'lh', stateDir: '/run/longhaul-lab' };

export const VXLAN = { device: 'vx0', vni: 42, port: 4789, mtu: 1450, a: '198.19.0.1', b: '198.19.0.2', prefixLen: 24 } as const;

/** Socket buffer ceiling (net.core.[rw]mem_max, tcp_[rw]mem max): 1 Gbit/s x 100 ms needs 12.5 MB. */
const SOCKET_BUFFER_MAX = 64 * 1024 * 1024;
const EMULATOR_READY_TIMEOUT_MS = 15_000;
const KILL_GRACE_MS = 3_000;

export class LabError extends Error {
  override name = 'LabError';
}

export interface EmulatorState {
  pid: number;
  engine: EngineChoice;
  profile: string;
  link: LinkSettings;
  ports: number[];
  seed: number;
  statsFile: string;
  logFile: string;
}

export interface LabState {
  prefix: string;
  stateDir: string;
  namespaces: Record<Site, string>;
  createdAt: string;
  /** How the lab got its privileges (only 'root' is supported, see checkLabPrivileges). */
  privileges: 'root';
  congestionControl: string;
  emulator?: EmulatorState | undefined;
}

/** A profile name, a profile object, or CLI-style link options (`{ profile: 'mpls', loss: '1%' }`). */
export type LinkSpec = string | LinkProfile | LinkOptions;

export interface LabUpOptions {
  /** Default 'baseline'. */
  profile?: LinkSpec | undefined;
  ports?: number[] | undefined;
  /** Emulator engine: 'auto' (native when built, else ts), 'native' or 'ts'. */
  engine?: EngineChoice | undefined;
  seed?: number | undefined;
  /** Default TCP congestion control inside the sites; the host's default (BBR) is not the report's. */
  congestionControl?: string | undefined;
  lab?: LabId | undefined;
  /** Tear down a lab with this prefix whose emulator is still running (default: refuse). */
  replace?: boolean | undefined;
}

export interface LabDownOptions {
  lab?: LabId | undefined;
  /** Also kill processes found in the lab's namespaces that the lab did not start. */
  killStrays?: boolean | undefined;
}

export interface LabDownReport {
  removedNamespaces: string[];
  killedPids: number[];
  /** Processes still inside a removed namespace that the lab did not start (not killed). */
  strayPids: number[];
}

export function namespaceName(site: Site, lab: LabId = DEFAULT_LAB): string {
  return `${lab.prefix}-${site}`;
}

function namespaces(lab: LabId): Record<Site, string> {
  return { a: namespaceName('a', lab), b: namespaceName('b', lab), emu: namespaceName('emu', lab) };
}

/**
 * The lab needs root: named namespaces live under /run/netns and the socket-buffer and
 * congestion-control sysctls are host-wide. An unprivileged user namespace (`unshare -Urn`)
 * can make a network namespace but not named ones visible to `ip netns`, so it is probed
 * only to make the error message precise.
 */
export function checkLabPrivileges(): { ok: true; mode: 'root' } | { ok: false; error: string } {
  if (process.getuid?.() === 0) {
    if (!commandExists('ip')) return { ok: false, error: 'the lab needs iproute2 (`ip`): apt-get install -y iproute2' };
    if (!commandExists('ethtool')) return { ok: false, error: 'the lab needs ethtool: apt-get install -y ethtool' };
    return { ok: true, mode: 'root' };
  }
  const userns = spawnSync('unshare', ['-Urn', 'true'], { stdio: 'ignore' }).status === 0;
  return {
    ok: false,
    error:
      `the lab needs root (named network namespaces, host sysctls); run it with sudo. ` +
      (userns
        ? 'Unprivileged user namespaces work here (unshare -Urn), but they cannot hold the named namespaces the lab uses.'
        : 'Unprivileged user namespaces are not available either (unshare -Urn failed).'),
  };
}

function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new LabError(`${cmd} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

function ip(...args: string[]): string {
  return run('ip', args);
}

function nsExec(ns: string, ...args: string[]): string {
  return run('ip', ['netns', 'exec', ns, ...args]);
}

function namespaceExists(ns: string): boolean {
  return existsSync(`/run/netns/${ns}`);
}

function statePath(lab: LabId): string {
  return join(lab.stateDir, 'state.json');
}

function pidDir(lab: LabId): string {
  return join(lab.stateDir, 'pids');
}

export function readLabState(lab: LabId = DEFAULT_LAB): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(lab), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeLabState(state: LabState): void {
  mkdirSync(state.stateDir, { recursive: true });
  writeFileSync(statePath({ prefix: state.prefix, stateDir: state.stateDir }), `${JSON.stringify(state, null, 2)}\n`);
}

function resolveSpec(spec: LinkSpec | undefined): { name: string; link: LinkSettings } {
  if (spec === undefined) spec = 'baseline';
  if (typeof spec === 'string') spec = { profile: spec };
  if ('rateBps' in spec) return { name: spec.name, link: linkSettingsFromProfile(spec) };
  const r = resolveLink(spec);
  if (!r.ok) throw new LabError(r.error);
  return r.value;
}

function setSysctls(ns: string | undefined, settings: Record<string, string>): void {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  if (ns === undefined) run('sysctl', ['-q', '-w', ...args]);
  else nsExec(ns, 'sysctl', '-q', '-w', ...args);
}

function readSysctl(key: string): string {
  return run('sysctl', ['-n', key]).trim();
}

/** Host-wide settings the lab needs; only ever raised or extended, never narrowed. */
function prepareHost(): void {
  for (const key of ['net.core.rmem_max', 'net.core.wmem_max']) {
    if (Number(readSysctl(key)) < SOCKET_BUFFER_MAX) setSysctls(undefined, { [key]: String(SOCKET_BUFFER_MAX) });
  }
  // A namespace may default to a congestion control only if the host allows it.
  const allowed = readSysctl('net.ipv4.tcp_allowed_congestion_control').split(/\s+/).filter(Boolean);
  const available = readSysctl('net.ipv4.tcp_available_congestion_control').split(/\s+/);
  const want = ['cubic', 'bbr', 'reno'].filter((cc) => available.includes(cc) && !allowed.includes(cc));
  if (want.length > 0) {
    setSysctls(undefined, { 'net.ipv4.tcp_allowed_congestion_control': [...allowed, ...want].join(' ') });
  }
}

/**
 * Creates the lab and starts the emulator in it; resolves when the emulator relays. Remnants
 * of a crashed lab with the same prefix are cleared first; a lab that is still running (its
 * emulator alive) is someone's: refused unless `replace`.
 */
export async function labUp(opts: LabUpOptions = {}): Promise<LabState> {
  const priv = checkLabPrivileges();
  if (!priv.ok) throw new LabError(priv.error);
  const lab = opts.lab ?? DEFAULT_LAB;
  const ns = namespaces(lab);
  const { name: profileName, link } = resolveSpec(opts.profile);
  const existing = readLabState(lab);
  if (existing?.emulator !== undefined && isOurEmulator(existing.emulator.pid) && opts.replace !== true) {
    throw new LabError(`lab "${lab.prefix}" is already up (emulator pid ${existing.emulator.pid}): run lab down first, or replace it`);
  }
  if (existing !== undefined || Object.values(ns).some(namespaceExists)) await labDown({ lab });

  const state: LabState = {
    prefix: lab.prefix,
    stateDir: lab.stateDir,
    namespaces: ns,
    createdAt: new Date().toISOString(),
    privileges: 'root',
    congestionControl: opts.congestionControl ?? 'cubic',
  };
  // Recorded before anything exists, so a crash half-way is still cleaned by labDown.
  writeLabState(state);
  try {
    prepareHost();
    for (const n of Object.values(ns)) {
      ip('netns', 'add', n);
      ip('-n', n, 'link', 'set', 'lo', 'up');
    }
    const A = LAB_ADDRESSES;
    ip('link', 'add', 'a-emu', 'netns', ns.a, 'type', 'veth', 'peer', 'name', 'emu-a', 'netns', ns.emu);
    ip('link', 'add', 'b-emu', 'netns', ns.b, 'type', 'veth', 'peer', 'name', 'emu-b', 'netns', ns.emu);
    ip('-n', ns.a, 'addr', 'add', `${A.aPeer}/24`, 'dev', 'a-emu');
    ip('-n', ns.emu, 'addr', 'add', `${A.aNear}/24`, 'dev', 'emu-a');
    ip('-n', ns.b, 'addr', 'add', `${A.bPeer}/24`, 'dev', 'b-emu');
    ip('-n', ns.emu, 'addr', 'add', `${A.bNear}/24`, 'dev', 'emu-b');
    for (const [n, dev] of [
      [ns.a, 'a-emu'],
      [ns.b, 'b-emu'],
      [ns.emu, 'emu-a'],
      [ns.emu, 'emu-b'],
    ] as const) {
      ip('-n', n, 'link', 'set', dev, 'up');
    }
    const bufMax = String(SOCKET_BUFFER_MAX);
    for (const n of [ns.a, ns.b]) {
      setSysctls(n, {
        'net.ipv4.tcp_congestion_control': state.congestionControl,
        'net.ipv4.tcp_rmem': `4096 131072 ${bufMax}`,
        'net.ipv4.tcp_wmem': `4096 16384 ${bufMax}`,
        // Every benchmark run starts cold: no ssthresh/RTT cached from the previous one.
        'net.ipv4.tcp_no_metrics_save': '1',
        // No router solicitations or DAD chatter through the emulator.
        'net.ipv6.conf.all.disable_ipv6': '1',
        'net.ipv6.conf.default.disable_ipv6': '1',
      });
    }
    // The emulator namespace must not route between the sites: only the relay connects them.
    setSysctls(ns.emu, { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.disable_ipv6': '1' });
    addVxlan(ns.a, 'a-emu', A.aPeer, A.aNear, VXLAN.a);
    addVxlan(ns.b, 'b-emu', A.bPeer, A.bNear, VXLAN.b);

    state.emulator = await spawnEmulator(lab, ns.emu, {
      profile: profileName,
      link,
      ports: opts.ports ?? [...DEFAULT_PORTS],
      engine: opts.engine ?? 'auto',
      seed: opts.seed ?? 1,
    });
    writeLabState(state);
    return state;
  } catch (err) {
    await labDown({ lab });
    throw err;
  }
}

function addVxlan(ns: string, dev: string, local: string, remote: string, overlayAddress: string): void {
  // srcport 4789-4790 pins the underlay source port, so replies can use the same 4-tuple
  // and the emulator's relay sees one flow per site.
  ip(
    '-n',
    ns,
    'link',
    'add',
    VXLAN.device,
    'type',
    'vxlan',
    'id',
    String(VXLAN.vni),
    'dstport',
    String(VXLAN.port),
    'srcport',
    String(VXLAN.port),
    String(VXLAN.port + 1),
    'local',
    local,
    'remote',
    remote,
    'dev',
    dev,
  );
  ip('-n', ns, 'link', 'set', VXLAN.device, 'mtu', String(VXLAN.mtu));
  ip('-n', ns, 'addr', 'add', `${overlayAddress}/${VXLAN.prefixLen}`, 'dev', VXLAN.device);
  ip('-n', ns, 'link', 'set', VXLAN.device, 'up');
  // Without this the inner TCP checksums are left to an offload that never happens.
  nsExec(ns, 'ethtool', '-K', VXLAN.device, 'tx', 'off');
}

interface EmulatorSpawn {
  profile: string;
  link: LinkSettings;
  ports: number[];
  engine: EngineChoice;
  seed: number;
}

const LAB_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.ts');

async function spawnEmulator(lab: LabId, ns: string, e: EmulatorSpawn): Promise<EmulatorState> {
  mkdirSync(lab.stateDir, { recursive: true });
  const statsFile = join(lab.stateDir, 'emulator-stats.json');
  const logFile = join(lab.stateDir, 'emulator.log');
  rmSync(statsFile, { force: true });
  const log = openSync(logFile, 'a');
  const args = [
    'netns',
    'exec',
    ns,
    process.execPath,
    LAB_MAIN,
    'emulate',
    ...linkToArgs(e.link),
    '--name',
    e.profile,
    '--ports',
    e.ports.join(','),
    '--seed',
    String(e.seed),
    '--engine',
    e.engine,
    '--stats-file',
    statsFile,
  ];
  // `ip netns exec` execs the command, so the child's PID is the emulator's.
  const child = spawn('ip', args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new LabError('cannot start the emulator');
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + EMULATOR_READY_TIMEOUT_MS;
  while (readStatsFile(statsFile) === undefined) {
    if (exited || Date.now() > deadline) {
      if (!exited) killAndWait([pid]);
      const tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
      throw new LabError(`emulator did not start (${exited ? 'exited' : 'timed out'}):\n${tail}`);
    }
    await sleep(20);
  }
  const report = readStatsFile(statsFile)!;
  return { pid, engine: report.engine, profile: e.profile, link: e.link, ports: e.ports, seed: e.seed, statsFile, logFile };
}

/**
 * Replaces the running emulator with one configured for `profile` (queues start empty,
 * counters from zero). The previous emulator's final report is returned.
 */
export async function setLinkProfile(
  profile: LinkSpec,
  opts: { lab?: LabId; engine?: EngineChoice; seed?: number; ports?: number[] } = {},
): Promise<{ state: LabState; previous?: EmulatorReport | undefined }> {
  const lab = opts.lab ?? DEFAULT_LAB;
  const state = readLabState(lab);
  if (state === undefined) throw new LabError(`no lab is up (state ${statePath(lab)} missing): run lab up first`);
  const { name, link } = resolveSpec(profile);
  let previous: EmulatorReport | undefined;
  const old = state.emulator;
  if (old !== undefined) {
    stopEmulatorProcess(old);
    previous = readStatsFile(old.statsFile);
  }
  state.emulator = undefined;
  writeLabState(state);
  state.emulator = await spawnEmulator(lab, state.namespaces.emu, {
    profile: name,
    link,
    ports: opts.ports ?? old?.ports ?? [...DEFAULT_PORTS],
    engine: opts.engine ?? old?.engine ?? 'auto',
    seed: opts.seed ?? old?.seed ?? 1,
  });
  writeLabState(state);
  return { state, previous };
}

/** The emulator's latest periodic report (at most ~1 s old). */
export function readEmulatorStats(lab: LabId = DEFAULT_LAB): EmulatorReport | undefined {
  const s = readLabState(lab);
  return s?.emulator === undefined ? undefined : readStatsFile(s.emulator.statsFile);
}

/** Asks the emulator for a fresh report (SIGUSR1) and waits for it. */
export async function requestEmulatorStats(lab: LabId = DEFAULT_LAB): Promise<EmulatorReport | undefined> {
  const s = readLabState(lab);
  if (s?.emulator === undefined || !isOurEmulator(s.emulator.pid)) return undefined;
  const before = readStatsFile(s.emulator.statsFile);
  // A snapshot asked for after the signal; an emulator without requestsSeen: any newer one.
  const answers = (r: EmulatorReport): boolean =>
    r.requestsSeen !== undefined ? r.requestsSeen > (before?.requestsSeen ?? 0) : r.uptimeMs !== (before?.uptimeMs ?? -1);
  process.kill(s.emulator.pid, 'SIGUSR1');
  // By the clock, not a count of sleeps: on a busy machine the driver can take a while.
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    await sleep(10);
    const r = readStatsFile(s.emulator.statsFile);
    if (r !== undefined && answers(r)) return r;
  }
  return readStatsFile(s.emulator.statsFile);
}

function stopEmulatorProcess(e: EmulatorState): void {
  if (!isOurEmulator(e.pid)) return;
  // The native datapath is the driver's child: it quits with its driver, but must also be
  // gone (its ports free) before a successor binds them.
  const datapath = childPids(e.pid);
  killAndWait([e.pid]);
  waitGone(datapath, KILL_GRACE_MS);
  killAndWait(datapath);
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function waitGone(pids: number[], ms: number): void {
  const until = Date.now() + ms;
  while (pids.some(isAlive) && Date.now() < until) spawnSync('sleep', ['0.02']);
}

function procCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** A recorded PID may have been reused after a crash: only signal it if it still is an emulator. */
function isOurEmulator(pid: number): boolean {
  const cmd = procCmdline(pid);
  return cmd?.includes(' emulate ') === true && isAlive(pid);
}

/** SIGTERM, then SIGKILL after a grace period; returns once all are gone. Synchronous on purpose: also used on exit paths. */
function killAndWait(pids: number[]): void {
  const alive = (): number[] => pids.filter(isAlive);
  for (const pid of alive()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const until = Date.now() + KILL_GRACE_MS;
  while (alive().length > 0 && Date.now() < until) spawnSync('sleep', ['0.02']);
  for (const pid of alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const hardUntil = Date.now() + 1000;
  while (alive().length > 0 && Date.now() < hardUntil) spawnSync('sleep', ['0.02']);
}

/** Removes the lab: recorded processes, namespaces, state. Safe to call any number of times. */
export async function labDown(opts: LabDownOptions = {}): Promise<LabDownReport> {
  const lab = opts.lab ?? DEFAULT_LAB;
  const state = readLabState(lab);
  const killed: number[] = [];
  const toKill: number[] = [];
  if (state?.emulator !== undefined && isOurEmulator(state.emulator.pid)) {
    killed.push(...childPids(state.emulator.pid));
    stopEmulatorProcess(state.emulator);
    killed.push(state.emulator.pid);
  }
  for (const { pid, cmdline } of recordedPids(lab)) {
    if (isAlive(pid) && procCmdline(pid) === cmdline) toKill.push(pid);
  }
  killAndWait(toKill);
  killed.push(...toKill);

  const removed: string[] = [];
  const strays: number[] = [];
  for (const n of Object.values(namespaces(lab))) {
    if (!namespaceExists(n)) continue;
    const pids = ip('netns', 'pids', n).split(/\s+/).filter(Boolean).map(Number).filter(isAlive);
    if (pids.length > 0) {
      if (opts.killStrays === true) {
        killAndWait(pids);
        killed.push(...pids);
      } else {
        strays.push(...pids);
      }
    }
    ip('netns', 'del', n);
    removed.push(n);
  }
  rmSync(lab.stateDir, { recursive: true, force: true });
  return { removedNamespaces: removed, killedPids: killed, strayPids: strays };
}

function recordedPids(lab: LabId): { pid: number; cmdline: string }[] {
  let names: string[];
  try {
    names = readdirSync(pidDir(lab));
  } catch {
    return [];
  }
  return names.map((f) => ({ pid: Number(f), cmdline: readFileSync(join(pidDir(lab), f), 'utf8') }));
}

export interface LabExecOptions extends SpawnOptions {
  lab?: LabId | undefined;
}

/**
 * Runs argv in a site's namespace. The PID is recorded until the process exits, so
 * `labDown` can kill it if its caller crashed.
 */
export function labExec(site: Site, argv: string[], opts: LabExecOptions = {}): ChildProcess {
  if (argv.length === 0) throw new LabError('labExec: empty command');
  const { lab = DEFAULT_LAB, ...spawnOpts } = opts;
  const ns = namespaceName(site, lab);
  if (!namespaceExists(ns)) throw new LabError(`namespace ${ns} does not exist: run lab up first`);
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], spawnOpts);
  const pid = child.pid;
  if (pid !== undefined) {
    const file = join(pidDir(lab), String(pid));
    try {
      mkdirSync(pidDir(lab), { recursive: true });
      // Recorded as the exec'd command line, which is what /proc shows once `ip` has exec'd.
      writeFileSync(file, `${argv.join(' ')} `);
    } catch {
      /* recording is best effort; the process still runs */
    }
    child.once('exit', () => {
      try {
        unlinkSync(file);
      } catch {
        /* gone already */
      }
    });
  }
  return child;
}

export interface LabRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * A child's output, collected until it closes; killed (SIGKILL) after `timeoutMs` if given.
 * With `input`, that is written to its stdin (a command may exit without reading it).
 */
export function collectOutput(child: ChildProcess, opts: { timeoutMs?: number; input?: string } = {}): Promise<LabRunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = opts.timeoutMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (e) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.input !== undefined) {
      // A command may exit without reading its input; that is its business, not an error here.
      child.stdin!.on('error', () => {});
      child.stdin!.end(opts.input);
    }
  });
}

/** labExec and collect the output; for short commands. */
export function labRun(site: Site, argv: string[], opts: { lab?: LabId; timeoutMs?: number; input?: string } = {}): Promise<LabRunResult> {
  const child = labExec(site, argv, { lab: opts.lab, stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  return collectOutput(child, opts);
}
