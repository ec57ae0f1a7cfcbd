// The emulator's report: one JSON object, the same for both engines, written to the stats
// file (atomically, so readers never see half a file) and printed as a stdout line.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { DirectionStats, LinkSettings } from './emulator-link.ts';

export type EmulatorEngine = 'ts' | 'native';

export interface EmulatorReport {
  engine: EmulatorEngine;
  profile: string;
  link: LinkSettings;
  ports: number[];
  pid: number;
  startedAt: string;
  uptimeMs: number;
  /** False only in the last report, written while shutting down. */
  running: boolean;
  aToB: DirectionStats;
  bToA: DirectionStats;
  /** Datagrams the kernel refused to send (e.g. buffer full); the link model counted them as delivered. */
  sendErrors: number;
  /**
   * SIGUSR1 requests the process had received when this snapshot was asked for: a requester
   * waits for one above what it saw before signalling, so a periodic snapshot asked for
   * earlier (and written later) is not taken for its answer.
   */
  requestsSeen?: number;
}

export function writeStatsFile(path: string, report: EmulatorReport): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(report)}\n`);
  renameSync(tmp, path);
}

export function readStatsFile(path: string): EmulatorReport | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as EmulatorReport;
  } catch {
    return undefined;
  }
}
