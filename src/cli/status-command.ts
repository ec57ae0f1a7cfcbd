// `longhaul status`: asks a running gateway's control interface for its figures.
import type { Command } from 'commander';
import { DEFAULT_CONTROL } from '../gateway/config.ts';
import { parseEndpoint, formatEndpoint } from '../gateway/address.ts';
import type { GatewayStatus } from '../gateway/gateway.ts';
import { CONTROL_TOKEN_ENV, controlHeaders, tokenRefused } from './control-token.ts';

function rate(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(1)} kbit/s`;
  return `${Math.round(bps)} bit/s`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x < 0.01 ? 3 : 2)}%`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatStatus(s: GatewayStatus): string {
  const out: string[] = [];
  out.push(`gateway ${s.name}  wan ${s.wan}  up ${s.uptimeSec}s  ${s.security}`);
  out.push(
    `connections ${s.connections.active}/${s.connections.max}  memory rss ${bytes(s.memory.rssBytes)} (budget ${bytes(s.memory.budgetBytes)})`,
  );
  out.push('');
  if (s.associations.length === 0) out.push('associations: none');
  else {
    out.push('associations:');
    out.push(
      table([
        ['peer', 'role', 'remote', 'state', 'rtt', 'bandwidth est', 'send rate', 'loss', 'retrans', 'raw out/in', 'wire out/in', 'streams'],
        ...s.associations.map((a) => [
          a.peer,
          a.role,
          a.remote,
          !a.connected ? 'connecting' : a.reachable === false ? `UNREACHABLE since ${a.unreachableSince}` : 'up',
          `${a.rttMs.toFixed(1)} ms`,
          rate(a.bandwidthBps),
          rate(a.sendRateBps),
          pct(a.lossRate),
          pct(a.retransmitRate),
          `${bytes(a.bytesOutRaw)} / ${bytes(a.bytesInRaw)}`,
          `${bytes(a.bytesOutWire)} / ${bytes(a.bytesInWire)}`,
          String(a.activeStreams),
        ]),
      ]),
    );
  }
  out.push('');
  if (s.tunnels.length > 0) {
    out.push('tunnels:');
    out.push(
      table([
        ['name', 'listen', 'peer', 'target', 'active', 'total', 'failed'],
        ...s.tunnels.map((t) => [t.name, t.listen, t.peer, t.target, String(t.active), String(t.total), String(t.failed)]),
      ]),
    );
    out.push('');
  }
  if (s.intercept) {
    const ic = s.intercept;
    out.push(`intercept: listening on ${ic.listen} (${ic.method})  unserved ${ic.unserved}  unreadable ${ic.unreadable}`);
    out.push(
      table([
        ['rule', 'peer', 'subnets', 'ports', 'active', 'total', 'failed'],
        ...ic.rules.map((r) => [
          r.name,
          r.peer,
          r.subnets.join(','),
          r.ports === 'all' ? 'all' : r.ports.join(','),
          String(r.active),
          String(r.total),
          String(r.failed),
        ]),
      ]),
    );
    if (ic.connections.length > 0) {
      out.push(
        table([
          ['client', 'original destination', 'rule', 'peer', 'stream', 'age'],
          ...ic.connections.map((c) => [c.client, c.originalDst, c.rule, c.peer, String(c.stream), `${c.ageSec}s`]),
        ]),
      );
      if (ic.connectionsNotListed > 0) out.push(`(${ic.connectionsNotListed} more not listed)`);
    }
    out.push('');
  }
  out.push(`inbound: active ${s.inbound.active}  total ${s.inbound.total}  refused ${s.inbound.refused}  failed ${s.inbound.failed}`);
  for (const p of s.peers ?? []) {
    const reach = p.reachable === false ? `UNREACHABLE since ${p.unreachableSince} (${p.unreachableForSec} s)  ` : '';
    out.push(
      `peer ${p.name}: ${reach}outages ${p.outages ?? 0}  restarts detected ${p.restartsDetected}  re-associations ${p.reassociations}  liveness probes ${p.livenessProbes}  re-handshakes ${p.rehandshakes}`,
    );
  }
  const e = s.codec.encode;
  const d = s.codec.decode;
  out.push(
    `compression: ${e.setting}  sent ${bytes(e.bytesIn)} -> ${bytes(e.bytesOut)} (ratio ${e.ratio.toFixed(3)}, raw blocks ${e.blocksRaw}/${e.blocks}, cpu ${(e.cpuMs / 1000).toFixed(2)} s)  received ${bytes(d.bytesIn)} -> ${bytes(d.bytesOut)} (cpu ${(d.cpuMs / 1000).toFixed(2)} s)`,
  );
  const c = s.crypto.endpoint;
  if (c) {
    out.push(
      `crypto: sessions ${c.sessions}  sealed ${c.packetsSealed}  opened ${c.packetsOpened}  auth failures ${c.authFailures}  replays ${c.replays}  handshakes ${c.handshakesCompleted} ok / ${c.handshakesFailed} failed  cookies ${c.cookiesSent}`,
    );
  } else {
    out.push(`crypto: ${s.crypto.mode}`);
  }
  return out.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description("print a running gateway's live figures (from its control interface)")
    .option('--json', 'print the raw JSON (for scripts)')
    .option(
      '--control <host:port>',
      `control address of the gateway (default ${DEFAULT_CONTROL}), e.g. --control 127.0.0.1:4601`,
      DEFAULT_CONTROL,
    )
    .option('--token-file <file>', `the control token, if the gateway requires one (default: $${CONTROL_TOKEN_ENV})`)
    .action(async (opts: { json?: boolean; control: string; tokenFile?: string }) => {
      const at = parseEndpoint(opts.control);
      if (!at.ok) {
        process.stderr.write(`longhaul status: --control: ${at.error}\n`);
        process.exitCode = 2;
        return;
      }
      const auth = controlHeaders(opts.tokenFile);
      if (!auth.ok) {
        process.stderr.write(`longhaul status: ${auth.error}\n`);
        process.exitCode = 2;
        return;
      }
      const url = `http://${formatEndpoint(at.value)}/status`;
      let body: GatewayStatus;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000), headers: auth.headers });
        if (res.status === 401) {
          process.stderr.write(`longhaul status: ${formatEndpoint(at.value)}: ${tokenRefused('authorization' in auth.headers)}\n`);
          process.exitCode = 1;
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        body = (await res.json()) as GatewayStatus;
      } catch (err) {
        const cause = (err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        process.stderr.write(`longhaul status: no gateway answering at ${formatEndpoint(at.value)} (${cause})\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(opts.json ? `${JSON.stringify(body, null, 2)}\n` : `${formatStatus(body)}\n`);
    });
}
