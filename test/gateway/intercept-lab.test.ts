// Transparent interception end to end (issue #17), as root in namespaces this test creates and
// deletes: a client at site A connects to the server's real address at site B; gateway A
// intercepts it (iptables TPROXY installed by `longhaul intercept install`), carries it over the
// lab's emulated link, and gateway B connects to the server. Nothing in the client or the server
// knows of Longhaul. A port not in the intercept list and a subnet no peer serves are routed
// around the gateways, and `longhaul intercept remove` leaves the gateway host's iptables and
// policy routing exactly as they were. Both topologies of docs/intercept.md: in-path and one-arm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  CLI_MAIN,
  INTERCEPT_ADDRESSES as I,
  gatewayAInterceptFlags,
  interceptSitesDown,
  interceptSitesUp,
  gatewayStatus,
  nsRun,
  nsSpawn,
  startGateways,
  stopSpawned,
  type InterceptTopology,
} from '../../src/lab/intercept-sites.ts';
import type { LabId } from '../../src/lab/netns.ts';
import { loadAddon } from '../../src/native/load.ts';
import type { GatewayStatus } from '../../src/gateway/gateway.ts';
import { holdLabLock } from '../lab/fixtures/lab-tools.ts';

const LAB: LabId = { prefix: 'lhic', stateDir: '/run/longhaul-lab-lhic' };
const FIXTURE = new URL('./intercept-peer.fixture.ts', import.meta.url).pathname;
const INTERCEPTED = 7000;
const NOT_LISTED = 7100;
const BYTES = 4 * 1024 * 1024;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, iptables)';
  if (spawnSync('iptables', ['--version'], { stdio: 'ignore' }).status !== 0)
    return 'iptables not installed (apt-get install -y iptables; scripts/install-system-deps.sh)';
  const addon = loadAddon('lh_sock');
  if (!addon.ok) return addon.error;
  return false;
}

/** iptables-save (without its dated comment lines and packet counters), ip rule, every routing table. */
async function netState(ns: string): Promise<string[]> {
  const save = await nsRun(ns, ['iptables-save']);
  assert.equal(save.code, 0, save.stderr);
  const rules = await nsRun(ns, ['ip', 'rule', 'show']);
  const routes = await nsRun(ns, ['ip', 'route', 'show', 'table', 'all']);
  return [
    ...save.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#') && l !== '')
      .map((l) => l.replace(/ \[\d+:\d+\]$/, '')),
    '--- ip rule',
    ...rules.stdout.split('\n').filter(Boolean),
    '--- ip route show table all',
    ...routes.stdout.split('\n').filter(Boolean),
  ];
}

/** Someone else's rules on the gateway host, which install and remove must leave alone. */
async function addForeignRules(ns: string): Promise<void> {
  for (const argv of [
    [
      'iptables',
      '-t',
      'mangle',
      '-A',
      'PREROUTING',
      '-p',
      'udp',
      '--dport',
      '9',
      '-m',
      'comment',
      '--comment',
      'other-admin',
      '-j',
      'MARK',
      '--set-mark',
      '0x7',
    ],
    ['iptables', '-t', 'mangle', '-N', 'OTHER'],
    ['iptables', '-t', 'mangle', '-A', 'OTHER', '-p', 'tcp', '-j', 'RETURN'],
    ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '198.18.250.0/24', '-j', 'RETURN'],
    ['iptables', '-t', 'filter', '-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT'],
    ['ip', 'rule', 'add', 'from', '198.18.250.0/24', 'lookup', '250', 'pref', '20000'],
    ['ip', 'route', 'add', 'blackhole', '198.18.251.0/24', 'table', '250'],
  ]) {
    const r = await nsRun(ns, argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
}

interface ClientResult {
  ok: boolean;
  sha256Ok: boolean;
  echoOk: boolean;
  error?: string;
  local: string;
  server: { remote: string; local: string; bytes: number } | null;
}

async function client(ns: string, host: string, port: number, holdMs = 0): Promise<ClientResult> {
  const r = await nsRun(ns, [process.execPath, FIXTURE, 'client', host, String(port), String(BYTES), String(holdMs)], 60_000);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as ClientResult;
  } catch {
    throw new Error(`client ${host}:${port} gave no result (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

function waitLine(child: ChildProcess, marker: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "${marker}" within ${timeoutMs} ms: ${out}`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(marker)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function cli(ns: string, args: string[]): Promise<string> {
  const r = await nsRun(ns, [process.execPath, CLI_MAIN, ...args], 30_000);
  assert.equal(r.code, 0, `longhaul ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function scenario(topology: InterceptTopology, method: 'tproxy' | 'redirect' = 'tproxy'): Promise<void> {
  const release = await holdLabLock(LAB);
  const keyDir = mkdtempSync(join(tmpdir(), 'lhic-keys-'));
  const started: ChildProcess[] = [];
  let stopGateways = async (): Promise<void> => {};
  try {
    const sites = await interceptSitesUp({ lab: LAB, topology, profile: 'metro' });
    const gwNs = sites.ns.gatewayA;
    const methodFlags = ['--intercept-method', method];
    const flags = [...gatewayAInterceptFlags(sites, [INTERCEPTED]), ...methodFlags];

    // Before anything: without the gateways, the server is reachable directly (routed over the overlay).
    await addForeignRules(gwNs);
    const before = await netState(gwNs);

    await cli(gwNs, ['intercept', 'install', ...flags]);
    const installed = await netState(gwNs);
    assert.notDeepEqual(installed, before, 'install changed nothing');
    assert.ok(
      installed.some(
        (l) =>
          l.includes(method === 'tproxy' ? '-j TPROXY' : '-j REDIRECT') &&
          l.includes('longhaul:a:intercept0') &&
          l.includes(`${I.bLanNet}`) &&
          l.includes(`--dport ${INTERCEPTED}`),
      ),
      installed.join('\n'),
    );
    assert.match(await cli(gwNs, ['intercept', 'install', ...flags]), /nothing to install/);
    assert.deepEqual(await netState(gwNs), installed, 'a second install changed the rules');

    const server = nsSpawn(sites.ns.server, [process.execPath, FIXTURE, 'server', `${INTERCEPTED},${NOT_LISTED}`]);
    started.push(server);
    await waitLine(server, 'listening', 15_000);
    const gw = await startGateways(sites, { keyDir, ports: [INTERCEPTED], extraFlags: methodFlags });
    started.push(gw.a, gw.b);
    stopGateways = gw.stop;

    // Intercepted: the client dials the server's real address; the server sees gateway B.
    const r = await client(sites.ns.client, I.server, INTERCEPTED);
    assert.ok(r.ok, `intercepted transfer not verified: ${JSON.stringify(r)}\nA: ${gw.logA().slice(-2000)}\nB: ${gw.logB().slice(-2000)}`);
    assert.equal(r.server!.bytes, BYTES);
    assert.equal(r.server!.local, `${I.server}:${INTERCEPTED}`);
    assert.equal(r.server!.remote.split(':')[0], I.bLan, "the server's connection did not come from gateway B");
    assert.equal(r.local.split(':')[0], I.client);

    // While one is open, status and metrics name its original destination; the log lines do too.
    const held = client(sites.ns.client, I.server, INTERCEPTED, 3000);
    let open: GatewayStatus['intercept'] = null;
    for (let i = 0; i < 20; i++) {
      await new Promise((res) => setTimeout(res, 150));
      open = (await gatewayStatus(gwNs)).intercept;
      if (open?.connections.length) break;
    }
    assert.ok(open && open.connections.length === 1, `status lists no open intercepted connection: ${JSON.stringify(open)}`);
    assert.equal(open.connections[0]!.originalDst, `${I.server}:${INTERCEPTED}`);
    assert.equal(open.connections[0]!.client.split(':')[0], I.client);
    assert.equal(open.connections[0]!.peer, 'b');
    const metrics = await nsRun(
      gwNs,
      [process.execPath, '-e', "fetch('http://127.0.0.1:4501/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"],
      15_000,
    );
    assert.match(
      metrics.stdout,
      new RegExp(
        `longhaul_intercept_destination_connections\\{destination="${I.server.replaceAll('.', '\\.')}:${INTERCEPTED}",peer="b"\\} 1`,
      ),
    );
    assert.ok((await held).ok);
    const logLines = gw
      .logA()
      .split('\n')
      .filter((l) => l.includes(`"originalDst":"${I.server}:${INTERCEPTED}"`));
    assert.ok(
      logLines.some((l) => l.includes('"connection opened"')) && logLines.some((l) => l.includes('"connection closed"')),
      gw.logA().slice(-2000),
    );

    const afterIntercepted = (await gatewayStatus(gwNs)).intercept!;
    assert.equal(afterIntercepted.rules[0]!.total, 2);
    const inboundB = (await gatewayStatus(sites.ns.gatewayB)).inbound.total;
    assert.equal(inboundB, 2);

    // Not intercepted: another port, and a subnet no peer serves, reach the server directly.
    const port = await client(sites.ns.client, I.server, NOT_LISTED);
    assert.ok(port.ok, JSON.stringify(port));
    assert.equal(port.server!.remote.split(':')[0], I.client, 'a port not in the list went through the gateways');
    const unserved = await client(sites.ns.client, I.serverUnserved, INTERCEPTED);
    assert.ok(unserved.ok, JSON.stringify(unserved));
    assert.equal(unserved.server!.remote.split(':')[0], I.client, 'a subnet no peer serves went through the gateways');
    assert.equal(unserved.server!.local, `${I.serverUnserved}:${INTERCEPTED}`);
    const st = (await gatewayStatus(gwNs)).intercept!;
    assert.equal(st.rules[0]!.total, 2, 'the bypassing connections reached gateway A');
    assert.equal(st.unserved, 0);
    assert.equal((await gatewayStatus(sites.ns.gatewayB)).inbound.total, 2, 'the bypassing connections reached gateway B');

    await gw.stop();
    await stopSpawned(server);

    await cli(gwNs, ['intercept', 'remove', ...flags]);
    assert.deepEqual(await netState(gwNs), before, 'remove did not restore the iptables rules and policy routing exactly');
    assert.match(await cli(gwNs, ['intercept', 'remove', ...flags]), /nothing to remove/);
    assert.deepEqual(await netState(gwNs), before);
  } finally {
    await stopGateways();
    for (const c of started) await stopSpawned(c);
    await interceptSitesDown(LAB);
    rmSync(keyDir, { recursive: true, force: true });
    release();
  }
}

test('interception in-path: real address, verified, from gateway B; other ports and subnets bypass; remove restores the rules', {
  skip: skipReason(),
  timeout: 180_000,
}, async () => {
  await scenario('in-path');
});

test('interception in-path with REDIRECT (NAT; the destination read with SO_ORIGINAL_DST): the same', {
  skip: skipReason(),
  timeout: 180_000,
}, async () => {
  await scenario('in-path', 'redirect');
});

test('interception one-arm (policy routing to a one-interface gateway): the same', { skip: skipReason(), timeout: 180_000 }, async () => {
  await scenario('one-arm');
});
