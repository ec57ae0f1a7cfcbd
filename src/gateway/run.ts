// A running gateway process: the gateway, its control server, and signal handling.
import { formatEndpoint } from './address.ts';
import type { GatewayConfig } from './config.ts';
import { startControlServer } from './control.ts';
import { loadControlToken } from './control-auth.ts';
import type { ControlServer } from './control.ts';
import { Gateway } from './gateway.ts';
import type { GatewayOptions } from './gateway.ts';
import { createMetrics } from './metrics.ts';
import { bindError } from './startup-address.ts';

export interface RunningGateway {
  gateway: Gateway;
  control: ControlServer | null;
  /** Graceful stop (grace period from the config unless given). */
  stop(graceMs?: number): Promise<void>;
}

export async function runGateway(config: GatewayConfig, opts: GatewayOptions): Promise<RunningGateway> {
  // Read before anything starts, so an unreadable token file stops nothing half-started.
  const controlToken = config.control === false ? null : loadControlToken(config);
  const gateway = await Gateway.start(config, opts);
  let control: ControlServer | null = null;
  if (config.control !== false) {
    try {
      control = await startControlServer(config.control, () => gateway.status(), createMetrics(() => gateway.status()), { token: controlToken });
    } catch (err) {
      // Reported by the caller as a failed start: no "gateway stopped" before it.
      await gateway.stop(0, { quiet: true });
      throw bindError(config, 'control', config.control, err);
    }
    opts.logger.info({ control: formatEndpoint(control.address), token: controlToken !== null }, 'control interface listening (/ dashboard, /status, /metrics)');
  }
  let stopping: Promise<void> | null = null;
  return {
    gateway,
    control,
    stop(graceMs?: number) {
      stopping ??= (async () => {
        await gateway.stop(graceMs);
        await control?.close();
      })();
      return stopping;
    },
  };
}

/** SIGTERM/SIGINT: graceful stop; a second signal exits at once. */
export function installSignalHandlers(running: RunningGateway, log: GatewayOptions['logger']): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal: sig, graceMs: running.gateway.config.limits.shutdownGraceMs }, 'shutting down: listeners closed, open connections may finish');
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
}
