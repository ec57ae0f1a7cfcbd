// Runs benchmark cells in the lab: link profile, sink in site B, the method's path, the
// workload client in site A, emulator counters before and after. One result per cell,
// capped or failed runs included.

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { DEFAULT_LAB, labExec, labUp, labDown, readLabState, requestEmulatorStats, setLinkProfile, type LabId } from '../netns.ts';
import type { EmulatorReport } from '../emulator-stats.ts';
import type { WorkloadResult } from '../workloads/clients.ts';
import { capSeconds, DEFAULT_MIGRATION, MIN_CAP_SECONDS, type BenchCell, type Method, type MigrationSettings } from './matrix.ts';
import { methodUnavailable, setUpMethod, stopProcess, type MethodPath } from './methods.ts';
import { clockTicksPerSecond, cpuDelta, takeCpuSnapshot } from './cpu-accounting.ts';
import { linkFloorSeconds } from './limits.ts';
import type { QemuRunFigures } from '../qemu/figures.ts';
import { PERF_NODE_FLAGS, startPerfRecord, stopPerfRecord } from './perf-record.ts';

const WORKLOAD_MAIN = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'workloads/run.ts');
export const SINK_PORT = 5201;
export const TUNNELS: ReadonlySet<Method> = new Set(['kcptun', 'longhaul']);
export const WARM_UP_BYTES = 64 * 1024;
/** Extra time the bench grants a client past its own cap before killing it. */
const CLIENT_GRACE_MS = 15_000;

export interface BenchResult {
  profile: string;
  method: Method;
  workload: string;
  payload: string;
  /** Payload bytes the sink confirmed (all, unless capped or failed; migration: memory plus re-sent pages). */
  bytes: number;
  /** The size asked for: bulk bytes, or the VM's memory for migration. */
  size_bytes?: number;
  migration?: MigrationSettings;
  /** `qemu` workload: the guest, QEMU's own figures and how the destination was checked. */
  qemu?: QemuRunFigures;
  planned_bytes: number;
  seconds: number;
  goodput_mbps: number;
  /** Bytes the emulator delivered A -> B on the underlay (headers of the UDP payload excluded). */
  wire_bytes: number;
  wire_bytes_reverse: number;
  /** Underlay packets lost / queue-dropped in the emulator, A -> B. */
  wire_lost: number;
  wire_queue_drops: number;
  /** Datagrams the emulator delivered A -> B and B -> A (absent in results before 2026-11-26). */
  wire_packets?: number;
  wire_packets_reverse?: number;
  /** The profile's link rate per direction (0: unlimited). */
  link_rate_bps?: number;
  /**
   * The shortest time the link allows for the bytes that crossed it A -> B (payload plus 28
   * bytes of IP/UDP headers per datagram, as the emulator serializes them); null if unlimited.
   */
  link_floor_seconds?: number | null;
  /**
   * CPU seconds per process of the run while the workload ran (gateway_a/b, kcptun_client/
   * server, emulator incl. its native child, sink; client: its whole life, self-reported);
   * null where a process could not be read.
   */
  cpu_seconds?: Record<string, number | null>;
  /** Busy share of all the machine's cores during the workload (from /proc/stat), 0..1. */
  machine_busy?: number | null;
  /** Busy CPU seconds of the whole machine during the workload (every process, the kernel too). */
  machine_cpu_seconds?: number | null;
  capped: boolean;
  cap_seconds: number;
  /** The emulator's engine (native C datapath or TypeScript). */
  emulator?: string;
  /** Longhaul: gateway A's status after the run (RTT, bandwidth estimate, loss, codec). */
  gateway_a?: Record<string, unknown>;
  /** Longhaul: gateway B's event-loop and socket counters after the run. */
  gateway_b?: Record<string, unknown>;
  verified: boolean;
  rounds?: number;
  downtime_ms?: number;
  stop_reason?: string;
  notes: string;
  error?: string;
  skipped?: string;
  /** Tunnels: bytes carried before the clock started (see RunOptions.tunnelWarmUpBytes). */
  tunnel_warm_up_bytes?: number;
  date: string;
}

export interface RunOptions {
  lab?: LabId;
  maxCapSeconds?: number;
  migration?: MigrationSettings;
  seed?: number;
  /** Extra flags for both gateways (e.g. ['--compression', 'off']). */
  longhaulFlags?: string[];
  /** Extra node/V8 flags for the gateways (A/B runs of V8 settings). */
  gatewayNodeFlags?: string[];
  onProgress?: (cell: BenchCell, ackedBytes: number, seconds: number) => void;
  workDir?: string;
  /** Record a CPU profile (`perf record -g`) of the method's processes while the workload runs, into this folder. */
  perfDir?: string;
  /**
   * Bytes carried through a tunnel (Longhaul, kcptun) before the clock starts; default
   * WARM_UP_BYTES, which only opens the session, so a run measures the first transfer after the
   * gateways started. More measures gateways that have carried traffic before (a long-running
   * one): V8 has then compiled the datapath for this path's objects, and the rate controller's
   * model of the path is full (datapath §19).
   */
  tunnelWarmUpBytes?: number;
}

/** The sink in site B; resolves once it listens. (The client checks its count and hash.) */
export async function startSinkProcess(lab: LabId): Promise<ChildProcess> {
  const child = labExec('b', [process.execPath, WORKLOAD_MAIN, 'sink', '--port', String(SINK_PORT)], {
    lab,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`sink did not start: ${stderr.trim()}`)), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`sink exited (${code}): ${stderr.trim()}`));
    });
    lines.on('line', (line) => {
      const m = parseJsonLine(line);
      if (m?.type === 'listening') {
        clearTimeout(timer);
        ready();
      }
    });
  });
  return child;
}

function clientArgs(cell: BenchCell, path: MethodPath, cap: number, opts: RunOptions): string[] {
  const args = [
    process.execPath,
    WORKLOAD_MAIN,
    cell.workload,
    '--host',
    path.host,
    '--port',
    String(path.port),
    '--payload',
    cell.payload,
    '--seed',
    String(opts.seed ?? 1),
    '--cap',
    String(cap),
    '--progress',
  ];
  if (cell.workload === 'bulk') return [...args, '--bytes', String(cell.bytes)];
  const m = opts.migration ?? DEFAULT_MIGRATION;
  return [
    ...args,
    '--memory',
    String(cell.bytes),
    '--dirty-rate',
    String(m.dirtyPagesPerSec),
    '--downtime',
    String(m.downtimeBudgetMs),
    '--max-rounds',
    String(m.maxRounds),
  ];
}

// What an interrupted bench must stop: processes and method paths of the run in progress.
export const active = new Set<() => Promise<void>>();

/** Stops whatever runs are in progress (for SIGINT): client, method path, sink. */
export async function stopActiveRuns(): Promise<void> {
  const all = [...active];
  active.clear();
  await Promise.all(all.map((stop) => stop().catch(() => {})));
}

/** Bytes a tunnel carries before a run's clock starts. */
function tunnelWarmUpBytes(opts: RunOptions): number {
  return opts.tunnelWarmUpBytes ?? WARM_UP_BYTES;
}

/** Opens a tunnel's session with a verified transfer (tunnelWarmUpBytes: WARM_UP_BYTES unless asked) before a run's clock starts. */
export async function warmUpTunnel(cell: BenchCell, path: MethodPath, opts: RunOptions, lab: LabId): Promise<void> {
  const warm = await runClient(
    { ...cell, workload: 'bulk', bytes: tunnelWarmUpBytes(opts) },
    path,
    MIN_CAP_SECONDS,
    { ...opts, onProgress: undefined },
    lab,
  );
  if (!warm.verified) throw new Error(`warm-up through ${cell.method} failed: ${warm.error ?? (warm.capped ? 'capped' : 'not verified')}`);
}

export async function runClient(cell: BenchCell, path: MethodPath, cap: number, opts: RunOptions, lab: LabId): Promise<WorkloadResult> {
  const child = labExec('a', clientArgs(cell, path, cap, opts), { lab, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => stopProcess(child);
  active.add(stop);
  child.once('close', () => active.delete(stop));
  let stderr = '';
  let result: WorkloadResult | undefined;
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const m = parseJsonLine(line);
    if (!m) return;
    if (m.type === 'progress') opts.onProgress?.(cell, Number(m.bytes), Number(m.seconds));
    if (m.type === 'result') result = m as unknown as WorkloadResult;
  });
  // The client enforces its cap itself; this only catches a client that hangs.
  const killer = setTimeout(() => child.kill('SIGKILL'), cap * 1000 + CLIENT_GRACE_MS);
  await new Promise<void>((done) => child.once('close', () => done()));
  clearTimeout(killer);
  if (result === undefined)
    throw new Error(`workload client gave no result (exit ${child.exitCode ?? child.signalCode}): ${stderr.trim().slice(-500)}`);
  return result;
}

export function wireDelta(after: EmulatorReport | undefined, before: EmulatorReport | undefined) {
  const a = after?.aToB,
    b = after?.bToA,
    a0 = before?.aToB,
    b0 = before?.bToA;
  return {
    wire_bytes: (a?.bytesDelivered ?? 0) - (a0?.bytesDelivered ?? 0),
    wire_bytes_reverse: (b?.bytesDelivered ?? 0) - (b0?.bytesDelivered ?? 0),
    wire_lost: (a?.lost ?? 0) - (a0?.lost ?? 0),
    wire_queue_drops: (a?.queueDrops ?? 0) - (a0?.queueDrops ?? 0),
    wire_packets: (a?.delivered ?? 0) - (a0?.delivered ?? 0),
    wire_packets_reverse: (b?.delivered ?? 0) - (b0?.delivered ?? 0),
  };
}

export function emptyResult(cell: BenchCell, cap: number, notes: string, opts: RunOptions): BenchResult {
  return {
    profile: cell.profile.name,
    method: cell.method,
    workload: cell.workload,
    payload: cell.payload,
    size_bytes: cell.bytes,
    ...(cell.workload === 'migration' ? { migration: opts.migration ?? DEFAULT_MIGRATION } : {}),
    bytes: 0,
    planned_bytes: cell.bytes,
    seconds: 0,
    goodput_mbps: 0,
    wire_bytes: 0,
    wire_bytes_reverse: 0,
    wire_lost: 0,
    wire_queue_drops: 0,
    capped: false,
    cap_seconds: cap,
    verified: false,
    notes,
    ...(TUNNELS.has(cell.method) ? { tunnel_warm_up_bytes: tunnelWarmUpBytes(opts) } : {}),
    date: new Date().toISOString(),
  };
}

/** One cell in a lab that is up. Never throws for a failing method: the result says why. */
export async function runCell(cell: BenchCell, opts: RunOptions = {}): Promise<BenchResult> {
  const lab = opts.lab ?? DEFAULT_LAB;
  const cap = capSeconds(cell, opts.maxCapSeconds, opts.migration);
  const unavailable = methodUnavailable(cell.method);
  if (unavailable !== null) return { ...emptyResult(cell, cap, '', opts), skipped: unavailable };
  const workDir = opts.workDir ?? join(tmpdir(), `longhaul-bench-${lab.prefix}`);
  mkdirSync(workDir, { recursive: true });
  let path: MethodPath | undefined;
  let stopSink: (() => Promise<void>) | undefined;
  let tearDownPath: (() => Promise<void>) | undefined;
  try {
    // A fresh emulator per run: empty queues, counters from zero, nothing left from the last run.
    await setLinkProfile(cell.profile, { lab });
    const sinkChild = await startSinkProcess(lab);
    stopSink = () => stopProcess(sinkChild);
    active.add(stopSink);
    path = await setUpMethod(
      cell.method,
      {
        lab,
        sinkPort: SINK_PORT,
        workDir,
        nodeFlags: [...(opts.perfDir !== undefined ? PERF_NODE_FLAGS : []), ...(opts.gatewayNodeFlags ?? [])],
      },
      opts.longhaulFlags,
    );
    tearDownPath = path.tearDown;
    active.add(tearDownPath);
    if (TUNNELS.has(cell.method)) {
      // Deployed tunnels keep their session up: open it (handshake, association) before the
      // clock starts, with a small transfer, so the run measures moving data, not set-up.
      await warmUpTunnel(cell, path, opts, lab);
    }
    const before = await requestEmulatorStats(lab);
    // Every process of the run but the client, which starts inside and reports its own CPU.
    const pids = { ...path.processes, emulator: readLabState(lab)?.emulator?.pid, sink: sinkChild.pid };
    const cpuBefore = takeCpuSnapshot(pids);
    const perf = opts.perfDir !== undefined ? startPerfRecord(opts.perfDir, cell, path.processes ?? {}) : null;
    const r = await runClient(cell, path, cap, opts, lab);
    const cpuAfter = takeCpuSnapshot(pids);
    if (perf !== null) await stopPerfRecord(perf);
    const after = await requestEmulatorStats(lab);
    const snapshot = await path.snapshot?.().catch((e: unknown) => ({ error: String(e) }));
    const peerSnapshot = await path.peerSnapshot?.().catch((e: unknown) => ({ error: String(e) }));
    const wire = wireDelta(after, before);
    const cpu = cpuDelta(cpuBefore, cpuAfter, clockTicksPerSecond());
    const out: BenchResult = {
      ...emptyResult(cell, cap, path.notes, opts),
      bytes: r.bytes,
      planned_bytes: r.plannedBytes,
      seconds: r.seconds,
      goodput_mbps: r.goodput_mbps,
      ...wire,
      capped: r.capped,
      verified: r.verified,
      link_rate_bps: cell.profile.rateBps,
      link_floor_seconds: linkFloorSeconds(wire.wire_bytes, wire.wire_packets, cell.profile.rateBps),
      cpu_seconds: { ...cpu.cpu_seconds, client: typeof r.cpu_seconds === 'number' ? r.cpu_seconds : null },
      machine_busy: cpu.machine_busy,
      machine_cpu_seconds: cpu.machine_cpu_seconds,
    };
    if (after?.engine !== undefined) out.emulator = after.engine;
    if (snapshot !== undefined) out.gateway_a = snapshot;
    if (peerSnapshot !== undefined) out.gateway_b = peerSnapshot;
    if (r.rounds !== undefined) out.rounds = r.rounds;
    if (r.downtime_ms !== undefined) out.downtime_ms = r.downtime_ms;
    if (r.stop_reason !== undefined) out.stop_reason = r.stop_reason;
    if (r.error !== undefined) out.error = r.error;
    return out;
  } catch (e) {
    return { ...emptyResult(cell, cap, path?.notes ?? '', opts), error: e instanceof Error ? e.message : String(e) };
  } finally {
    if (tearDownPath) {
      active.delete(tearDownPath);
      await tearDownPath().catch(() => {});
    }
    if (stopSink) {
      active.delete(stopSink);
      await stopSink();
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Brings the lab up unless one is already up; the returned function undoes only what this did. */
export async function ensureLab(lab: LabId = DEFAULT_LAB): Promise<() => Promise<void>> {
  const pid = readLabState(lab)?.emulator?.pid;
  if (pid !== undefined && alive(pid)) return async () => {};
  await labUp({ lab, congestionControl: 'cubic' });
  return async () => {
    await labDown({ lab });
  };
}

/** One JSON object per line from a workload process; anything else (a stray log line) is skipped. */
function parseJsonLine(line: string): Record<string, unknown> | undefined {
  try {
    const m: unknown = JSON.parse(line);
    return typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
