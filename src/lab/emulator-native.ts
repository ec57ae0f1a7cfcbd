// Native datapath driver: runs native/build/lh-emud (C, recvmmsg/sendmmsg, one epoll
// timeout) with the same link model and seeds as the TS engine, and turns its JSON lines into
// EmulatorReports. Built on first use if missing (make + a C compiler), else unavailable.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EmulatorConfig } from './emulator-config.ts';
import type { DirectionStats } from './emulator-link.ts';
import type { EmulatorHandle } from './emulator.ts';
import type { EmulatorReport } from './emulator-stats.ts';

const NATIVE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native');
export const NATIVE_BINARY = join(NATIVE_DIR, 'build', 'lh-emud');
const SOURCE = join(NATIVE_DIR, 'lh-emud.c');

let buildTried = false;

/** True when the binary exists and is current; tries one build if it is not. */
export function nativeEmulatorAvailable(): boolean {
  const fresh = (): boolean =>
    existsSync(NATIVE_BINARY) && (!existsSync(SOURCE) || statSync(NATIVE_BINARY).mtimeMs >= statSync(SOURCE).mtimeMs);
  if (fresh()) return true;
  if (!buildTried) {
    buildTried = true;
    spawnSync('make', ['-s', '-C', NATIVE_DIR], { stdio: 'ignore' });
  }
  return fresh();
}

interface NativeStatsLine {
  type: 'stats';
  final: boolean;
  uptimeMs: number;
  aToB: DirectionStats;
  bToA: DirectionStats;
  sendErrors: number;
  oversizeDrops: number;
}

export function nativeArgs(config: EmulatorConfig): string[] {
  const l = config.link;
  const args = [
    `rate_bps=${l.rateBps}`,
    `rtt_ms=${l.rttMs}`,
    `loss=${l.lossRate}`,
    `jitter_ms=${l.jitterMs}`,
    `queue_bytes=${l.queueBytes}`,
    `reorder=${l.reorder ? 1 : 0}`,
    `seed=${config.seed >>> 0}`,
    `a_listen=${config.a.listen}`,
    `a_peer=${config.a.peer}`,
    `b_listen=${config.b.listen}`,
    `b_peer=${config.b.peer}`,
    ...config.ports.map((p) => `port=${p}`),
  ];
  if (l.outage !== undefined) args.push(`outage_ms=${l.outage.startMs}-${l.outage.endMs}`);
  return args;
}

export async function startNativeEmulator(config: EmulatorConfig): Promise<EmulatorHandle> {
  if (!nativeEmulatorAvailable()) throw new Error(`native emulator not built (${NATIVE_BINARY}); run: make -C native`);
  const child = spawn(NATIVE_BINARY, nativeArgs(config), { stdio: ['pipe', 'pipe', 'pipe'] });
  const startedAt = new Date().toISOString();
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    process.stderr.write(d);
  });
  const waiting: ((line: NativeStatsLine) => void)[] = [];
  let last: NativeStatsLine | undefined;
  let ready: (() => void) | undefined;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let msg: { type?: string };
    try {
      msg = JSON.parse(text) as { type?: string };
    } catch {
      return;
    }
    if (msg.type === 'ready') ready?.();
    else if (msg.type === 'stats') {
      last = msg as NativeStatsLine;
      for (const w of waiting.splice(0)) w(last);
    }
  });
  await Promise.race([
    new Promise<void>((resolve) => {
      ready = resolve;
    }),
    exited.then((code) => {
      throw new Error(`native emulator exited (${code}): ${stderr.trim()}`);
    }),
  ]);

  const toReport = (s: NativeStatsLine | undefined, running: boolean): EmulatorReport => ({
    engine: 'native',
    profile: config.profileName,
    link: config.link,
    ports: config.ports,
    pid: child.pid ?? -1,
    startedAt,
    uptimeMs: s?.uptimeMs ?? 0,
    running,
    aToB: s?.aToB ?? zero(),
    bToA: s?.bToA ?? zero(),
    sendErrors: (s?.sendErrors ?? 0) + (s?.oversizeDrops ?? 0),
  });
  let stopped = false;
  const request = (cmd: string): Promise<NativeStatsLine | undefined> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(last);
      waiting.push(resolve);
      child.stdin!.write(cmd);
      void exited.then(() => resolve(last));
    });

  const failed = exited.then(
    (code) =>
      new Promise<Error>((resolve) => {
        if (!stopped) resolve(new Error(`native datapath exited unexpectedly (${code}): ${stderr.trim()}`));
      }),
  );
  return {
    failed,
    report: async () => toReport(stopped ? last : await request('s'), !stopped),
    stop: async () => {
      if (!stopped) {
        stopped = true;
        await request('q');
        await exited;
      }
      return toReport(last, false);
    },
  };
}

function zero(): DirectionStats {
  return { packetsIn: 0, bytesIn: 0, lost: 0, outageDrops: 0, queueDrops: 0, delivered: 0, bytesDelivered: 0, maxQueueBytes: 0 };
}
