// Emulator configuration: the link settings per direction plus where to relay, and the
// parsers for the human units the CLI accepts ("100mbit", "25ms", "0.05%", "10s-12s").
// Parsers return values, never throw: bad input is the user's, not a bug.

import { fail, ok, type Result } from '../result.ts';
import { findProfile, queueBytes, type LinkProfile } from '../link/profiles.ts';
import type { LinkSettings } from './emulator-link.ts';

/** The fixed lab addresses (docs/lab.md, "Network"): A side and B side of the emulator namespace. */
export const LAB_ADDRESSES = {
  aNear: '198.18.1.1',
  aPeer: '198.18.1.2',
  bNear: '198.18.2.1',
  bPeer: '198.18.2.2',
} as const;

/** vxlan, longhaul, kcptun. */
export const DEFAULT_PORTS: readonly number[] = [4789, 4500, 29900];

export interface RelaySide {
  /** Address the emulator binds on this side. */
  listen: string;
  /** Where datagrams leaving on this side go until a sender on this side is seen. */
  peer: string;
}

export interface EmulatorConfig {
  profileName: string;
  link: LinkSettings;
  ports: number[];
  a: RelaySide;
  b: RelaySide;
  seed: number;
  /** JSON stats written here periodically, on SIGUSR1 and at exit. */
  statsFile?: string | undefined;
  statsIntervalMs: number;
  /** Print one JSON stats line to stdout every N ms (0: only at exit). */
  reportIntervalMs: number;
  /** Stop by itself after this long (bounded runs for tests and benchmarks); 0 = run until signalled. */
  durationMs: number;
}

const RATE_UNITS: Record<string, number> = {
  '': 1,
  bit: 1,
  bps: 1,
  kbit: 1e3,
  kbps: 1e3,
  mbit: 1e6,
  mbps: 1e6,
  gbit: 1e9,
  gbps: 1e9,
  k: 1e3,
  m: 1e6,
  g: 1e9,
};

/** "100mbit", "1gbit", "1.5Gbps", "2000000" (bits per second). "0"/"unlimited" = no limit. */
export function parseRate(text: string): Result<number> {
  const t = text.trim().toLowerCase();
  if (t === 'unlimited' || t === 'inf') return ok(0);
  const m = /^([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)$/.exec(t);
  if (m === null) return fail(`bad rate "${text}" (e.g. 100mbit, 1gbit)`);
  const unit = RATE_UNITS[m[2]!];
  if (unit === undefined) return fail(`unknown rate unit "${m[2]}" in "${text}" (bit, kbit, mbit, gbit)`);
  const v = Number(m[1]) * unit;
  if (!Number.isFinite(v) || v < 0) return fail(`bad rate "${text}"`);
  return ok(v);
}

/** "25ms", "0.5s", "250us", "12" (ms). Returns milliseconds. */
export function parseDuration(text: string): Result<number> {
  const m = /^([0-9]*\.?[0-9]+)\s*(us|ms|s|m)?$/.exec(text.trim().toLowerCase());
  if (m === null) return fail(`bad duration "${text}" (e.g. 25ms, 1.5s)`);
  const v = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const ms = unit === 'us' ? v / 1000 : unit === 'ms' ? v : unit === 's' ? v * 1000 : v * 60000;
  return ok(ms);
}

/** "0.05%" or a fraction "0.0005". Returns 0..1. */
export function parseLoss(text: string): Result<number> {
  const t = text.trim();
  const pct = t.endsWith('%');
  const v = Number(pct ? t.slice(0, -1) : t);
  if (t === '' || !Number.isFinite(v)) return fail(`bad loss "${text}" (e.g. 0.05% or 0.0005)`);
  const frac = pct ? v / 100 : v;
  if (frac < 0 || frac > 1) return fail(`loss "${text}" out of range 0..100%`);
  return ok(frac);
}

/** Queue as time at the link rate ("20ms") or bytes ("256kb", "300000b", "1mb"). Returns bytes. */
export function parseQueue(text: string, rateBps: number): Result<number> {
  const t = text.trim().toLowerCase();
  const bytes = /^([0-9]*\.?[0-9]+)\s*(b|kb|kib|mb|mib)$/.exec(t);
  if (bytes !== null) {
    const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1048576 };
    return ok(Math.round(Number(bytes[1]) * mult[bytes[2]!]!));
  }
  const d = parseDuration(t);
  if (!d.ok) return fail(`bad queue "${text}" (e.g. 20ms or 256kb)`);
  return ok(Math.round((rateBps / 8) * (d.value / 1000)));
}

/** "10s-12s" (relative to emulator start). */
export function parseOutage(text: string): Result<{ startMs: number; endMs: number }> {
  const parts = text.split('-');
  if (parts.length !== 2) return fail(`bad outage "${text}" (e.g. 10s-12s)`);
  const a = parseDuration(parts[0]!);
  const b = parseDuration(parts[1]!);
  if (!a.ok) return a;
  if (!b.ok) return b;
  if (b.value <= a.value) return fail(`outage "${text}" ends before it starts`);
  return ok({ startMs: a.value, endMs: b.value });
}

export function parsePorts(text: string): Result<number[]> {
  const ports = text.split(',').map((p) => Number(p.trim()));
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    return fail(`bad port list "${text}" (e.g. 4789,4500,29900)`);
  }
  if (new Set(ports).size !== ports.length) return fail(`duplicate port in "${text}"`);
  return ok(ports);
}

export function linkSettingsFromProfile(p: LinkProfile): LinkSettings {
  return {
    rateBps: p.rateBps,
    rttMs: p.rttMs,
    lossRate: p.lossRate,
    jitterMs: p.jitterMs,
    queueBytes: queueBytes(p),
    reorder: false,
    outage: undefined,
  };
}

/** What the CLI (or a caller of setLinkProfile) may say about the link; strings use CLI units. */
export interface LinkOptions {
  profile?: string | undefined;
  rate?: string | undefined;
  rtt?: string | undefined;
  loss?: string | undefined;
  jitter?: string | undefined;
  queue?: string | undefined;
  reorder?: boolean | undefined;
  outage?: string | undefined;
}

/** Profile first (default: baseline), then each explicit option overrides it. */
export function resolveLink(o: LinkOptions): Result<{ name: string; link: LinkSettings }> {
  const base = findProfile(o.profile ?? 'baseline');
  if (base === undefined) return fail(`unknown profile "${o.profile}"`);
  const link = linkSettingsFromProfile(base);
  let custom = false;
  if (o.rate !== undefined) {
    const r = parseRate(o.rate);
    if (!r.ok) return r;
    link.rateBps = r.value;
    link.queueBytes = Math.round((r.value / 8) * (base.queueMs / 1000));
    custom = true;
  }
  if (o.rtt !== undefined) {
    const r = parseDuration(o.rtt);
    if (!r.ok) return r;
    link.rttMs = r.value;
    custom = true;
  }
  if (o.loss !== undefined) {
    const r = parseLoss(o.loss);
    if (!r.ok) return r;
    link.lossRate = r.value;
    custom = true;
  }
  if (o.jitter !== undefined) {
    const r = parseDuration(o.jitter);
    if (!r.ok) return r;
    link.jitterMs = r.value;
    custom = true;
  }
  if (o.queue !== undefined) {
    const r = parseQueue(o.queue, link.rateBps);
    if (!r.ok) return r;
    link.queueBytes = r.value;
    custom = true;
  }
  if (o.outage !== undefined) {
    const r = parseOutage(o.outage);
    if (!r.ok) return r;
    link.outage = r.value;
  }
  if (o.reorder === true) link.reorder = true;
  const name = o.profile !== undefined ? (custom ? `${base.name}+custom` : base.name) : custom ? 'custom' : base.name;
  return ok({ name, link });
}

/** The CLI options that express `link` exactly (used to start an emulator process). */
export function linkToArgs(link: LinkSettings): string[] {
  const args = [
    '--rate',
    String(link.rateBps),
    '--rtt',
    `${link.rttMs}ms`,
    '--loss',
    String(link.lossRate),
    '--jitter',
    `${link.jitterMs}ms`,
    '--queue',
    `${link.queueBytes}b`,
  ];
  if (link.reorder) args.push('--reorder');
  if (link.outage !== undefined) args.push('--outage', `${link.outage.startMs}ms-${link.outage.endMs}ms`);
  return args;
}
