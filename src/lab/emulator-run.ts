// Runs an emulator as a process: picks the engine, reports (stats file periodically, on
// SIGUSR1 and at exit; stdout JSON lines), and stops cleanly on SIGTERM/SIGINT or after
// the configured duration.

import type { EmulatorConfig } from './emulator-config.ts';
import { startTsEmulator, type EmulatorHandle } from './emulator.ts';
import { writeStatsFile, type EmulatorEngine, type EmulatorReport } from './emulator-stats.ts';

export type EngineChoice = EmulatorEngine | 'auto';

export async function startEmulator(config: EmulatorConfig, engine: EngineChoice): Promise<EmulatorHandle> {
  if (engine === 'ts') return startTsEmulator(config);
  const { nativeEmulatorAvailable, startNativeEmulator } = await import('./emulator-native.ts');
  if (engine === 'native' || nativeEmulatorAvailable()) return startNativeEmulator(config);
  return startTsEmulator(config);
}

/** Runs until signalled (or config.durationMs); resolves with the final report. */
export async function runEmulatorProcess(config: EmulatorConfig, engine: EngineChoice): Promise<EmulatorReport> {
  const handle = await startEmulator(config, engine);
  let requestsSeen = 0;
  const publish = (report: EmulatorReport, toStdout: boolean): void => {
    if (config.statsFile !== undefined) {
      try {
        writeStatsFile(config.statsFile, report);
      } catch (err) {
        process.stderr.write(`emulator: cannot write stats file: ${(err as Error).message}\n`);
      }
    }
    if (toStdout) process.stdout.write(`${JSON.stringify(report)}\n`);
  };
  const first = { ...(await handle.report()), requestsSeen };
  publish(first, false);
  process.stderr.write(
    `emulator (${first.engine}) relaying ports ${config.ports.join(',')}: ${config.a.listen} <-> ${config.b.listen}, ` +
      `profile ${config.profileName}, ${config.link.rateBps / 1e6} Mbit/s, rtt ${config.link.rttMs} ms, ` +
      `loss ${config.link.lossRate * 100}%, jitter ${config.link.jitterMs} ms, queue ${config.link.queueBytes} B\n`,
  );

  const statsTimer =
    config.statsFile !== undefined && config.statsIntervalMs > 0
      ? setInterval(() => {
          const seen = requestsSeen;
          void handle.report().then((r) => publish({ ...r, requestsSeen: seen }, false));
        }, config.statsIntervalMs)
      : undefined;
  const reportTimer =
    config.reportIntervalMs > 0
      ? setInterval(() => {
          const seen = requestsSeen;
          void handle.report().then((r) => publish({ ...r, requestsSeen: seen }, true));
        }, config.reportIntervalMs)
      : undefined;
  const onUsr1 = (): void => {
    const seen = ++requestsSeen;
    void handle.report().then((r) => publish({ ...r, requestsSeen: seen }, true));
  };
  process.on('SIGUSR1', onUsr1);

  return new Promise<EmulatorReport>((resolve) => {
    let finishing = false;
    const finish = async (): Promise<void> => {
      if (finishing) return;
      finishing = true;
      if (statsTimer !== undefined) clearInterval(statsTimer);
      if (reportTimer !== undefined) clearInterval(reportTimer);
      if (durationTimer !== undefined) clearTimeout(durationTimer);
      process.off('SIGUSR1', onUsr1);
      process.off('SIGTERM', finish);
      process.off('SIGINT', finish);
      const final = { ...(await handle.stop()), requestsSeen };
      publish(final, true);
      resolve(final);
    };
    const durationTimer = config.durationMs > 0 ? setTimeout(finish, config.durationMs) : undefined;
    // A dead datapath must not look like a quiet link: exit non-zero so the lab notices.
    void handle.failed.then((err) => {
      process.stderr.write(`emulator: ${err.message}\n`);
      process.exit(1);
    });
    process.on('SIGTERM', finish);
    process.on('SIGINT', finish);
  });
}
