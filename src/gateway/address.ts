// Parsing of the address forms the config and the flags use: HOST:PORT endpoints
// (IPv6 in brackets) and allow-list entries (CIDR with an optional port).
import { isIP } from 'node:net';
import type { Result } from '../result.ts';

export interface Endpoint {
  host: string;
  port: number;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/;

function parsePort(text: string, allowZero: boolean): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  if (port > 65535 || (!allowZero && port === 0)) return null;
  return port;
}

/** HOST:PORT or [IPV6]:PORT. Port 0 only when `allowZero` (listeners on an ephemeral port). */
export function parseEndpoint(text: string, allowZero = false): Result<Endpoint> {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return { ok: false, error: `expected [IPV6]:PORT, got "${text}"` };
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (isIP(host) !== 6) return { ok: false, error: `"${host}" is not an IPv6 address` };
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return { ok: false, error: `expected HOST:PORT (e.g. 10.0.0.7:6600), got "${text}"` };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return { ok: false, error: `IPv6 addresses need brackets: [${host}]:${portText}` };
    if (isIP(host) === 0 && !HOSTNAME.test(host)) return { ok: false, error: `"${host}" is not an IP address or host name` };
  }
  const port = parsePort(portText, allowZero);
  if (port === null) return { ok: false, error: `"${portText}" is not a valid port (1-65535)` };
  return { ok: true, value: { host, port } };
}

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** One allow-list entry: an address block, and a port or any port (null). */
export interface AllowRule {
  family: 4 | 6;
  network: bigint;
  prefix: number;
  port: number | null;
  text: string;
}

export function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | null {
  const family = isIP(ip);
  if (family === 4) {
    const parts = ip.split('.');
    let v = 0n;
    for (const p of parts) v = (v << 8n) | BigInt(Number(p));
    return { family: 4, value: v };
  }
  if (family === 6) {
    // IPv4-mapped addresses are matched as IPv4 so "10.0.0.0/8" also covers ::ffff:10.1.2.3.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    if (mapped) return ipToBigInt(mapped[1]!);
    let head = ip;
    let tail = '';
    const dbl = ip.indexOf('::');
    if (dbl >= 0) {
      head = ip.slice(0, dbl);
      tail = ip.slice(dbl + 2);
    }
    const expandV4 = (groups: string[]): string[] => {
      const last = groups[groups.length - 1];
      if (last?.includes('.')) {
        const o = last.split('.').map(Number);
        groups.splice(groups.length - 1, 1, ((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16));
      }
      return groups;
    };
    const h = head ? expandV4(head.split(':')) : [];
    const t = tail ? expandV4(tail.split(':')) : [];
    const groups = dbl >= 0 ? [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
    let v = 0n;
    for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
    return { family: 6, value: v };
  }
  return null;
}

/** "10.0.0.0/24", "10.0.0.7", "10.0.0.0/24:443", "10.0.0.7:22", "::1/128", "[2001:db8::/32]:443". */
export function parseAllowRule(text: string): Result<AllowRule> {
  let cidr = text;
  let port: number | null = null;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, error: `unclosed "[" in "${text}"` };
    cidr = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return { ok: false, error: `expected [CIDR]:PORT, got "${text}"` };
      port = parsePort(rest.slice(1), false);
      if (port === null) return { ok: false, error: `"${rest.slice(1)}" is not a valid port (1-65535)` };
    }
  } else if (!text.includes('::') && text.split(':').length === 2) {
    const colon = text.indexOf(':');
    cidr = text.slice(0, colon);
    port = parsePort(text.slice(colon + 1), false);
    if (port === null) return { ok: false, error: `"${text.slice(colon + 1)}" is not a valid port (1-65535)` };
  }
  const slash = cidr.indexOf('/');
  const ip = slash >= 0 ? cidr.slice(0, slash) : cidr;
  const parsed = ipToBigInt(ip);
  if (!parsed) return { ok: false, error: `"${ip}" is not an IP address (allow entries are CIDR[:PORT], e.g. 10.0.0.0/24 or 10.0.0.7:22)` };
  const width = parsed.family === 4 ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const p = cidr.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > width)
      return { ok: false, error: `"/${p}" is not a valid prefix length for IPv${parsed.family} (0-${width})` };
    prefix = Number(p);
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix);
  return { ok: true, value: { family: parsed.family, network: parsed.value & mask, prefix, port, text } };
}

export function ruleMatches(rule: AllowRule, ip: string, port: number): boolean {
  const parsed = ipToBigInt(ip);
  if (!parsed || parsed.family !== rule.family) return false;
  if (rule.port !== null && rule.port !== port) return false;
  const width = rule.family === 4 ? 32 : 128;
  const shift = BigInt(width - rule.prefix);
  return parsed.value >> shift === rule.network >> shift;
}

export function isAllowed(rules: readonly AllowRule[], ip: string, port: number): boolean {
  for (const r of rules) if (ruleMatches(r, ip, port)) return true;
  return false;
}

/**
 * True for a host that only this machine can reach: "localhost", 127.0.0.0/8, ::1 (and
 * ::ffff:127.x). Any other name counts as reachable from elsewhere, since it may resolve so.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
