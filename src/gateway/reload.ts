// What a config reload may change on a running gateway, and what it may not. Pure: compares two
// validated configs; Gateway.reload() applies the plan.
//
// Live: tunnels (added, removed, re-targeted), intercept rules, allow, peers (added, removed, address, public
// key), rate, compression, logLevel, and the limits read per connection (maxConnections,
// connectWaitMs, targetConnectTimeoutMs, shutdownGraceMs).
// Restart: settings bound into the WAN socket, the packet-protection identity, the control
// socket or the transport's timers and windows of the running associations.
import { formatEndpoint } from './address.ts';
import type { GatewayConfig } from './config.ts';

/** Settings a reload cannot apply, as key paths, each with how to read its value. */
const RESTART_KEYS: ReadonlyArray<[string, (c: GatewayConfig) => unknown]> = [
  ['name', (c) => c.name],
  ['wan', (c) => formatEndpoint(c.wan)],
  ['wanReusePort', (c) => c.wanReusePort],
  ['key', (c) => c.key ?? null],
  ['cipher', (c) => c.cipher],
  ['mtu', (c) => c.mtu],
  ['control', (c) => (c.control === false ? false : formatEndpoint(c.control))],
  ['limits.memoryBudget', (c) => c.limits.memoryBudget],
  ['limits.peerTimeoutMs', (c) => c.limits.peerTimeoutMs ?? null],
  ['limits.peerRestartDetectMs', (c) => c.limits.peerRestartDetectMs ?? null],
  // The intercept listener is bound at start-up; the rules it matches against are live.
  ['intercept (on or off)', (c) => c.intercept.length > 0],
  [
    'interceptListener',
    (c) => ({ ...c.interceptListener, listen: c.interceptListener.listen ? formatEndpoint(c.interceptListener.listen) : null }),
  ],
];

/**
 * One message per setting that changed but needs a restart: "site.yaml: wan: 0.0.0.0:4500 ->
 * 0.0.0.0:4600 needs a restart (the running gateway keeps the old value)".
 */
export function restartNeeded(running: GatewayConfig, next: GatewayConfig): string[] {
  const prefix = next.origin?.file !== undefined ? `${next.origin.file}: ` : '';
  const out: string[] = [];
  for (const [key, get] of RESTART_KEYS) {
    const a = JSON.stringify(get(running));
    const b = JSON.stringify(get(next));
    if (a !== b) out.push(`${prefix}${key}: ${a} -> ${b} cannot change on a running gateway: restart it to apply`);
  }
  if (running.insecurePlaintext !== next.insecurePlaintext) out.push(`${prefix}--insecure-plaintext changed: restart the gateway to apply`);
  return out;
}

/** The tunnel's identity across a reload: its listening address as written. */
export function tunnelKey(t: GatewayConfig['tunnels'][number]): string {
  return formatEndpoint(t.listen);
}

/** Human-readable summary of the live changes (for the reload's log line and answer). */
export function describeChanges(running: GatewayConfig, next: GatewayConfig): string[] {
  const out: string[] = [];
  const oldT = new Map(running.tunnels.map((t) => [tunnelKey(t), t]));
  const newT = new Map(next.tunnels.map((t) => [tunnelKey(t), t]));
  for (const [k, t] of newT) {
    const o = oldT.get(k);
    if (!o) out.push(`tunnel added: ${k} -> ${t.peer} -> ${formatEndpoint(t.target)}`);
    else if (o.peer !== t.peer || formatEndpoint(o.target) !== formatEndpoint(t.target) || o.name !== t.name) {
      out.push(`tunnel changed: ${k} -> ${t.peer} -> ${formatEndpoint(t.target)} (new connections)`);
    }
  }
  for (const k of oldT.keys()) if (!newT.has(k)) out.push(`tunnel removed: ${k} (open connections finish)`);
  const oldP = new Map(running.peers.map((p) => [p.name, p]));
  const newP = new Map(next.peers.map((p) => [p.name, p]));
  for (const [n, p] of newP) {
    const o = oldP.get(n);
    if (!o) out.push(`peer added: ${n}`);
    else {
      const addr = (x: typeof p): string => (x.address ? formatEndpoint(x.address) : '');
      if (addr(o) !== addr(p)) out.push(`peer ${n}: address ${addr(o) || '(none)'} -> ${addr(p) || '(none)'} (next association)`);
      if (o.publicKey !== p.publicKey) out.push(`peer ${n}: publicKey file ${o.publicKey ?? ''} -> ${p.publicKey ?? ''}`);
    }
  }
  for (const n of oldP.keys()) if (!newP.has(n)) out.push(`peer removed: ${n} (its association closes)`);
  const intercept = (c: GatewayConfig): string => JSON.stringify(c.intercept);
  if (intercept(running) !== intercept(next))
    out.push("intercept rules changed (new connections; run `longhaul intercept install` for the kernel's rules)");
  const allow = (c: GatewayConfig): string => c.allow.map((r) => r.text).join(', ');
  if (allow(running) !== allow(next)) out.push(`allow: [${allow(next)}]`);
  if (JSON.stringify(running.rate) !== JSON.stringify(next.rate)) out.push(`rate: ${JSON.stringify(next.rate)}`);
  if (running.compression !== next.compression) out.push(`compression: ${running.compression} -> ${next.compression} (new connections)`);
  if (running.logLevel !== next.logLevel) out.push(`logLevel: ${running.logLevel} -> ${next.logLevel}`);
  for (const k of ['maxConnections', 'connectWaitMs', 'targetConnectTimeoutMs', 'shutdownGraceMs'] as const) {
    if (running.limits[k] !== next.limits[k]) out.push(`limits.${k}: ${running.limits[k]} -> ${next.limits[k]}`);
  }
  return out;
}
