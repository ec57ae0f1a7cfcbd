// Health for load balancers, keepalived's vrrp_script, Kubernetes probes and systemd's watchdog:
// GET /healthz (alive: the event loop answers in time) and GET /readyz (every configured peer has
// a live authenticated association). JSON bodies; 200 when fine, 503 when not.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ELDHistogram } from 'node:perf_hooks';
import type { Gateway, PeerReadiness } from './gateway.ts';

/**
 * The longest event-loop stall a healthy gateway shows. Its datapath runs on the loop: a stall
 * of a second holds every packet a second (the transport's probe timeout fires, the peer sees
 * an outage), far beyond a GC pause (tens of ms on this heap) or a busy flush.
 */
export const LOOP_STALL_LIMIT_MS = 1000;
// Stalls are remembered for one to two windows (the histogram is rotated every window), so a
// probe every few seconds sees a stall that is already over.
const WINDOW_MS = 5000;
// The histogram's sampling timer: fine enough to see stalls of a tenth of the limit.
const RESOLUTION_MS = 20;

export interface LoopDelay {
  /** Largest delay seen in the current and the previous window (ms). */
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  windowMs: number;
}

/** Measures event-loop delay (perf_hooks' histogram), in windows. */
export class LoopDelayMonitor {
  #current: ELDHistogram;
  #previous: { maxMs: number; p99Ms: number; meanMs: number } | null = null;
  #timer: NodeJS.Timeout;

  constructor() {
    this.#current = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#current.enable();
    this.#timer = setInterval(() => {
      this.#previous = this.#summary();
      this.#current.reset();
    }, WINDOW_MS);
    this.#timer.unref();
  }

  #summary(): { maxMs: number; p99Ms: number; meanMs: number } {
    const h = this.#current;
    // The histogram counts the sampling interval itself in each delay: take it out.
    const ms = (ns: number): number => (Number.isFinite(ns) && h.count > 0 ? Math.max(0, ns / 1e6 - RESOLUTION_MS) : 0);
    return { maxMs: ms(h.max), p99Ms: ms(h.percentile(99)), meanMs: ms(h.mean) };
  }

  read(): LoopDelay {
    const c = this.#summary();
    const p = this.#previous;
    const round = (x: number): number => Math.round(x * 10) / 10;
    return {
      maxMs: round(Math.max(c.maxMs, p?.maxMs ?? 0)),
      p99Ms: round(Math.max(c.p99Ms, p?.p99Ms ?? 0)),
      meanMs: round(c.meanMs),
      windowMs: WINDOW_MS,
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#current.disable();
  }
}

export interface HealthAnswer {
  status: 200 | 503;
  body: Record<string, unknown>;
}

export function healthz(gateway: Gateway, loop: LoopDelayMonitor, stallLimitMs = LOOP_STALL_LIMIT_MS): HealthAnswer {
  const delay = loop.read();
  const base = {
    name: gateway.config.name,
    uptimeSec: Math.round((Date.now() - gateway.startedAt) / 1000),
    eventLoopDelayMs: delay,
    stallLimitMs,
  };
  if (gateway.stopping) return { status: 503, body: { status: 'stopping', ...base } };
  if (delay.maxMs > stallLimitMs) {
    return {
      status: 503,
      body: {
        status: 'unhealthy',
        reason: `event loop stalled for ${Math.round(delay.maxMs)} ms (limit ${stallLimitMs} ms) in the last ${Math.round(delay.windowMs / 1000)}-${Math.round((2 * delay.windowMs) / 1000)} s`,
        ...base,
      },
    };
  }
  return { status: 200, body: { status: 'ok', ...base } };
}

export function readyz(gateway: Gateway): HealthAnswer {
  if (gateway.stopping) return { status: 503, body: { status: 'stopping', peers: [] } };
  const peers: PeerReadiness[] = gateway.readiness();
  const notReady = peers.filter((p) => !p.ready);
  if (peers.length === 0) return { status: 503, body: { status: 'not ready', reason: 'no peers configured', peers } };
  if (notReady.length > 0) {
    return {
      status: 503,
      body: { status: 'not ready', reason: notReady.map((p) => `${p.peer}: ${p.reason ?? 'not ready'}`).join('; '), peers },
    };
  }
  return { status: 200, body: { status: 'ready', peers } };
}
