// Transparent interception's settings (docs/intercept.md): which remote subnets and ports belong
// to which peer (`intercept:`), and how the kernel hands their connections to the gateway
// (`interceptListener:`). The schemas are part of the gateway's (config.ts); the checks that span
// entries (peers exist, no destination claimed by two peers) run from its superRefine.
import { z } from 'zod';
import type { Result } from '../../result.ts';
import { ipToBigInt } from '../address.ts';
import { fromResult } from '../config-result.ts';

/** An IPv4 block, as written and as numbers. (iptables here is IPv4: ip6tables is not driven.) */
export interface Subnet {
  text: string;
  network: number;
  prefix: number;
}

/** A port or an inclusive range of ports. */
export interface PortRange {
  from: number;
  to: number;
}

export function parseSubnet(text: string): Result<Subnet> {
  const slash = text.indexOf('/');
  const ip = slash >= 0 ? text.slice(0, slash) : text;
  const parsed = ipToBigInt(ip);
  if (parsed?.family !== 4 || ip.includes(':'))
    return { ok: false, error: `"${text}" is not an IPv4 subnet (e.g. 10.2.0.0/16; interception is IPv4 only)` };
  let prefix = 32;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,2}$/.test(p) || Number(p) > 32) return { ok: false, error: `"/${p}" is not a valid IPv4 prefix length (0-32)` };
    prefix = Number(p);
  }
  const value = Number(parsed.value);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if ((value & mask) >>> 0 !== value) {
    const network = [24, 16, 8, 0].map((s) => ((value & mask) >>> s) & 255).join('.');
    return { ok: false, error: `"${text}" has host bits set: did you mean ${network}/${prefix}?` };
  }
  return { ok: true, value: { text: `${ip}/${prefix}`, network: value, prefix } };
}

export function subnetContains(s: Subnet, ip: string): boolean {
  const parsed = ipToBigInt(ip);
  if (parsed?.family !== 4) return false;
  if (s.prefix === 0) return true;
  const mask = (0xffffffff << (32 - s.prefix)) >>> 0;
  return (Number(parsed.value) & mask) >>> 0 === s.network;
}

function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  const prefix = Math.min(a.prefix, b.prefix);
  if (prefix === 0) return true;
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  return (a.network & mask) >>> 0 === (b.network & mask) >>> 0;
}

export function parsePortRange(v: number | string): Result<PortRange> {
  const text = String(v).trim();
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(text);
  const bad = { ok: false as const, error: `"${text}" is not a port (1-65535) or a range such as 6600-6700` };
  if (!m) return bad;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535 || from > to) return bad;
  return { ok: true, value: { from, to } };
}

export function formatPortRange(p: PortRange): string {
  return p.from === p.to ? String(p.from) : `${p.from}-${p.to}`;
}

const subnet = z.string().transform(fromResult(parseSubnet));

const portRange = z.union([z.number(), z.string()]).transform(fromResult(parsePortRange));

export const interceptRuleSchema = z.strictObject({
  /** Shown in status, metrics and log lines; default intercept0, intercept1, ... */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/)
    .optional(),
  /** The peer gateway that serves these destinations (one of peers[].name, with an address). */
  peer: z.string().min(1),
  subnets: z.array(subnet).min(1, { error: 'at least one subnet, e.g. [10.2.0.0/16]' }),
  /** TCP destination ports; absent: every TCP port. */
  ports: z.array(portRange).min(1, { error: 'leave ports out to intercept every TCP port' }).optional(),
});

export type InterceptRule = z.output<typeof interceptRuleSchema>;

export const INTERCEPT_METHODS = ['tproxy', 'redirect'] as const;
export type InterceptMethod = (typeof INTERCEPT_METHODS)[number];

/**
 * The defaults pick values no distribution uses: fwmark 0x4c48 ("LH") under mask 0xffff, routing
 * table 76 ("L"), rule priority 17600 (ahead of main's 32766, behind anything an operator put
 * before it).
 */
export const DEFAULT_INTERCEPT_LISTENER = {
  listen: { host: '0.0.0.0', port: 4510 },
  method: 'tproxy' as InterceptMethod,
  fwmark: 0x4c48,
  fwmask: 0xffff,
  table: 76,
  rulePriority: 17600,
};

const u32 = z.union([z.number(), z.string()]).transform((v, ctx): number => {
  const n = typeof v === 'number' ? v : /^0x[0-9a-f]{1,8}$/i.test(v) ? parseInt(v, 16) : /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
    ctx.addIssue({ code: 'custom', message: `expected a positive 32-bit number such as 0x4c48, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

export function interceptListenerSchema<E extends z.ZodType>(endpoint: E) {
  return z
    .strictObject({
      /** Where the kernel delivers intercepted connections (TPROXY --on-port, REDIRECT --to-ports). */
      listen: endpoint.optional(),
      /** tproxy: the accepted socket's local address is the destination; redirect: SO_ORIGINAL_DST. */
      method: z.enum(INTERCEPT_METHODS, { error: 'expected tproxy or redirect' }).default('tproxy'),
      fwmark: u32.default(DEFAULT_INTERCEPT_LISTENER.fwmark),
      fwmask: u32.default(DEFAULT_INTERCEPT_LISTENER.fwmask),
      table: z
        .number()
        .int()
        .min(1)
        .max(0xfffffffe)
        .refine((t) => t !== 253 && t !== 254 && t !== 255, { error: "tables 253-255 are the kernel's default, main and local" })
        .default(DEFAULT_INTERCEPT_LISTENER.table),
      rulePriority: z.number().int().min(1).max(32765).default(DEFAULT_INTERCEPT_LISTENER.rulePriority),
    })
    .default({
      method: 'tproxy',
      fwmark: DEFAULT_INTERCEPT_LISTENER.fwmark,
      fwmask: DEFAULT_INTERCEPT_LISTENER.fwmask,
      table: DEFAULT_INTERCEPT_LISTENER.table,
      rulePriority: DEFAULT_INTERCEPT_LISTENER.rulePriority,
    });
}

interface PeerLike {
  name: string;
  address?: unknown;
}

/** Cross-entry checks, reported at their key paths (called from the gateway schema's superRefine). */
export function checkInterceptRules(
  rules: readonly InterceptRule[],
  peers: readonly PeerLike[],
  ctx: z.RefinementCtx,
  listener: { fwmark: number; fwmask: number },
): void {
  rules.forEach((r, i) => {
    const peer = peers.find((p) => p.name === r.peer);
    if (!peer) {
      const known = peers.map((p) => `"${p.name}"`).join(', ') || 'none defined';
      ctx.addIssue({ code: 'custom', path: ['intercept', i, 'peer'], message: `unknown peer "${r.peer}" (peers: ${known})` });
    } else if (!peer.address) {
      ctx.addIssue({
        code: 'custom',
        path: ['intercept', i, 'peer'],
        message: `peer "${r.peer}" has no address, so this gateway cannot carry connections to it`,
      });
    }
    for (let j = 0; j < i; j++) {
      const o = rules[j]!;
      if (o.peer === r.peer) continue;
      const clash = firstOverlap(o, r);
      if (clash) {
        ctx.addIssue({
          code: 'custom',
          path: ['intercept', i, 'subnets'],
          message: `${clash} is claimed by peer "${o.peer}" (intercept[${j}]) and peer "${r.peer}": a destination must belong to one peer`,
        });
      }
    }
  });
  if ((listener.fwmark & listener.fwmask) !== listener.fwmark) {
    ctx.addIssue({ code: 'custom', path: ['interceptListener', 'fwmark'], message: 'fwmark has bits outside fwmask' });
  }
}

function firstOverlap(a: InterceptRule, b: InterceptRule): string | null {
  for (const sa of a.subnets) {
    for (const sb of b.subnets) {
      if (!subnetsOverlap(sa, sb)) continue;
      const pa = a.ports ?? [{ from: 1, to: 65535 }];
      const pb = b.ports ?? [{ from: 1, to: 65535 }];
      for (const x of pa)
        for (const y of pb)
          if (x.from <= y.to && y.from <= x.to)
            return `${sa.prefix >= sb.prefix ? sa.text : sb.text} port ${formatPortRange({ from: Math.max(x.from, y.from), to: Math.min(x.to, y.to) })}`;
    }
  }
  return null;
}

/** The rule a destination belongs to (first in config order), or null: no peer serves it. */
export function matchIntercept<R extends InterceptRule>(
  rules: readonly R[],
  host: string,
  port: number,
): { rule: R; index: number } | null {
  for (const [index, rule] of rules.entries()) {
    if (rule.ports && !rule.ports.some((p) => port >= p.from && port <= p.to)) continue;
    if (rule.subnets.some((s) => subnetContains(s, host))) return { rule, index };
  }
  return null;
}

export function interceptRuleName(rule: InterceptRule, index: number): string {
  return rule.name ?? `intercept${index}`;
}

/**
 * `--intercept SUBNET[,SUBNET...][:PORT[,PORT...]]` for the quick-start peer, e.g.
 * `--intercept 10.2.0.0/16:443,3260,6600-6700`, or PEER=... to name the peer explicitly.
 */
export function interceptFlagToRaw(spec: string, defaultPeer: string): { peer: string; subnets: string[]; ports?: string[] } {
  let rest = spec;
  let peer = defaultPeer;
  const eq = rest.indexOf('=');
  if (eq >= 0) {
    peer = rest.slice(0, eq);
    rest = rest.slice(eq + 1);
  }
  const colon = rest.indexOf(':');
  const subnets = (colon >= 0 ? rest.slice(0, colon) : rest).split(',').filter((s) => s !== '');
  if (colon < 0) return { peer, subnets };
  return {
    peer,
    subnets,
    ports: rest
      .slice(colon + 1)
      .split(',')
      .filter((s) => s !== ''),
  };
}
