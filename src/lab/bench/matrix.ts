// What the benchmark runs: methods, workloads, defaults, and the per-run time cap.

import { REPORT_PROFILES, type LinkProfile } from '../../link/profiles.ts';
import { PAGE_SIZE, type PayloadKind } from '../workloads/payload.ts';
import {
  DEFAULT_DIRTY_PAGES_PER_SEC,
  DEFAULT_DOWNTIME_BUDGET_MS,
  DEFAULT_MAX_ROUNDS,
  simulateMigration,
} from '../workloads/migration-model.ts';

export const METHODS = ['tcp-cubic', 'tcp-bbr', 'tcp-64k', 'kcptun', 'longhaul'] as const;
export type Method = (typeof METHODS)[number];
export const WORKLOADS = ['migration', 'bulk', 'qemu'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const METHOD_DOC: Record<Method, string> = {
  'tcp-cubic': 'plain TCP through the VXLAN overlay, CUBIC (namespace default)',
  'tcp-bbr': 'plain TCP through the VXLAN overlay, BBR',
  'tcp-64k': 'plain TCP, CUBIC, window scaling off and 64 KB socket buffers (the legacy stack)',
  kcptun: 'kcptun (Debian package) fast mode, 1024-packet windows, its default compression',
  longhaul: 'a Longhaul gateway pair (split TCP, rate-based UDP transport, compression)',
};

export function isMethod(x: string): x is Method {
  return (METHODS as readonly string[]).includes(x);
}
export function isWorkload(x: string): x is Workload {
  return (WORKLOADS as readonly string[]).includes(x);
}

// The report migrated a whole VM, so the default is 1 GiB of VM memory. With the 180 s cap the
// matrix (5 profiles x 5 methods) takes about 25 minutes on the 2-core lab machine; loss-bound
// TCP on metro and mpls is capped there (speed-ups over it become lower bounds): `--cap 900`
// measures it in full, `--bytes 128MiB` gives a ~10 minute look.
export const DEFAULT_BYTES = 2 ** 30;
export const DEFAULT_MAX_CAP_SECONDS = 180;
/** No run gets less than this, however fast the link: start-up and slow start need room. */
export const MIN_CAP_SECONDS = 30;
/**
 * A run may take this many times its ideal (full link rate, no compression) time: the
 * report's plain TCP took 41x its baseline time on mpls, so 60x leaves a loss-bound TCP room.
 */
const CAP_FACTOR = 60;

export interface BenchCell {
  profile: LinkProfile;
  method: Method;
  workload: Workload;
  payload: PayloadKind;
  bytes: number;
}

export interface MigrationSettings {
  dirtyPagesPerSec: number;
  downtimeBudgetMs: number;
  maxRounds: number;
}

export const DEFAULT_MIGRATION: MigrationSettings = {
  dirtyPagesPerSec: DEFAULT_DIRTY_PAGES_PER_SEC,
  downtimeBudgetMs: DEFAULT_DOWNTIME_BUDGET_MS,
  maxRounds: DEFAULT_MAX_ROUNDS,
};

/** Seconds the cell would take at the full link rate without compression (a lower bound for TCP). */
export function idealSeconds(cell: BenchCell, migration: MigrationSettings = DEFAULT_MIGRATION): number {
  const bytesPerSec = cell.profile.rateBps / 8;
  const rtt = cell.profile.rttMs / 1000;
  if (cell.workload === 'bulk') return cell.bytes / bytesPerSec + rtt;
  const outcome = simulateMigration(
    { memoryPages: Math.ceil(cell.bytes / PAGE_SIZE), ...migration },
    (pages) => (pages * PAGE_SIZE) / bytesPerSec + rtt,
  );
  return outcome.seconds;
}

export function capSeconds(cell: BenchCell, maxCap = DEFAULT_MAX_CAP_SECONDS, migration: MigrationSettings = DEFAULT_MIGRATION): number {
  return Math.min(maxCap, Math.max(MIN_CAP_SECONDS, Math.ceil(CAP_FACTOR * idealSeconds(cell, migration))));
}

export function buildMatrix(opts: {
  profiles?: readonly LinkProfile[];
  methods?: readonly Method[];
  workload: Workload;
  payload: PayloadKind;
  bytes: number;
}): BenchCell[] {
  const cells: BenchCell[] = [];
  for (const profile of opts.profiles ?? REPORT_PROFILES) {
    for (const method of opts.methods ?? METHODS) {
      cells.push({ profile, method, workload: opts.workload, payload: opts.payload, bytes: opts.bytes });
    }
  }
  return cells;
}
