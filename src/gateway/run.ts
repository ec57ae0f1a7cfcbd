// A running gateway process: the gateway, its control server, signal handling, reloads
// (SIGHUP, POST /reload) and systemd's notifications.
import { formatEndpoint } from './address.ts';
import type { ConfigResult, GatewayConfig } from './config.ts';
import { startControlServer } from './control.ts';
import { loadControlToken } from './control-auth.ts';
import type { ControlServer, OpsAnswer } from './control.ts';
import { Gateway } from './gateway.ts';
import type { GatewayOptions, ReloadOutcome } from './gateway.ts';
import { LOOP_STALL_LIMIT_MS, LoopDelayMonitor, healthz, readyz } from './health.ts';
import { createMetrics } from './metrics.ts';
import { SdNotifier } from './sd-notify.ts';
import { bindError } from './startup-address.ts';
import { warmUpDatapath } from './warm-up.ts';

export interface RunOptions extends GatewayOptions {
  /** Compile the datapath before listening (warm-up.ts); the CLI does, tests need not. */
  warmUp?: boolean;
  /**
   * Re-reads and validates the configuration for a reload (the CLI: the --config file with the
   * same flags on top). Absent: reloads are refused (a gateway started from flags alone).
   */
  reloadConfig?: () => ConfigResult;
  /** systemd notifications (READY, RELOADING, STOPPING, WATCHDOG); default: from $NOTIFY_SOCKET. */
  notifier?: SdNotifier;
}

export interface RunningGateway {
  gateway: Gateway;
  control: ControlServer | null;
  notifier: SdNotifier;
  /** Graceful stop (grace period from the config unless given). */
  stop(graceMs?: number): Promise<void>;
  /** Re-reads the config and applies it (one reload at a time; a second caller waits for the first). */
  reload(): Promise<ReloadOutcome>;
}

export async function runGateway(config: GatewayConfig, opts: RunOptions): Promise<RunningGateway> {
  // Read before anything starts, so an unreadable token file stops nothing half-started.
  const controlToken = config.control === false ? null : loadControlToken(config);
  if (opts.warmUp) {
    const w = await warmUpDatapath(config, opts.transport);
    opts.logger.debug({ ms: Math.round(w.ms), passes: w.passes, ok: w.ok }, 'datapath warmed up');
    if (!w.ok)
      opts.logger.warn(
        { error: w.error },
        `datapath warm-up through a loopback gateway pair failed (${w.error}): the first transfers run slower until V8 has compiled the datapath`,
      );
    // The pair's buffers are garbage now, left for V8's own collections. A full collection and a
    // C-heap trim here kept an idle gateway at 143 instead of 181 MiB of RSS, but made the first
    // transfer cost gateway A 5% (random payload) to 12% (VM-like) more CPU and move 14% less of
    // the VM-like payload at 1 Gbit/s (datapath §20).
  }
  const gateway = await Gateway.start(config, opts);
  const log = opts.logger;
  const loop = new LoopDelayMonitor();
  const notifier = opts.notifier ?? new SdNotifier({ log, healthy: () => !gateway.stopping && loop.read().maxMs <= LOOP_STALL_LIMIT_MS });
  let reloading: Promise<ReloadOutcome> = Promise.resolve({ ok: true, changes: [] });

  const reloadOnce = async (): Promise<ReloadOutcome> => {
    if (!opts.reloadConfig) {
      const errors = ['no config file to re-read: this gateway was started from flags alone (start it with --config FILE to reload)'];
      log.error({ errors }, `reload refused: ${errors[0]}`);
      return { ok: false, errors };
    }
    notifier.reloading();
    try {
      const loaded = opts.reloadConfig();
      const outcome: ReloadOutcome = loaded.ok ? await gateway.reload(loaded.config) : { ok: false, errors: loaded.errors };
      // One line either way: what changed, or the first reason the old config stays (all in `errors`).
      if (outcome.ok)
        log.info(
          { changes: outcome.changes },
          outcome.changes.length ? `configuration reloaded: ${outcome.changes.join('; ')}` : 'configuration reloaded: no changes',
        );
      else log.error({ errors: outcome.errors }, `reload refused, still running the previous configuration: ${outcome.errors.join('; ')}`);
      return outcome;
    } finally {
      notifier.ready();
    }
  };

  let control: ControlServer | null = null;
  let running!: RunningGateway;
  if (config.control !== false) {
    try {
      control = await startControlServer(
        config.control,
        () => gateway.status(),
        createMetrics(() => gateway.status()),
        { token: controlToken },
        {
          healthz: () => healthz(gateway, loop),
          readyz: () => readyz(gateway),
          reload: async (): Promise<OpsAnswer> => {
            const o = await running.reload();
            return { status: o.ok ? 200 : 422, body: o };
          },
        },
      );
    } catch (err) {
      loop.close();
      // Reported by the caller as a failed start: no "gateway stopped" before it.
      await gateway.stop(0, { quiet: true });
      throw bindError(config, 'control', config.control, err);
    }
    log.info(
      { control: formatEndpoint(control.address), token: controlToken !== null },
      'control interface listening (/ dashboard, /status, /metrics, /healthz, /readyz, POST /reload)',
    );
  }
  let stopping: Promise<void> | null = null;
  running = {
    gateway,
    control,
    notifier,
    stop(graceMs?: number) {
      stopping ??= (async () => {
        notifier.stopping();
        notifier.stopWatchdog();
        await gateway.stop(graceMs);
        await control?.close();
        loop.close();
      })();
      return stopping;
    },
    reload() {
      reloading = reloading.then(reloadOnce, reloadOnce);
      return reloading;
    },
  };
  // Listening, keys loaded: tell systemd (no-op without $NOTIFY_SOCKET).
  notifier.ready(`listening on ${formatEndpoint(gateway.wanAddress)}`);
  notifier.startWatchdog();
  return running;
}

/** SIGTERM/SIGINT: graceful stop; a second signal exits at once. SIGHUP: reload the config file. */
export function installSignalHandlers(running: RunningGateway, log: GatewayOptions['logger']): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info(
      { signal: sig, graceMs: running.gateway.config.limits.shutdownGraceMs },
      'shutting down: listeners closed, open connections may finish',
    );
    running.stop().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    void running.reload();
  });
}
