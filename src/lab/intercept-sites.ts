// Sites with hosts for transparent interception (docs/intercept.md), built on the lab (netns.ts):
// a client host on a LAN at site A, a server host on a LAN at site B, routed to each other over
// the lab's VXLAN overlay (through the emulator), and the gateways on the lab's own WAN relay.
//
//   in-path:  client ── A (router + gateway A) ══ emulator ══ B (router + gateway B) ── server
//   one-arm:  client ── A (router) ══ emulator ══ B (router + gateway B) ── server
//                       │ policy routing: TCP to site B's LAN goes via gateway A
//                       gwa (gateway A, one interface)
//
// The server has two addresses: SERVER on site B's LAN (the subnet gateway A intercepts) and
// SERVER_UNSERVED (a subnet routed the same way that no peer serves). Extra namespaces are
// `${prefix}-client`, `${prefix}-server`, `${prefix}-gwa`; interceptSitesDown removes them and the
// lab, killing only the processes it started.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { VXLAN, collectOutput, labDown, labUp, namespaceName, type LabId, type LinkSpec } from './netns.ts';
import { LAB_ADDRESSES } from './emulator-config.ts';
import { stopProcess } from './bench/methods.ts';
import type { GatewayStatus } from '../gateway/gateway.ts';

export const INTERCEPT_ADDRESSES = {
  /** Site A's LAN: the router (A) and the client. */
  aLan: '198.18.101.1',
  client: '198.18.101.2',
  aLanNet: '198.18.101.0/24',
  /** Site B's LAN: the router (B) and the server. */
  bLan: '198.18.102.1',
  server: '198.18.102.2',
  bLanNet: '198.18.102.0/24',
  /** Another of the server's addresses, in a subnet no peer serves. */
  serverUnserved: '198.18.103.2',
  unservedNet: '198.18.103.0/24',
  /** One-arm: router A's leg to gateway A, and gateway A. */
  armRouter: '198.18.104.1',
  armGateway: '198.18.104.2',
  armNet: '198.18.104.0/24',
} as const;

export type InterceptTopology = 'in-path' | 'one-arm';

/** The routing table router A uses (one-arm) for TCP to site B's LAN. */
const ONE_ARM_TABLE = '200';

export interface InterceptSites {
  lab: LabId;
  topology: InterceptTopology;
  ns: { client: string; server: string; a: string; b: string; gatewayA: string; gatewayB: string };
  /** Gateway A's WAN address, and where it reaches gateway B (the emulator's near side). */
  gatewayAWan: string;
  gatewayAPeer: string;
  gatewayBWan: string;
  /** Gateway A's LAN-side address (explicit tunnels listen here). */
  gatewayALan: string;
}

export function siteNamespaces(lab: LabId): { client: string; server: string; gwa: string } {
  return { client: `${lab.prefix}-client`, server: `${lab.prefix}-server`, gwa: `${lab.prefix}-gwa` };
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr ?? '').trim()}`);
}

function sysctl(ns: string, settings: Record<string, string>): void {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`sysctl in ${ns}: ${(r.stderr ?? '').trim()}`);
}

// A router forwards; strict reverse-path filtering would drop the one-arm's asymmetric flows
// (the gateway answers with the server's address from a leg the server is not behind).
const ROUTER = { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' };
const HOST = { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1', 'net.ipv4.tcp_no_metrics_save': '1' };

function addNamespace(ns: string): void {
  ip('netns', 'add', ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  sysctl(ns, HOST);
}

function veth(nsA: string, devA: string, addrA: string, nsB: string, devB: string, addrB: string): void {
  ip('link', 'add', devA, 'netns', nsA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB);
  ip('-n', nsA, 'addr', 'add', `${addrA}/24`, 'dev', devA);
  ip('-n', nsB, 'addr', 'add', `${addrB}/24`, 'dev', devB);
  ip('-n', nsA, 'link', 'set', devA, 'up');
  ip('-n', nsB, 'link', 'set', devB, 'up');
}

/** The lab (on `profile`) with client, server and, one-arm, a separate gateway A host. */
export async function interceptSitesUp(o: {
  lab: LabId;
  topology: InterceptTopology;
  profile: LinkSpec;
  /** One-arm: router A's own TCP to site B's LAN also goes via gateway A (a hypervisor that is its own router). */
  routerTrafficViaGateway?: boolean;
}): Promise<InterceptSites> {
  await interceptSitesDown(o.lab);
  await labUp({ lab: o.lab, profile: o.profile, replace: true });
  const a = namespaceName('a', o.lab);
  const b = namespaceName('b', o.lab);
  const emu = namespaceName('emu', o.lab);
  const x = siteNamespaces(o.lab);
  const I = INTERCEPT_ADDRESSES;
  try {
    addNamespace(x.client);
    addNamespace(x.server);
    veth(a, 'a-cl', I.aLan, x.client, 'cl-a', I.client);
    veth(b, 'b-sv', I.bLan, x.server, 'sv-b', I.server);
    ip('-n', x.server, 'addr', 'add', `${I.serverUnserved}/32`, 'dev', 'lo');
    ip('-n', x.client, 'route', 'add', 'default', 'via', I.aLan);
    ip('-n', x.server, 'route', 'add', 'default', 'via', I.bLan);
    sysctl(a, ROUTER);
    sysctl(b, ROUTER);
    // Between the sites, routed traffic crosses the overlay (and so the emulated link).
    for (const net of [I.bLanNet, I.unservedNet]) ip('-n', a, 'route', 'add', net, 'via', VXLAN.b);
    ip('-n', b, 'route', 'add', I.aLanNet, 'via', VXLAN.a);
    ip('-n', b, 'route', 'add', I.unservedNet, 'via', I.server);
    let gatewayA = a;
    let gatewayAWan: string = LAB_ADDRESSES.aPeer;
    let gatewayALan: string = I.aLan;
    if (o.topology === 'one-arm') {
      addNamespace(x.gwa);
      veth(a, 'a-gw', I.armRouter, x.gwa, 'gw-a', I.armGateway);
      ip('-n', x.gwa, 'route', 'add', 'default', 'via', I.armRouter);
      // The gateway hands back what it does not intercept (other ports) to the router: no redirects for that.
      sysctl(x.gwa, {
        ...ROUTER,
        'net.ipv4.conf.all.send_redirects': '0',
        'net.ipv4.conf.default.send_redirects': '0',
        'net.ipv4.conf.gw-a.send_redirects': '0',
      });
      // Router A: TCP from the client LAN to site B's LAN goes to the gateway; all else as before.
      ip('-n', a, 'route', 'add', 'default', 'via', I.armGateway, 'table', ONE_ARM_TABLE);
      ip('-n', a, 'rule', 'add', 'iif', 'a-cl', 'to', I.bLanNet, 'ipproto', 'tcp', 'lookup', ONE_ARM_TABLE, 'pref', '1000');
      if (o.routerTrafficViaGateway)
        ip('-n', a, 'rule', 'add', 'iif', 'lo', 'to', I.bLanNet, 'ipproto', 'tcp', 'lookup', ONE_ARM_TABLE, 'pref', '1001');
      // The gateway's WAN datagrams are routed by A to the emulator, which answers to their source.
      ip('-n', emu, 'route', 'add', I.armNet, 'via', LAB_ADDRESSES.aPeer);
      ip('-n', b, 'route', 'add', I.armNet, 'via', VXLAN.a);
      gatewayA = x.gwa;
      gatewayAWan = I.armGateway;
      gatewayALan = I.armGateway;
    }
    return {
      lab: o.lab,
      topology: o.topology,
      ns: { client: x.client, server: x.server, a, b, gatewayA, gatewayB: b },
      gatewayAWan,
      gatewayAPeer: LAB_ADDRESSES.aNear,
      gatewayBWan: LAB_ADDRESSES.bPeer,
      gatewayALan,
    };
  } catch (err) {
    await interceptSitesDown(o.lab);
    throw err;
  }
}

/** Removes the extra namespaces and the lab. Processes started with nsSpawn are the caller's to stop first. */
export async function interceptSitesDown(lab: LabId): Promise<void> {
  for (const ns of Object.values(siteNamespaces(lab))) {
    if (existsSync(`/run/netns/${ns}`)) ip('netns', 'del', ns);
  }
  await labDown({ lab });
}

/** Runs argv in namespace `ns` (its PID is the command's: ip netns exec execs it). */
export function nsSpawn(
  ns: string,
  argv: string[],
  opts: { stdio?: 'pipe' | 'ignore' | Array<'pipe' | 'ignore' | number> } = {},
): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
}

export interface NsRunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** nsSpawn and collect the output, killed after timeoutMs. */
export function nsRun(ns: string, argv: string[], timeoutMs = 30_000): Promise<NsRunResult> {
  return collectOutput(nsSpawn(ns, argv), { timeoutMs });
}

/** Stops a process we started: SIGTERM, SIGKILL after the grace period (the bench's own). */
export const stopSpawned = stopProcess;

/** A gateway's `longhaul status --json`, asked inside its namespace. */
export async function gatewayStatus(ns: string): Promise<GatewayStatus> {
  const r = await nsRun(ns, [process.execPath, CLI_MAIN, 'status', '--json'], 15_000);
  if (r.code !== 0) throw new Error(`longhaul status in ${ns}: ${r.stderr}`);
  return JSON.parse(r.stdout) as GatewayStatus;
}

export const CLI_MAIN = new URL('../cli/main.ts', import.meta.url).pathname;
export const WAN_PORT = 4500;
/** Gateway A's explicit tunnels (the comparison path): listen port -> the same server port. */
export const TUNNEL_PORT_OFFSET = 10_000;

export interface GatewayPair {
  a: ChildProcess;
  b: ChildProcess;
  /** Everything each gateway printed (JSON log lines). */
  logA(): string;
  logB(): string;
  stop(): Promise<void>;
}

/** The intercept flags gateway A runs with and `longhaul intercept install` is given. */
export function gatewayAInterceptFlags(sites: InterceptSites, ports: readonly number[]): string[] {
  return [
    '--name',
    'a',
    '--peer',
    `${sites.gatewayAPeer}:${WAN_PORT}`,
    '--peer-name',
    'b',
    '--intercept',
    `b=${INTERCEPT_ADDRESSES.bLanNet}:${ports.join(',')}`,
  ];
}

function keygen(dir: string, name: string): void {
  const r = spawnSync(process.execPath, [CLI_MAIN, 'keygen', name, '--dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keygen ${name}: ${r.stderr}`);
}

function started(child: ChildProcess, what: string, timeoutMs: number): { ready: Promise<void>; log: () => string } {
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms: ${out.slice(-1000)}`)), timeoutMs);
    const on = (d: string): void => {
      out += d;
      if (out.includes('"gateway started"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.setEncoding('utf8').on('data', on);
    child.stderr!.setEncoding('utf8').on('data', on);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}): ${out.slice(-1000)}`));
    });
  });
  ready.catch(() => {});
  return { ready, log: () => out };
}

/**
 * Gateway B (allowing site B's LAN) and gateway A, intercepting `ports` on site B's LAN and with
 * an explicit tunnel per port on its LAN address (port + TUNNEL_PORT_OFFSET): one pair of
 * gateways serves both paths.
 */
export async function startGateways(
  sites: InterceptSites,
  o: { keyDir: string; ports: readonly number[]; extraFlags?: string[] },
): Promise<GatewayPair> {
  keygen(o.keyDir, 'a');
  keygen(o.keyDir, 'b');
  const common = ['--log-json', '--log-level', 'info', ...(o.extraFlags ?? [])];
  const b = nsSpawn(sites.ns.gatewayB, [
    process.execPath,
    CLI_MAIN,
    'gateway',
    '--name',
    'b',
    '--wan',
    `${sites.gatewayBWan}:${WAN_PORT}`,
    '--peer-name',
    'a',
    '--key',
    `${o.keyDir}/b.key`,
    '--peer-key',
    `${o.keyDir}/a.pub`,
    '--allow',
    INTERCEPT_ADDRESSES.bLanNet,
    ...common,
  ]);
  const a = nsSpawn(sites.ns.gatewayA, [
    process.execPath,
    CLI_MAIN,
    'gateway',
    '--wan',
    `${sites.gatewayAWan}:${WAN_PORT}`,
    ...gatewayAInterceptFlags(sites, o.ports),
    ...o.ports.flatMap((p) => ['--tunnel', `${sites.gatewayALan}:${p + TUNNEL_PORT_OFFSET}=${INTERCEPT_ADDRESSES.server}:${p}`]),
    '--key',
    `${o.keyDir}/a.key`,
    '--peer-key',
    `${o.keyDir}/b.pub`,
    ...common,
  ]);
  const sb = started(b, 'gateway B', 20_000);
  const sa = started(a, 'gateway A', 20_000);
  const stop = async (): Promise<void> => {
    await Promise.all([stopSpawned(a), stopSpawned(b)]);
  };
  try {
    await Promise.all([sa.ready, sb.ready]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { a, b, logA: sa.log, logB: sb.log, stop };
}
