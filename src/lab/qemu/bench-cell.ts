// One `--workload qemu` cell of the bench: a real QEMU live migration from site A to site B
// through the cell's method and link profile, verified on the destination.
//
//  1. A fresh emulator with the cell's profile; the method's path (sysctls, kcptun or a
//     gateway pair). Tunnels are opened with a small transfer to the bench's sink first (as in
//     the other workloads), then the sink makes way for the destination QEMU on its port.
//  2. The source QEMU boots the guest in site A; lh-guestload fills memory and says ready.
//  3. The destination QEMU starts in site B (`-incoming defer`) and listens on the sink port.
//  4. Emulator counters and CPU ticks are read, QEMU migrates (migrate.ts), they are read again.
//  5. A completed migration is verified on the destination (guest-check.ts); only a verified
//     run has a time. Both QEMUs are stopped and the path torn down whatever happened.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { DEFAULT_LAB, readLabState, requestEmulatorStats, setLinkProfile } from '../netns.ts';
import { capSeconds, DEFAULT_MIGRATION, type BenchCell } from '../bench/matrix.ts';
import { methodUnavailable, setUpMethod, stopProcess, type MethodPath } from '../bench/methods.ts';
import { clockTicksPerSecond, cpuDelta, takeCpuSnapshot } from '../bench/cpu-accounting.ts';
import { linkFloorSeconds } from '../bench/limits.ts';
import {
  active,
  emptyResult,
  SINK_PORT,
  startSinkProcess,
  TUNNELS,
  warmUpTunnel,
  wireDelta,
  type BenchResult,
  type RunOptions,
} from '../bench/runner.ts';
import { ensureGuestImage, guestUnavailable } from './guest-image.ts';
import { QemuVm } from './vm.ts';
import { listenForMigration, migrate, type MigrationOutcome } from './migrate.ts';
import { heartbeatSeq, verifyOnDestination, waitReady, type GuestReady, type Verification } from './guest-check.ts';
import { DEFAULT_QEMU, describeQemu, type QemuSettings } from './settings.ts';
import type { QemuRunFigures } from './figures.ts';

export interface QemuRunOptions extends RunOptions {
  qemu?: QemuSettings;
  /** Fault injection (tests): kill the destination QEMU once the source has sent this many bytes. */
  cutAfterBytes?: number;
}

let qemuVersion: string | undefined;
function readQemuVersion(): string {
  try {
    qemuVersion ??= execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    qemuVersion = 'unknown';
  }
  return qemuVersion;
}

function figures(
  s: QemuSettings,
  outcome: MigrationOutcome | null,
  verification: Verification | null,
  ready: GuestReady | null,
  kernel: string | undefined,
  fallback: string,
): QemuRunFigures {
  const i = outcome?.info;
  const n = (x: number | undefined) => (typeof x === 'number' ? x : null);
  return {
    settings: s,
    status: outcome?.status ?? 'not started',
    total_time_ms: n(i?.['total-time']),
    setup_time_ms: n(i?.['setup-time']),
    transferred_bytes: n(i?.ram?.transferred),
    multifd_bytes: n(i?.ram?.['multifd-bytes']),
    ram_total_bytes: n(i?.ram?.total),
    zero_pages: n(i?.ram?.duplicate),
    normal_pages: n(i?.ram?.normal),
    dirty_sync_count: n(i?.ram?.['dirty-sync-count']),
    ...(ready ? { filled_pages: ready.pages, filled_classes: ready.classes, guest_mem_total_kib: ready.totalKiB } : {}),
    ...(verification?.bad_pages !== undefined ? { bad_pages: verification.bad_pages } : {}),
    ...(verification?.verify_ms !== undefined ? { verify_ms: verification.verify_ms } : {}),
    verification: verification?.detail ?? fallback,
    ...(kernel ? { kernel_package: kernel } : {}),
    qemu_version: readQemuVersion(),
  };
}

/** One cell in a lab that is up. Never throws for a failing run: the result says why. */
export async function runQemuCell(cell: BenchCell, opts: QemuRunOptions = {}): Promise<BenchResult> {
  const lab = opts.lab ?? DEFAULT_LAB;
  const s: QemuSettings = { ...(opts.qemu ?? DEFAULT_QEMU), memoryMiB: Math.round(cell.bytes / 2 ** 20) };
  // The cap comes from the model's ideal time for this guest's size, dirty rate and downtime.
  const migration = { ...(opts.migration ?? DEFAULT_MIGRATION), dirtyPagesPerSec: s.dirtyPagesPerSec, downtimeBudgetMs: s.downtimeLimitMs };
  const cap = capSeconds(cell, opts.maxCapSeconds, migration);
  const base = (notes: string): BenchResult => ({
    ...emptyResult(cell, cap, notes, opts),
    qemu: figures(s, null, null, null, undefined, 'not run'),
  });
  const unavailable = methodUnavailable(cell.method) ?? guestUnavailable();
  if (unavailable !== null) return { ...base(''), skipped: unavailable };
  const workDir = opts.workDir ?? join(tmpdir(), `longhaul-bench-${lab.prefix}`);
  const vmDir = join(workDir, 'qemu');
  mkdirSync(vmDir, { recursive: true });
  let path: MethodPath | undefined;
  let tearDownPath: (() => Promise<void>) | undefined;
  const vms: QemuVm[] = [];
  const stopVms = async () => {
    await Promise.all(vms.map((vm) => vm.stop().catch(() => {})));
  };
  let kernel: string | undefined;
  let ready: GuestReady | null = null;
  let outcome: MigrationOutcome | null = null;
  let verification: Verification | null = null;
  try {
    const image = ensureGuestImage();
    kernel = image.kernelPackage;
    await setLinkProfile(cell.profile, { lab });
    path = await setUpMethod(cell.method, { lab, sinkPort: SINK_PORT, workDir }, opts.longhaulFlags);
    tearDownPath = path.tearDown;
    active.add(tearDownPath);
    if (TUNNELS.has(cell.method)) {
      // Open the tunnel's session before the clock starts (handshake, association), as the
      // other workloads do, then free the port for the destination QEMU.
      const sink = await startSinkProcess(lab);
      try {
        await warmUpTunnel({ ...cell, payload: 'vm' }, path, opts, lab);
      } finally {
        await stopProcess(sink);
      }
    }
    active.add(stopVms);
    const src = await QemuVm.start('a', lab, image, s, vmDir, 'src', false);
    vms.push(src);
    const srcChannel = await src.control();
    try {
      ready = await waitReady(srcChannel);
      // The guest must be running its dirtying loop before the migration starts.
      await srcChannel.waitFor((m) => m.type === 'hb', 5_000);
      const dst = await QemuVm.start('b', lab, image, s, vmDir, 'dst', true);
      vms.push(dst);
      await listenForMigration(dst, s, '0.0.0.0', SINK_PORT);
      const before = await requestEmulatorStats(lab);
      const pids = { ...path.processes, qemu_src: src.pid, qemu_dst: dst.pid, emulator: readLabState(lab)?.emulator?.pid };
      const cpuBefore = takeCpuSnapshot(pids);
      outcome = await migrate(src, dst, s, {
        host: path.host,
        port: path.port,
        listenHost: '0.0.0.0',
        capSeconds: cap,
        onProgress: (bytes, seconds) => opts.onProgress?.(cell, bytes, seconds),
        ...(opts.cutAfterBytes !== undefined ? { cutAfterBytes: opts.cutAfterBytes } : {}),
      });
      const cpuAfter = takeCpuSnapshot(pids);
      const after = await requestEmulatorStats(lab);
      const snapshot = await path.snapshot?.().catch((e: unknown) => ({ error: String(e) }));
      // The source's last heartbeat before it stopped: the destination's must come after it.
      const lastSourceSeq = heartbeatSeq(srcChannel.lastHeartbeat());
      srcChannel.close();
      if (outcome.status === 'completed') verification = await verifyOnDestination(dst, ready, lastSourceSeq);
      const wire = wireDelta(after, before);
      const cpu = cpuDelta(cpuBefore, cpuAfter, clockTicksPerSecond());
      const sent = outcome.info.ram?.transferred ?? 0;
      const verified = verification?.verified === true;
      const out: BenchResult = {
        ...emptyResult(cell, cap, `${path.notes}; ${describeQemu(s)}`, opts),
        bytes: sent,
        planned_bytes: cell.bytes,
        seconds: outcome.seconds,
        goodput_mbps: outcome.seconds > 0 ? (sent * 8) / outcome.seconds / 1e6 : 0,
        ...wire,
        capped: outcome.status === 'capped',
        verified,
        link_rate_bps: cell.profile.rateBps,
        link_floor_seconds: linkFloorSeconds(wire.wire_bytes, wire.wire_packets, cell.profile.rateBps),
        cpu_seconds: cpu.cpu_seconds,
        machine_busy: cpu.machine_busy,
        machine_cpu_seconds: cpu.machine_cpu_seconds,
        qemu: figures(s, outcome, verification, ready, kernel, outcome.status === 'capped' ? 'capped: not verified' : 'not verified'),
      };
      if (after?.engine !== undefined) out.emulator = after.engine;
      if (snapshot !== undefined) out.gateway_a = snapshot;
      const rounds = outcome.info.ram?.['dirty-sync-count'];
      if (rounds !== undefined) out.rounds = rounds;
      if (outcome.info.downtime !== undefined) out.downtime_ms = outcome.info.downtime;
      out.stop_reason = outcome.status;
      if (outcome.error !== undefined) out.error = outcome.error;
      else if (outcome.status === 'completed' && !verified) out.error = `not verified: ${verification?.detail ?? 'no verification'}`;
      return out;
    } finally {
      srcChannel.close();
    }
  } catch (e) {
    return {
      ...emptyResult(cell, cap, path?.notes ?? '', opts),
      qemu: figures(s, outcome, verification, ready, kernel, 'run failed before verification'),
      error: e instanceof Error ? e.message : String(e),
    };
  } finally {
    active.delete(stopVms);
    await stopVms();
    if (tearDownPath) {
      active.delete(tearDownPath);
      await tearDownPath().catch(() => {});
    }
  }
}
