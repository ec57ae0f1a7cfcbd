// Gateway configuration: one zod schema shared by the YAML file and the quick-start flags.
// Validation errors are values naming the key path and what is wrong; the gateway refuses
// to start on any of them.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_PACKET_CIPHER, PACKET_CIPHERS, type PacketCipher } from '../crypto/aead.ts';
import { formatEndpoint, isLoopbackHost, parseAllowRule, parseEndpoint } from './address.ts';
import { fromResult } from './config-result.ts';
import { checkInterceptRules, interceptFlagToRaw, interceptListenerSchema, interceptRuleSchema } from './intercept/config.ts';

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1e9,
  gib: 1024 ** 3,
};

/** "100M", "1G", "250mbit", "1.5gbps" or a plain number: bits per second. */
export function parseRate(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:bit\/s|bits?|bps|b\/s)?\s*$/i.exec(text);
  if (!m) return null;
  return Number(m[1]) * RATE_UNITS[m[2]!.toLowerCase()]!;
}

/** "256MiB", "1G", "64k", or a plain number: bytes (k/M/G are binary, kB/MB/GB decimal). */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  return Math.round(Number(m[1]) * unit);
}

const endpoint = (allowZero: boolean) => z.string().transform(fromResult((text: string) => parseEndpoint(text, allowZero)));

const rate = z.union([z.number(), z.string()]).transform((v, ctx): number => {
  const n = typeof v === 'number' ? v : parseRate(v);
  if (n === null || !Number.isFinite(n) || n <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a positive rate in bits/s such as 100M or 1G, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

const size = z.union([z.number(), z.string()]).transform((v, ctx): number => {
  const n = typeof v === 'number' ? v : parseSize(v);
  if (n === null || !Number.isFinite(n) || n <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a positive size in bytes such as 256MiB or 1G, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

const allowRule = z.string().transform(fromResult(parseAllowRule));

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const peerSchema = z.strictObject({
  name: z.string().regex(NAME, { error: 'peer names are 1-63 letters, digits, "_", "." or "-"' }),
  /** Where to reach the peer; absent on the responding side (it learns the address from the handshake). */
  address: endpoint(false).optional(),
  /** The peer's public key file (NAME.pub from `longhaul keygen`). */
  publicKey: z.string().min(1).optional(),
});

const tunnelSchema = z.strictObject({
  name: z.string().regex(NAME).optional(),
  listen: endpoint(true),
  peer: z.string().min(1),
  target: endpoint(false),
});

export const DEFAULT_CONTROL = '127.0.0.1:4501';
/** A shorter control token is guessable; 16 characters is 64 bits of hex. */
export const MIN_CONTROL_TOKEN = 16;
const DEFAULT_MAX_CONNECTIONS = 1024;
// 256 MiB: room for ~1000 streams at the default 256 KiB of buffering each.
const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
/**
 * The outage budget: how long a silent peer that was not found restarted keeps its association
 * and every connection on it (limits.peerTimeoutMs, the transport's idle timeout). A WAN outage
 * shorter than this costs the transfers only the time it lasted; plain TCP rides out ~15 min.
 */
export const DEFAULT_PEER_TIMEOUT_MS = 180_000;
export const DEFAULT_PEER_RESTART_DETECT_MS = 5_000;

/**
 * limits.peerRestartDetectMs, or its default: 5 s, or half of a shorter peerTimeoutMs so that
 * detection always acts before the association times out.
 */
export function peerRestartDetectMs(limits: { peerRestartDetectMs?: number | undefined; peerTimeoutMs?: number | undefined }): number {
  if (limits.peerRestartDetectMs !== undefined) return limits.peerRestartDetectMs;
  return Math.min(DEFAULT_PEER_RESTART_DETECT_MS, Math.floor((limits.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS) / 2));
}

export const gatewayConfigSchema = z
  .strictObject({
    name: z.string().regex(NAME).default('gateway'),
    wan: endpoint(true),
    /**
     * Let other sockets share the WAN address (SO_REUSEPORT): off, a gateway refuses to start on
     * an address another process holds; on purpose only (the kernel spreads the peer's datagrams
     * over every socket sharing the address).
     */
    wanReusePort: z.boolean().default(false),
    /** This gateway's private key file (NAME.key). Required unless the debug-only plaintext switch is on. */
    key: z.string().min(1).optional(),
    /**
     * The WAN packet cipher (handshake and every packet). Both gateways must use the same one: the
     * cipher is part of the Noise protocol name, so a mismatch fails the handshake.
     */
    cipher: z
      .enum(PACKET_CIPHERS as [PacketCipher, ...PacketCipher[]], {
        error: `expected ${PACKET_CIPHERS.join(' or ')} (the same on both gateways)`,
      })
      .default(DEFAULT_PACKET_CIPHER),
    peers: z.array(peerSchema).default([]),
    tunnels: z.array(tunnelSchema).default([]),
    /** Transparent interception: remote subnets (and ports) and the peer serving each (docs/intercept.md). */
    intercept: z.array(interceptRuleSchema).default([]),
    interceptListener: interceptListenerSchema(endpoint(true)),
    allow: z.array(allowRule).default([]),
    rate: z
      .strictObject({
        controller: z.enum(['model', 'fixed']).default('model'),
        committedRate: rate.optional(),
        maxRate: rate.optional(),
      })
      .default({ controller: 'model' }),
    limits: z
      .strictObject({
        maxConnections: z.number().int().positive().default(DEFAULT_MAX_CONNECTIONS),
        memoryBudget: size.default(DEFAULT_MEMORY_BUDGET),
        /** How long a new TCP connection waits for the association to (re-)establish. */
        connectWaitMs: z.number().int().positive().default(10_000),
        /** How long the far gateway waits for the target's TCP handshake. */
        targetConnectTimeoutMs: z.number().int().positive().default(10_000),
        /** SIGTERM: how long open connections may keep running after the listeners close. */
        shutdownGraceMs: z.number().int().nonnegative().default(10_000),
        /** Silence from the peer after which the association is declared dead and re-opened (transport idle timeout). */
        peerTimeoutMs: z.number().int().min(1000, { error: 'must be at least 1000 ms' }).optional(),
        /**
         * Silence from the peer while the association is in use (data or keepalives unanswered, or
         * streams open) after which it is probed and re-handshaken to find out whether it restarted.
         */
        peerRestartDetectMs: z
          .number({ error: 'expected a number of milliseconds, e.g. 5000' })
          .int({ error: 'expected a whole number of milliseconds, e.g. 5000' })
          .min(200, { error: 'must be at least 200 ms (below that, ordinary queueing delays look like a restart)' })
          .optional(),
      })
      .default({
        maxConnections: DEFAULT_MAX_CONNECTIONS,
        memoryBudget: DEFAULT_MEMORY_BUDGET,
        connectWaitMs: 10_000,
        targetConnectTimeoutMs: 10_000,
        shutdownGraceMs: 10_000,
      }),
    compression: z.enum(['auto', 'lz4', 'zstd', 'none']).default('auto'),
    /** Path MTU of the WAN (bytes): 1500 for Ethernet, 9000 on jumbo-frame interconnects. Probed, never exceeded. */
    mtu: z.number().int().min(1280, { error: 'must be at least 1280 (the IPv6 minimum)' }).max(65535).default(1500),
    control: z.union([endpoint(true), z.literal(false)]).default({ host: '127.0.0.1', port: 4501 }),
    /**
     * Bearer token the control interface requires for everything but /healthz (clients send
     * `Authorization: Bearer TOKEN`; browsers any user name with the token as password).
     * Required when `control` is not a loopback address: its figures name peers and targets.
     */
    controlToken: z
      .string()
      .min(MIN_CONTROL_TOKEN, { error: `must be at least ${MIN_CONTROL_TOKEN} characters (e.g. openssl rand -hex 32)` })
      .optional(),
    /** The same, read from a file at start-up (its first line; relative to the config file). */
    controlTokenFile: z.string().min(1).optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((cfg, ctx) => {
    const names = new Set<string>();
    cfg.peers.forEach((p, i) => {
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['peers', i, 'name'], message: `duplicate peer name "${p.name}"` });
      names.add(p.name);
    });
    cfg.tunnels.forEach((t, i) => {
      const peer = cfg.peers.find((p) => p.name === t.peer);
      if (!peer) {
        const known = cfg.peers.map((p) => `"${p.name}"`).join(', ') || 'none defined';
        ctx.addIssue({ code: 'custom', path: ['tunnels', i, 'peer'], message: `unknown peer "${t.peer}" (peers: ${known})` });
      } else if (!peer.address) {
        ctx.addIssue({
          code: 'custom',
          path: ['tunnels', i, 'peer'],
          message: `peer "${t.peer}" has no address, so this gateway cannot open tunnels to it`,
        });
      }
    });
    checkInterceptRules(cfg.intercept, cfg.peers, ctx, cfg.interceptListener);
    if (cfg.controlToken !== undefined && cfg.controlTokenFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['controlTokenFile'], message: 'give controlToken or controlTokenFile, not both' });
    }
    if (
      cfg.control !== false &&
      !isLoopbackHost(cfg.control.host) &&
      cfg.controlToken === undefined &&
      cfg.controlTokenFile === undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['control'],
        message:
          `${formatEndpoint(cfg.control)} is reachable from other machines, so the control interface needs a bearer token: ` +
          'set controlToken or controlTokenFile (--control-token-file), or bind it to 127.0.0.1',
      });
    }
    const detect = cfg.limits.peerRestartDetectMs;
    const timeout = cfg.limits.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
    if (detect !== undefined && detect >= timeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'peerRestartDetectMs'],
        message: `must be below limits.peerTimeoutMs (${timeout} ms${cfg.limits.peerTimeoutMs === undefined ? ', the default' : ''}): a restart has to be detected before the association times out`,
      });
    }
    const { committedRate, maxRate, controller } = cfg.rate;
    if (committedRate !== undefined && maxRate !== undefined && committedRate > maxRate) {
      ctx.addIssue({
        code: 'custom',
        path: ['rate', 'committedRate'],
        message: `committed rate (${committedRate} bit/s) exceeds maxRate (${maxRate} bit/s)`,
      });
    }
    if (controller === 'fixed' && committedRate === undefined && maxRate === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['rate', 'committedRate'],
        message: 'the fixed controller needs committedRate (or maxRate): the rate to send at',
      });
    }
  });

export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
export type GatewayConfig = z.output<typeof gatewayConfigSchema> & {
  /** Debug-only: no packet protection. Never settable from a config file (the schema is strict). */
  insecurePlaintext: boolean;
  /** Directory relative key paths are resolved against. */
  baseDir: string;
  /** Where the settings came from, for errors found after validation (settingName). */
  origin?: SettingOrigin;
};

export interface SettingOrigin {
  /** The config file, if any. */
  file?: string | undefined;
  /** Key paths given by flags (e.g. "peers[0].address") and the flag that gave each ("--peer"). */
  flags?: ReadonlyMap<string, string>;
}

/**
 * How to name a setting in an error found at start-up (an address that does not resolve or is in
 * use): the flag as the operator typed it ("--wan 127.0.0.1:4500"), or the config key and value
 * ("site.yaml: wan: 127.0.0.1:4500").
 */
export function settingName(cfg: Pick<GatewayConfig, 'origin'>, path: string, value: string): string {
  const flag = cfg.origin?.flags?.get(path);
  if (flag !== undefined) return flag;
  return `${cfg.origin?.file !== undefined ? `${cfg.origin.file}: ` : ''}${path}: ${value}`;
}

export type ConfigResult = { ok: true; config: GatewayConfig } | { ok: false; errors: string[] };

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(top level)';
}

export interface ValidateOptions {
  insecurePlaintext?: boolean;
  baseDir?: string;
  /** Shown before each error, e.g. the config file name. */
  source?: string;
  /** Key paths set by flags, and the flag for each (SettingOrigin.flags). */
  flags?: ReadonlyMap<string, string>;
}

/** Validates a raw object (parsed YAML, or built from flags). */
export function validateConfig(raw: unknown, opts: ValidateOptions = {}): ConfigResult {
  const r = gatewayConfigSchema.safeParse(raw);
  const prefix = opts.source ? `${opts.source}: ` : '';
  if (!r.success) {
    const errors = r.error.issues.map((i) => {
      if (i.code === 'unrecognized_keys') {
        const where = i.path.length ? `${formatPath(i.path)}: ` : '';
        return `${prefix}${where}unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      }
      return `${prefix}${formatPath(i.path)}: ${i.message}`;
    });
    return { ok: false, errors };
  }
  const insecurePlaintext = opts.insecurePlaintext === true;
  const origin: SettingOrigin = { file: opts.source, ...(opts.flags ? { flags: opts.flags } : {}) };
  const cfg: GatewayConfig = { ...r.data, insecurePlaintext, baseDir: opts.baseDir ?? process.cwd(), origin };
  const errors: string[] = [];
  if (!insecurePlaintext) {
    if (!cfg.key) errors.push(`${prefix}key: required: this gateway's private key file (create one with \`longhaul keygen NAME\`)`);
    cfg.peers.forEach((p, i) => {
      if (!p.publicKey) errors.push(`${prefix}peers[${i}].publicKey: required: the public key file of peer "${p.name}"`);
    });
  }
  if (errors.length) return { ok: false, errors };
  return { ok: true, config: cfg };
}

export function resolveKeyPath(cfg: GatewayConfig, file: string): string {
  return resolve(cfg.baseDir, file);
}

/** Reads and validates a YAML config file. Errors name the file and the key path. */
export function loadConfigFile(file: string, opts: ValidateOptions = {}): ConfigResult {
  const base = loadRawFile(file);
  if (!base.ok) return base;
  return validateConfig(base.raw, { ...opts, source: file, baseDir: dirname(resolve(file)) });
}

/** Quick-start flags, as commander hands them over. */
export interface GatewayFlags {
  config?: string;
  name?: string;
  wan?: string;
  wanReusePort?: boolean;
  peer?: string;
  peerName?: string;
  tunnel?: string[];
  intercept?: string[];
  interceptListen?: string;
  interceptMethod?: string;
  key?: string;
  peerKey?: string;
  cipher?: string;
  allow?: string[];
  controller?: string;
  rate?: string;
  maxRate?: string;
  maxConnections?: string;
  memory?: string;
  compression?: string;
  mtu?: string;
  control?: string;
  controlTokenFile?: string;
  logLevel?: string;
  insecurePlaintext?: boolean;
}

const QUICK_PEER = 'peer';

/**
 * Maps quick-start flags onto the config schema's raw shape. With --config, flags given
 * explicitly override the file's settings.
 */
export function flagsToRaw(flags: GatewayFlags): { raw: Record<string, unknown>; errors: string[]; given: Map<string, string> } {
  const raw: Record<string, unknown> = {};
  const errors: string[] = [];
  // Settings whose errors at start-up should name the flag (addresses that may not resolve or bind).
  const given = new Map<string, string>();
  const peerName = flags.peerName ?? QUICK_PEER;
  if (flags.name !== undefined) raw.name = flags.name;
  if (flags.wan !== undefined) {
    raw.wan = flags.wan;
    given.set('wan', `--wan ${flags.wan}`);
  }
  if (flags.wanReusePort !== undefined) raw.wanReusePort = flags.wanReusePort;
  if (flags.key !== undefined) raw.key = flags.key;
  if (flags.cipher !== undefined) raw.cipher = flags.cipher;
  if (flags.peer !== undefined || flags.peerKey !== undefined) {
    const peer: Record<string, unknown> = { name: peerName };
    if (flags.peer !== undefined) {
      peer.address = flags.peer;
      given.set('peers[0].address', `--peer ${flags.peer}`);
    }
    if (flags.peerKey !== undefined) peer.publicKey = flags.peerKey;
    raw.peers = [peer];
  }
  if (flags.tunnel?.length) {
    raw.tunnels = flags.tunnel.map((spec, i) => {
      const eq = spec.indexOf('=');
      if (eq < 0) {
        errors.push(`--tunnel #${i + 1}: expected LISTEN=TARGET (e.g. 127.0.0.1:6600=10.0.0.7:6600), got "${spec}"`);
        return { listen: spec, peer: peerName, target: '' };
      }
      given.set(`tunnels[${i}].listen`, `--tunnel ${spec}`);
      return { listen: spec.slice(0, eq), peer: peerName, target: spec.slice(eq + 1) };
    });
  }
  if (flags.intercept?.length) raw.intercept = flags.intercept.map((spec) => interceptFlagToRaw(spec, peerName));
  if (flags.interceptListen !== undefined || flags.interceptMethod !== undefined) {
    raw.interceptListener = {
      ...(flags.interceptListen !== undefined ? { listen: flags.interceptListen } : {}),
      ...(flags.interceptMethod !== undefined ? { method: flags.interceptMethod } : {}),
    };
    if (flags.interceptListen !== undefined) given.set('interceptListener.listen', `--intercept-listen ${flags.interceptListen}`);
  }
  if (flags.allow?.length) raw.allow = flags.allow.flatMap((a) => a.split(',').filter((s) => s !== ''));
  if (flags.controller !== undefined || flags.rate !== undefined || flags.maxRate !== undefined) {
    const r: Record<string, unknown> = {};
    if (flags.controller !== undefined) r.controller = flags.controller;
    if (flags.rate !== undefined) r.committedRate = flags.rate;
    if (flags.maxRate !== undefined) r.maxRate = flags.maxRate;
    raw.rate = r;
  }
  if (flags.maxConnections !== undefined || flags.memory !== undefined) {
    const l: Record<string, unknown> = {};
    if (flags.maxConnections !== undefined) {
      const n = Number(flags.maxConnections);
      l.maxConnections = Number.isFinite(n) ? n : flags.maxConnections;
    }
    if (flags.memory !== undefined) l.memoryBudget = flags.memory;
    raw.limits = l;
  }
  if (flags.compression !== undefined) raw.compression = flags.compression;
  if (flags.mtu !== undefined) raw.mtu = Number.isFinite(Number(flags.mtu)) ? Number(flags.mtu) : flags.mtu;
  if (flags.control !== undefined) {
    raw.control = flags.control === 'off' ? false : flags.control;
    if (flags.control !== 'off') given.set('control', `--control ${flags.control}`);
  }
  // A flag's path is the operator's, relative to where they are, not to a --config file.
  if (flags.controlTokenFile !== undefined) raw.controlTokenFile = resolve(flags.controlTokenFile);
  if (flags.logLevel !== undefined) raw.logLevel = flags.logLevel;
  return { raw, errors, given };
}

/** The one entry point the CLI uses: file and/or flags -> validated config. */
export function configFromFlags(flags: GatewayFlags): ConfigResult {
  const { raw, errors, given } = flagsToRaw(flags);
  if (errors.length) return { ok: false, errors };
  const opts = { insecurePlaintext: flags.insecurePlaintext === true, flags: given };
  if (flags.config !== undefined) {
    // Nested sections given by flags replace the file's section only key by key.
    const base = loadRawFile(flags.config);
    if (!base.ok) return base;
    const merged: Record<string, unknown> = { ...base.raw };
    for (const [k, v] of Object.entries(raw)) {
      const old = merged[k];
      merged[k] = isPlainObject(old) && isPlainObject(v) ? { ...old, ...v } : v;
    }
    return validateConfig(merged, { ...opts, source: flags.config, baseDir: dirname(resolve(flags.config)) });
  }
  if (raw.wan === undefined)
    return { ok: false, errors: ['wan: required: the UDP address to use on the WAN side (--wan 0.0.0.0:4500, or a --config file)'] };
  return validateConfig(raw, opts);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function loadRawFile(file: string): { ok: true; raw: Record<string, unknown> } | { ok: false; errors: string[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${file}: cannot read: ${(err as Error).message}`] };
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    return { ok: false, errors: [`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  if (!isPlainObject(raw))
    return { ok: false, errors: [`${file}: expected a mapping of settings (wan:, peers:, tunnels:, ...) at the top level`] };
  return { ok: true, raw };
}
