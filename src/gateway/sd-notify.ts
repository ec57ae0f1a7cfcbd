// systemd's service notification protocol (sd_notify(3)), for `Type=notify-reload` units:
// READY=1 once the gateway listens with its keys loaded, RELOADING=1 + MONOTONIC_USEC / READY=1
// around a reload, STOPPING=1 on shutdown, WATCHDOG=1 while $WATCHDOG_USEC asks for it. Each
// message is one datagram to $NOTIFY_SOCKET (a path, or an abstract name written "@name").
// node:dgram has no Unix datagram sockets, so the datagram goes out through the lh_udp addon
// (sdNotify, a socket + sendto); without the addon the gateway runs, says once that systemd will
// not hear from it, and a Type=notify unit would time out at start.
import { loadAddon } from '../native/load.ts';
import type { Logger } from './logger.ts';

interface SdNotifyAddon {
  sdNotify(socketPath: string, message: string): void;
}

/** Sends one notification; returns an error message instead of throwing. */
export type NotifySend = (socketPath: string, message: string) => string | null;

export const addonSend: NotifySend = (socketPath, message) => {
  const a = loadAddon<SdNotifyAddon>('lh_udp');
  if (!a.ok) return a.error;
  try {
    a.addon.sdNotify(socketPath, message);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};

/** CLOCK_MONOTONIC in microseconds, as systemd ≥ 253 wants with RELOADING=1 (MONOTONIC_USEC). */
export function monotonicUsec(): bigint {
  // process.hrtime is CLOCK_MONOTONIC on Linux: the clock systemd compares against.
  return process.hrtime.bigint() / 1000n;
}

// systemd's own advice (sd_watchdog_enabled(3)): ping at half the interval, so one late tick
// does not kill a healthy service.
const WATCHDOG_FRACTION = 0.5;

export interface SdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  send?: NotifySend;
  /** Watchdog pings run only while this says the event loop and the gateway are sound. */
  healthy?: () => boolean;
}

/**
 * The gateway's link to systemd. Inert (every call a no-op) when $NOTIFY_SOCKET is unset, so the
 * same binary runs under systemd, in a terminal or in a container.
 */
export class SdNotifier {
  readonly socketPath: string | null;
  /** The watchdog interval from $WATCHDOG_USEC (µs), when it is meant for this process. */
  readonly watchdogUsec: number | null;
  #send: NotifySend;
  #log: Logger | undefined;
  #healthy: () => boolean;
  #watchdog: NodeJS.Timeout | null = null;
  #failed = false;

  constructor(opts: SdNotifierOptions = {}) {
    const env = opts.env ?? process.env;
    this.socketPath = env.NOTIFY_SOCKET ? env.NOTIFY_SOCKET : null;
    const usec = Number(env.WATCHDOG_USEC);
    // WATCHDOG_PID, when set, names the process the watchdog is for (sd_watchdog_enabled(3)).
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    this.watchdogUsec = this.socketPath && Number.isFinite(usec) && usec > 0 && forUs ? usec : null;
    this.#send = opts.send ?? addonSend;
    this.#log = opts.log;
    this.#healthy = opts.healthy ?? (() => true);
  }

  get enabled(): boolean {
    return this.socketPath !== null;
  }

  notify(message: string): boolean {
    if (this.socketPath === null) return false;
    const err = this.#send(this.socketPath, message);
    if (err !== null) {
      // Once: a broken socket would otherwise log on every watchdog tick.
      if (!this.#failed)
        this.#log?.warn(
          { notifySocket: this.socketPath, err },
          'cannot notify systemd (NOTIFY_SOCKET): a Type=notify unit will not see the gateway ready',
        );
      this.#failed = true;
      return false;
    }
    return true;
  }

  ready(status?: string): boolean {
    return this.notify(`READY=1${status ? `\nSTATUS=${status}` : ''}`);
  }

  reloading(): boolean {
    return this.notify(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
  }

  stopping(): boolean {
    return this.notify('STOPPING=1');
  }

  /** Starts WATCHDOG=1 pings at half of $WATCHDOG_USEC, skipped while `healthy` says no. */
  startWatchdog(): void {
    if (this.watchdogUsec === null || this.#watchdog) return;
    const everyMs = Math.max(1, Math.floor((this.watchdogUsec / 1000) * WATCHDOG_FRACTION));
    this.#watchdog = setInterval(() => {
      if (this.#healthy()) this.notify('WATCHDOG=1');
    }, everyMs);
    this.#watchdog.unref();
  }

  stopWatchdog(): void {
    if (this.#watchdog) clearInterval(this.#watchdog);
    this.#watchdog = null;
  }
}
