// The kernel's side of interception, derived from the config alone (pure; apply.ts runs it):
// the iptables rules that divert the intercepted destinations to the gateway's listener, and,
// for TPROXY, the policy routing that delivers the marked packets locally.
//
// Everything is tagged so that removal touches nothing else: the rules live in a chain of their
// own (LH-<gateway name>), the one jump into it from PREROUTING and every rule in it carry the
// comment "longhaul:<gateway name>[:<what>]", and the ip rule and route carry protocol 76.
//
// What is never diverted: packets to this machine's own addresses (the WAN socket, the control
// port, the listener itself: `-m addrtype --dst-type LOCAL`), packets to the peers' WAN
// addresses, anything that is not TCP, and every destination no intercept rule names (so
// nothing is black-holed: it is routed as before).
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { GatewayConfig } from '../config.ts';
import { DEFAULT_INTERCEPT_LISTENER, interceptRuleName } from './config.ts';
import type { PortRange } from './config.ts';

/** The routing protocol number ("L") that marks the ip rule and route as Longhaul's. */
export const LONGHAUL_RTPROTO = 76;
// iptables' multiport takes at most 15 ports, a range counting as two.
const MULTIPORT_MAX = 15;
// Chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1).
const CHAIN_MAX = 28;

export interface InterceptPlan {
  gateway: string;
  method: 'tproxy' | 'redirect';
  table: 'mangle' | 'nat';
  chain: string;
  /** The rule in PREROUTING that sends TCP into the chain (inserted first, so no earlier ACCEPT skips it). */
  jump: string[];
  /** The chain's rules, in order. */
  chainRules: string[][];
  /** `ip rule add ARGS` and `ip route add ARGS` (TPROXY only). */
  ipRule: string[] | null;
  ipRoute: string[] | null;
  notes: string[];
}

export function chainName(gateway: string): string {
  const plain = `LH-${gateway}`;
  if (plain.length <= CHAIN_MAX) return plain;
  const hash = createHash('sha256').update(gateway).digest('hex').slice(0, 6);
  return `LH-${gateway.slice(0, CHAIN_MAX - 3 - 7)}-${hash}`;
}

function comment(gateway: string, what?: string): string[] {
  return ['-m', 'comment', '--comment', what === undefined ? `longhaul:${gateway}` : `longhaul:${gateway}:${what}`];
}

/** Port lists for multiport, each within its 15-slot limit. */
export function portChunks(ports: readonly PortRange[]): string[] {
  const chunks: string[] = [];
  let cur: string[] = [];
  let slots = 0;
  for (const p of ports) {
    const cost = p.from === p.to ? 1 : 2;
    if (slots + cost > MULTIPORT_MAX) {
      chunks.push(cur.join(','));
      cur = [];
      slots = 0;
    }
    cur.push(p.from === p.to ? String(p.from) : `${p.from}:${p.to}`);
    slots += cost;
  }
  if (cur.length) chunks.push(cur.join(','));
  return chunks;
}

export function interceptPlan(cfg: Pick<GatewayConfig, 'name' | 'intercept' | 'interceptListener' | 'peers'>): InterceptPlan {
  const gw = cfg.name;
  const l = cfg.interceptListener;
  const listen = l.listen ?? DEFAULT_INTERCEPT_LISTENER.listen;
  const method = l.method;
  const table = method === 'tproxy' ? 'mangle' : 'nat';
  const chain = chainName(gw);
  const notes: string[] = [];
  const chainRules: string[][] = [['-m', 'addrtype', '--dst-type', 'LOCAL', ...comment(gw, 'local'), '-j', 'RETURN']];
  for (const p of cfg.peers) {
    if (!p.address) continue;
    if (isIP(p.address.host) === 4) chainRules.push(['-d', `${p.address.host}/32`, ...comment(gw, `peer-${p.name}`), '-j', 'RETURN']);
    else
      notes.push(
        `peer ${p.name}: address ${p.address.host} is not an IPv4 literal, so it has no exclusion rule (its WAN traffic is UDP, which is never diverted)`,
      );
  }
  const mark = `0x${l.fwmark.toString(16)}/0x${l.fwmask.toString(16)}`;
  const target =
    method === 'tproxy'
      ? [
          '-j',
          'TPROXY',
          '--on-port',
          String(listen.port),
          ...(listen.host !== '0.0.0.0' ? ['--on-ip', listen.host] : []),
          '--tproxy-mark',
          mark,
        ]
      : ['-j', 'REDIRECT', '--to-ports', String(listen.port)];
  if (method === 'redirect' && listen.host !== '0.0.0.0') {
    notes.push(`REDIRECT delivers to the address of the interface the packet came in on: listen on 0.0.0.0, not ${listen.host}`);
  }
  cfg.intercept.forEach((r, i) => {
    const name = interceptRuleName(r, i);
    const ports = r.ports ? portChunks(r.ports) : [null];
    for (const s of r.subnets) {
      for (const chunk of ports) {
        const match =
          chunk === null ? [] : chunk.includes(',') || chunk.includes(':') ? ['-m', 'multiport', '--dports', chunk] : ['--dport', chunk];
        chainRules.push(['-d', s.text, '-p', 'tcp', ...match, ...comment(gw, name), ...target]);
      }
    }
  });
  return {
    gateway: gw,
    method,
    table,
    chain,
    jump: ['-p', 'tcp', ...comment(gw), '-j', chain],
    chainRules,
    ipRule:
      method === 'tproxy'
        ? ['fwmark', mark, 'lookup', String(l.table), 'pref', String(l.rulePriority), 'protocol', String(LONGHAUL_RTPROTO)]
        : null,
    ipRoute: method === 'tproxy' ? ['local', '0.0.0.0/0', 'dev', 'lo', 'table', String(l.table), 'proto', String(LONGHAUL_RTPROTO)] : null,
    notes,
  };
}

function shellWord(w: string): string {
  return /^[A-Za-z0-9_.,:/=@%+-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`;
}

export function shellLine(argv: readonly string[]): string {
  return argv.map(shellWord).join(' ');
}

/** The commands `install` runs on a machine that has none of them, as a shell script. */
export function installCommands(plan: InterceptPlan): string[][] {
  const ipt = ['iptables', '-w', '5', '-t', plan.table];
  const out: string[][] = [[...ipt, '-N', plan.chain]];
  for (const r of plan.chainRules) out.push([...ipt, '-A', plan.chain, ...r]);
  out.push([...ipt, '-I', 'PREROUTING', '1', ...plan.jump]);
  if (plan.ipRule) out.push(['ip', 'rule', 'add', ...plan.ipRule]);
  if (plan.ipRoute) out.push(['ip', 'route', 'add', ...plan.ipRoute]);
  return out;
}

/** The commands `remove` runs when everything is installed, as a shell script. */
export function removeCommands(plan: InterceptPlan): string[][] {
  const ipt = ['iptables', '-w', '5', '-t', plan.table];
  const out: string[][] = [];
  if (plan.ipRoute) out.push(['ip', 'route', 'del', ...plan.ipRoute]);
  if (plan.ipRule) out.push(['ip', 'rule', 'del', ...plan.ipRule]);
  out.push([...ipt, '-D', 'PREROUTING', ...plan.jump]);
  out.push([...ipt, '-F', plan.chain]);
  out.push([...ipt, '-X', plan.chain]);
  return out;
}

export function formatPlan(plan: InterceptPlan, which: 'install' | 'remove'): string {
  const lines = [
    `# longhaul intercept ${which} for gateway "${plan.gateway}" (${plan.method}, iptables table ${plan.table}, chain ${plan.chain})`,
    ...plan.notes.map((n) => `# note: ${n}`),
    ...(which === 'install' ? installCommands(plan) : removeCommands(plan)).map(shellLine),
  ];
  return `${lines.join('\n')}\n`;
}
