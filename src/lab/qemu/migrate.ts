// Drives one live migration over QMP and reads QEMU's own account of it: set both ends'
// capabilities and parameters, start the destination listening, `migrate` the source, poll
// `query-migrate` until QEMU completes, fails, or the cap runs out (then `migrate_cancel`),
// and wait until the destination runs the guest.

import { setTimeout as sleep } from 'node:timers/promises';
import type { QemuVm } from './vm.ts';
import { effectiveMultifdChannels, UNTHROTTLED_BYTES_PER_SEC, type QemuSettings } from './settings.ts';

const POLL_MS = 100;
/** How long the destination may take to run the guest after the source says completed. */
const DESTINATION_RUNNING_TIMEOUT_MS = 30_000;
/** After the destination dies, how long the source may take to notice (its socket errors). */
const SOURCE_NOTICES_MS = 15_000;

/** The parts of `query-migrate`'s answer the lab reports (QEMU 7.2 names). */
export interface QueryMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: {
    transferred?: number;
    total?: number;
    remaining?: number;
    duplicate?: number;
    normal?: number;
    'dirty-sync-count'?: number;
    'multifd-bytes'?: number;
    'precopy-bytes'?: number;
    'downtime-bytes'?: number;
  };
}

export type MigrationStatus = 'completed' | 'failed' | 'capped';

export interface MigrationOutcome {
  status: MigrationStatus;
  /** From `migrate` until the destination runs the guest (completed), or until it ended. */
  seconds: number;
  /** The source's last `query-migrate`. */
  info: QueryMigrate;
  error?: string;
}

export interface MigrateOptions {
  /** Where the source connects (the destination's port, directly or through a tunnel). */
  host: string;
  port: number;
  /** Where the destination listens. */
  listenHost: string;
  capSeconds: number;
  onProgress?: (bytes: number, seconds: number) => void;
  /** Fault injection for tests: kill the destination once the source has sent this many bytes. */
  cutAfterBytes?: number;
}

function capabilities(s: QemuSettings): Array<{ capability: string; state: boolean }> {
  return [{ capability: 'multifd', state: effectiveMultifdChannels(s) > 0 }];
}

function channelParameters(s: QemuSettings): Record<string, unknown> {
  const n = effectiveMultifdChannels(s);
  return n > 0 ? { 'multifd-channels': n, 'multifd-compression': s.compression } : {};
}

/** Sets up the destination to receive and starts it listening. */
export async function listenForMigration(dst: QemuVm, s: QemuSettings, listenHost: string, port: number): Promise<void> {
  await dst.qmp.execute('migrate-set-capabilities', { capabilities: capabilities(s) });
  const params = channelParameters(s);
  if (Object.keys(params).length > 0) await dst.qmp.execute('migrate-set-parameters', params);
  await dst.qmp.execute('migrate-incoming', { uri: `tcp:${listenHost}:${port}` });
}

async function queryMigrate(vm: QemuVm): Promise<QueryMigrate> {
  return vm.qmp.execute<QueryMigrate>('query-migrate', undefined, 10_000);
}

/** Migrates src to dst (which listens already); never throws for a migration that fails. */
export async function migrate(src: QemuVm, dst: QemuVm, s: QemuSettings, opts: MigrateOptions): Promise<MigrationOutcome> {
  await src.qmp.execute('migrate-set-capabilities', { capabilities: capabilities(s) });
  await src.qmp.execute('migrate-set-parameters', {
    'max-bandwidth': UNTHROTTLED_BYTES_PER_SEC,
    'downtime-limit': s.downtimeLimitMs,
    ...channelParameters(s),
  });
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  await src.qmp.execute('migrate', { uri: `tcp:${opts.host}:${opts.port}` });
  let info: QueryMigrate = {};
  let destinationDiedAt: number | null = null;
  let cut = false;
  const maxPolls = Math.ceil((opts.capSeconds * 1000) / POLL_MS) + Math.ceil(SOURCE_NOTICES_MS / POLL_MS) + 10;
  for (let i = 0; i < maxPolls; i++) {
    const now = await queryMigrate(src);
    // A failed or cancelled migration's answer has no RAM counters: keep the last ones seen,
    // so the result still says what was sent.
    info = now.ram === undefined && info.ram !== undefined ? { ...info, ...now, ram: info.ram } : now;
    const sent = info.ram?.transferred ?? 0;
    opts.onProgress?.(sent, elapsed());
    if (info.status === 'completed') break;
    if (info.status === 'failed' || info.status === 'cancelled') {
      return {
        status: 'failed',
        seconds: elapsed(),
        info,
        error: `QEMU: migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}${dst.exited ? ` (destination QEMU exited: ${dst.exited})` : ''}`,
      };
    }
    if (opts.cutAfterBytes !== undefined && !cut && sent >= opts.cutAfterBytes && dst.pid !== undefined) {
      cut = true;
      process.kill(dst.pid, 'SIGKILL');
    }
    if (dst.exited !== null && destinationDiedAt === null) destinationDiedAt = performance.now();
    if (destinationDiedAt !== null && performance.now() - destinationDiedAt > SOURCE_NOTICES_MS) {
      await src.qmp.execute('migrate_cancel').catch(() => {});
      return {
        status: 'failed',
        seconds: elapsed(),
        info,
        error: `destination QEMU exited (${dst.exited}) and the source still says ${info.status}`,
      };
    }
    if (elapsed() > opts.capSeconds) {
      await src.qmp.execute('migrate_cancel').catch(() => {});
      return { status: 'capped', seconds: elapsed(), info };
    }
    await sleep(POLL_MS);
  }
  if (info.status !== 'completed') {
    await src.qmp.execute('migrate_cancel').catch(() => {});
    return { status: 'capped', seconds: elapsed(), info };
  }
  // The source is done; the guest is back when the destination runs it.
  const deadline = performance.now() + DESTINATION_RUNNING_TIMEOUT_MS;
  let last = '';
  while (performance.now() < deadline) {
    if (dst.exited !== null)
      return { status: 'failed', seconds: elapsed(), info, error: `destination QEMU exited (${dst.exited}) after the source completed` };
    const st = await dst.qmp
      .execute<{ status: string; running: boolean }>('query-status', undefined, 5_000)
      .catch((e: unknown) => ({ status: String(e), running: false }));
    last = st.status;
    if (st.running) return { status: 'completed', seconds: elapsed(), info };
    await sleep(20);
  }
  return {
    status: 'failed',
    seconds: elapsed(),
    info,
    error: `source completed but the destination did not run within ${DESTINATION_RUNNING_TIMEOUT_MS} ms (status ${last})`,
  };
}
