// Interception without a network: the config (YAML and flags), matching a destination to its
// peer, the rules derived from the config, install/remove against a model of iptables and ip, and
// the native socket options on loopback. The lab test (intercept-lab.test.ts) runs it for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { configFromFlags, validateConfig } from '../../src/gateway/config.ts';
import type { GatewayConfig } from '../../src/gateway/config.ts';
import { restartNeeded } from '../../src/gateway/reload.ts';
import { matchIntercept, parsePortRange, parseSubnet } from '../../src/gateway/intercept/config.ts';
import { chainName, formatPlan, interceptPlan, portChunks } from '../../src/gateway/intercept/rules.ts';
import { installPlan, removePlan } from '../../src/gateway/intercept/apply.ts';
import type { Runner } from '../../src/gateway/intercept/apply.ts';
import { listenFd, natOriginalDestination } from '../../src/gateway/intercept/socket-options.ts';
import { loadAddon } from '../../src/native/load.ts';

const BASE = {
  name: 'site-a',
  wan: '0.0.0.0:4500',
  peers: [{ name: 'dc2', address: '198.18.1.1:4500' }, { name: 'dc3', address: '198.18.9.1:4500' }, { name: 'passive' }],
};

function config(extra: Record<string, unknown>): GatewayConfig {
  const r = validateConfig({ ...BASE, ...extra }, { insecurePlaintext: true });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  return r.config;
}

function errors(extra: Record<string, unknown>): string {
  const r = validateConfig({ ...BASE, ...extra }, { insecurePlaintext: true });
  assert.ok(!r.ok, 'expected the config to be refused');
  return r.errors.join('\n');
}

test('intercept rules: subnets, ports and ranges parse; the listener has defaults', () => {
  const c = config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16', '10.9.1.7'], ports: [443, '3260', '6600-6700'] }] });
  const r = c.intercept[0]!;
  assert.deepEqual(
    r.subnets.map((s) => s.text),
    ['10.2.0.0/16', '10.9.1.7/32'],
  );
  assert.deepEqual(r.ports, [
    { from: 443, to: 443 },
    { from: 3260, to: 3260 },
    { from: 6600, to: 6700 },
  ]);
  assert.equal(c.interceptListener.method, 'tproxy');
  assert.equal(c.interceptListener.listen, undefined);
  assert.equal(c.interceptListener.fwmark, 0x4c48);
  const l = config({
    interceptListener: { listen: '127.0.0.1:4600', method: 'redirect', fwmark: '0x100', fwmask: '0xf00' },
  }).interceptListener;
  assert.deepEqual(l.listen, { host: '127.0.0.1', port: 4600 });
  assert.equal(l.method, 'redirect');
  assert.equal(l.fwmark, 0x100);
});

test('intercept rules: what is refused, named by key path', () => {
  assert.match(
    errors({ intercept: [{ peer: 'nosuch', subnets: ['10.2.0.0/16'] }] }),
    /intercept\[0\]\.peer: unknown peer "nosuch" \(peers: "dc2", "dc3", "passive"\)/,
  );
  assert.match(
    errors({ intercept: [{ peer: 'passive', subnets: ['10.2.0.0/16'] }] }),
    /intercept\[0\]\.peer: peer "passive" has no address/,
  );
  assert.match(errors({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.1/16'] }] }), /has host bits set: did you mean 10\.2\.0\.0\/16\?/);
  assert.match(errors({ intercept: [{ peer: 'dc2', subnets: ['fd00::/8'] }] }), /not an IPv4 subnet/);
  assert.match(errors({ intercept: [{ peer: 'dc2', subnets: [] }] }), /intercept\[0\]\.subnets: at least one subnet/);
  assert.match(
    errors({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'], ports: ['700-600'] }] }),
    /intercept\[0\]\.ports\[0\]: "700-600" is not a port/,
  );
  assert.match(errors({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'], ports: [0] }] }), /is not a port/);
  // One destination, two peers: ambiguous.
  assert.match(
    errors({
      intercept: [
        { peer: 'dc2', subnets: ['10.2.0.0/16'], ports: [443] },
        { peer: 'dc3', subnets: ['10.2.5.0/24'] },
      ],
    }),
    /intercept\[1\]\.subnets: 10\.2\.5\.0\/24 port 443 is claimed by peer "dc2" \(intercept\[0\]\) and peer "dc3"/,
  );
  // Same subnet, disjoint ports: fine; same peer twice: fine.
  config({
    intercept: [
      { peer: 'dc2', subnets: ['10.2.0.0/16'], ports: [443] },
      { peer: 'dc3', subnets: ['10.2.0.0/16'], ports: [444] },
      { peer: 'dc2', subnets: ['10.2.0.0/24'], ports: [443] },
    ],
  });
  assert.match(errors({ interceptListener: { fwmark: '0x10', fwmask: '0x1' } }), /fwmark has bits outside fwmask/);
  assert.match(errors({ interceptListener: { table: 254 } }), /default, main and local/);
  assert.match(errors({ interceptListener: { method: 'divert' } }), /expected tproxy or redirect/);
  assert.match(errors({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'], port: [1] }] }), /unknown key "port"/);
});

test('--intercept flags map to the quick-start peer, or to PEER=', () => {
  const r = configFromFlags({
    wan: '0.0.0.0:4500',
    peer: '198.18.1.1:4500',
    peerName: 'dc2',
    intercept: ['10.2.0.0/16,10.3.0.0/24:443,6600-6700', 'dc2=10.4.0.0/16'],
    interceptMethod: 'redirect',
    interceptListen: '0.0.0.0:4600',
    insecurePlaintext: true,
  });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.deepEqual(
    r.config.intercept.map((x) => [x.peer, x.subnets.map((s) => s.text), x.ports?.map((p) => `${p.from}-${p.to}`)]),
    [
      ['dc2', ['10.2.0.0/16', '10.3.0.0/24'], ['443-443', '6600-6700']],
      ['dc2', ['10.4.0.0/16'], undefined],
    ],
  );
  assert.equal(r.config.interceptListener.method, 'redirect');
  assert.deepEqual(r.config.interceptListener.listen, { host: '0.0.0.0', port: 4600 });
  const bad = configFromFlags({ wan: '0.0.0.0:4500', intercept: ['10.2.0.0/16'], insecurePlaintext: true });
  assert.ok(!bad.ok);
  assert.match(bad.errors.join('\n'), /intercept\[0\]\.peer: unknown peer "peer" \(peers: none defined\)/);
});

test('a destination belongs to the first rule whose subnet and ports hold it, or to none', () => {
  const c = config({
    intercept: [
      { peer: 'dc2', subnets: ['10.2.0.0/16'], ports: [443, '6600-6700'] },
      { peer: 'dc3', subnets: ['10.3.0.0/24'] },
    ],
  });
  assert.equal(matchIntercept(c.intercept, '10.2.200.9', 443)?.rule.peer, 'dc2');
  assert.equal(matchIntercept(c.intercept, '10.2.0.1', 6700)?.index, 0);
  assert.equal(matchIntercept(c.intercept, '10.2.0.1', 6701), null);
  assert.equal(matchIntercept(c.intercept, '10.3.0.255', 1)?.rule.peer, 'dc3');
  assert.equal(matchIntercept(c.intercept, '10.3.1.0', 443), null);
  assert.equal(matchIntercept(c.intercept, '::1', 443), null);
  assert.equal(parseSubnet('0.0.0.0/0').ok, true);
  assert.deepEqual(parsePortRange(' 10 - 20 '), { ok: true, value: { from: 10, to: 20 } });
});

test('the rules: exclusions first, one TPROXY rule per subnet and port chunk, policy routing; redirect uses nat', () => {
  const ports = Array.from({ length: 14 }, (_, i) => 1000 + i).concat([5000]);
  const c = config({
    intercept: [
      { peer: 'dc2', subnets: ['10.2.0.0/16', '10.5.0.0/16'], ports: [...ports, '6600-6700'] },
      { name: 'storage', peer: 'dc3', subnets: ['10.3.0.0/24'], ports: [3260] },
    ],
  });
  const p = interceptPlan(c);
  assert.equal(p.table, 'mangle');
  assert.equal(p.chain, 'LH-site-a');
  assert.deepEqual(p.chainRules[0], [
    '-m',
    'addrtype',
    '--dst-type',
    'LOCAL',
    '-m',
    'comment',
    '--comment',
    'longhaul:site-a:local',
    '-j',
    'RETURN',
  ]);
  assert.deepEqual(p.chainRules[1]!.slice(0, 2), ['-d', '198.18.1.1/32']);
  assert.deepEqual(p.chainRules[2]!.slice(0, 2), ['-d', '198.18.9.1/32']);
  const tproxy = p.chainRules.filter((r) => r.includes('TPROXY'));
  // 15 single ports fill one multiport match; the range goes to a second; times two subnets; plus dc3's single port.
  assert.equal(tproxy.length, 5);
  assert.ok(tproxy[0]!.includes('1000,1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012,1013,5000'));
  assert.ok(tproxy[1]!.includes('6600:6700'));
  assert.deepEqual(tproxy[4], [
    '-d',
    '10.3.0.0/24',
    '-p',
    'tcp',
    '--dport',
    '3260',
    '-m',
    'comment',
    '--comment',
    'longhaul:site-a:storage',
    '-j',
    'TPROXY',
    '--on-port',
    '4510',
    '--tproxy-mark',
    '0x4c48/0xffff',
  ]);
  assert.deepEqual(p.jump, ['-p', 'tcp', '-m', 'comment', '--comment', 'longhaul:site-a', '-j', 'LH-site-a']);
  assert.deepEqual(p.ipRule, ['fwmark', '0x4c48/0xffff', 'lookup', '76', 'pref', '17600', 'protocol', '76']);
  assert.deepEqual(p.ipRoute, ['local', '0.0.0.0/0', 'dev', 'lo', 'table', '76', 'proto', '76']);
  assert.match(
    formatPlan(p, 'install'),
    /^iptables -w 5 -t mangle -I PREROUTING 1 -p tcp -m comment --comment longhaul:site-a -j LH-site-a$/m,
  );
  assert.match(formatPlan(p, 'remove'), /^ip rule del fwmark 0x4c48\/0xffff lookup 76 pref 17600 protocol 76$/m);

  const r = interceptPlan(
    config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'] }], interceptListener: { method: 'redirect', listen: '0.0.0.0:4600' } }),
  );
  assert.equal(r.table, 'nat');
  assert.deepEqual(r.chainRules.at(-1), [
    '-d',
    '10.2.0.0/16',
    '-p',
    'tcp',
    '-m',
    'comment',
    '--comment',
    'longhaul:site-a:intercept0',
    '-j',
    'REDIRECT',
    '--to-ports',
    '4600',
  ]);
  assert.equal(r.ipRule, null);
  assert.equal(r.ipRoute, null);
  const onIp = interceptPlan(
    config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'] }], interceptListener: { listen: '127.0.0.1:4510' } }),
  );
  assert.ok(onIp.chainRules.at(-1)!.join(' ').includes('--on-port 4510 --on-ip 127.0.0.1'));
  assert.deepEqual(
    portChunks([
      { from: 1, to: 2 },
      { from: 3, to: 3 },
    ]),
    ['1:2,3'],
  );
});

test('chain names fit iptables (28 characters) and stay distinct for long gateway names', () => {
  const a = chainName('a-very-long-gateway-name-for-site-one');
  const b = chainName('a-very-long-gateway-name-for-site-two');
  assert.ok(a.length <= 28 && b.length <= 28);
  assert.notEqual(a, b);
  assert.equal(chainName('dc1'), 'LH-dc1');
});

/** iptables (one table's chains) and ip rule/route, as far as apply.ts uses them. */
function fakeKernel(): { run: Runner; chains: Map<string, string[]>; ipRules: string[]; routes: string[]; calls: string[] } {
  const chains = new Map<string, string[]>([['PREROUTING', ['-p udp -j MARK --set-mark 0x7']]]);
  const ipRules: string[] = [];
  const routes: string[] = [];
  const calls: string[] = [];
  const ok = (stdout = ''): ReturnType<Runner> => ({ code: 0, stdout, stderr: '' });
  const fail = (stderr: string): ReturnType<Runner> => ({ code: 1, stdout: '', stderr });
  const run: Runner = (argv) => {
    calls.push(argv.join(' '));
    if (argv[0] === 'iptables') {
      const [op, chain, ...rest] = argv.slice(5);
      const spec = (op === '-I' ? rest.slice(1) : rest).join(' ');
      const rules = chains.get(chain!);
      switch (op) {
        case '-N':
          if (rules) return fail('exists');
          chains.set(chain!, []);
          return ok();
        case '-S':
          return rules ? ok([`-N ${chain}`, ...rules.map((r) => `-A ${chain} ${r}`)].join('\n')) : fail('no chain');
        case '-C':
          return rules?.includes(spec) ? ok() : fail('no rule');
        case '-A':
          if (!rules) return fail('no chain');
          rules.push(spec);
          return ok();
        case '-I':
          if (!rules) return fail('no chain');
          rules.unshift(spec);
          return ok();
        case '-D': {
          const i = rules?.indexOf(spec) ?? -1;
          if (i < 0) return fail('no rule');
          rules!.splice(i, 1);
          return ok();
        }
        case '-F':
          if (!rules) return fail('no chain');
          rules.length = 0;
          return ok();
        case '-X':
          if (!rules || rules.length) return fail('busy');
          chains.delete(chain!);
          return ok();
      }
      return fail(`unexpected ${op}`);
    }
    const [, what, op, ...rest] = argv;
    const list = what === 'rule' ? ipRules : routes;
    if (op === 'add') {
      list.push(rest.join(' '));
      return ok();
    }
    if (op === 'del') {
      const i = list.indexOf(rest.join(' '));
      if (i < 0) return fail('none');
      list.splice(i, 1);
      return ok();
    }
    if (op === 'show' && what === 'rule')
      return ok(ipRules.map((r) => `${r.split(' ')[5]}:\tfrom all ${r.replace(/ pref \d+ protocol (\d+)/, ' proto $1')}`).join('\n'));
    if (op === 'show') return ok(routes.map((r) => r.replace('0.0.0.0/0', 'default').replace(/ table \d+/, '')).join('\n'));
    return fail(`unexpected ip ${what} ${op}`);
  };
  return { run, chains, ipRules, routes, calls };
}

test('install applies the plan once; a second install changes nothing; remove deletes exactly it, twice harmlessly', () => {
  const k = fakeKernel();
  const plan = interceptPlan(config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'], ports: [443] }] }));
  const first = installPlan(plan, k.run);
  assert.equal(first.changed.length, 1 + plan.chainRules.length + 1 + 2);
  assert.equal(k.chains.get('PREROUTING')![0], plan.jump.join(' '));
  assert.deepEqual(
    k.chains.get(plan.chain),
    plan.chainRules.map((r) => r.join(' ')),
  );
  assert.equal(k.ipRules.length, 1);
  assert.equal(k.routes.length, 1);
  assert.equal(installPlan(plan, k.run).changed.length, 0);
  // Another config installed over it: the chain is rebuilt to the new plan.
  const plan2 = interceptPlan(config({ intercept: [{ peer: 'dc2', subnets: ['10.7.0.0/16'] }] }));
  assert.ok(installPlan(plan2, k.run).changed.some((c) => c.includes('-F')));
  assert.deepEqual(
    k.chains.get(plan.chain),
    plan2.chainRules.map((r) => r.join(' ')),
  );
  const removed = removePlan(plan2, k.run);
  assert.ok(removed.changed.length > 0);
  assert.deepEqual([...k.chains.entries()], [['PREROUTING', ['-p udp -j MARK --set-mark 0x7']]]);
  assert.deepEqual(k.ipRules, []);
  assert.deepEqual(k.routes, []);
  assert.equal(removePlan(plan2, k.run).changed.length, 0);
});

test('lh_sock: a listener adopted by net.Server; a connection nobody NATed has no SO_ORIGINAL_DST', {
  skip: loadAddon('lh_sock').ok ? false : 'lh_sock addon not built (npm run build:native)',
}, async () => {
  const fd = listenFd({ host: '127.0.0.1', port: 0 }, 16, false);
  let seen: ReturnType<typeof natOriginalDestination> | undefined;
  const server = createServer((s: Socket) => {
    seen = natOriginalDestination(s);
    s.end('x');
  });
  await new Promise<void>((res) => server.listen({ fd }, res));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((res, rej) => {
    const c = connect(port, '127.0.0.1');
    c.on('data', () => c.destroy());
    c.on('close', () => res());
    c.on('error', rej);
  });
  server.close();
  assert.equal(seen, null);
  assert.throws(() => listenFd({ host: 'not-an-address', port: 1 }, 16, false), /IPv4 or IPv6 address/);
  if (process.getuid?.() !== 0)
    assert.throws(() => listenFd({ host: '127.0.0.1', port: 0 }, 16, true), /IP_TRANSPARENT \(needs CAP_NET_ADMIN\)/);
});

test('the intercept listener is bound at start-up: changing it needs a restart; the rules reload live', () => {
  const a = config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'] }] });
  const b = config({ intercept: [{ peer: 'dc2', subnets: ['10.3.0.0/16'] }] });
  assert.deepEqual(restartNeeded(a, b), []);
  const c = config({ intercept: [{ peer: 'dc2', subnets: ['10.2.0.0/16'] }], interceptListener: { method: 'redirect' } });
  assert.match(restartNeeded(a, c).join('\n'), /interceptListener: .* cannot change on a running gateway/);
  assert.match(restartNeeded(a, config({})).join('\n'), /intercept \(on or off\): true -> false/);
});

test('longhaul intercept rules prints the commands; without intercept rules it refuses', () => {
  const cli = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  const ok = spawnSync(
    process.execPath,
    [cli, 'intercept', 'rules', '--name', 'a', '--peer', '198.18.1.1:4500', '--peer-name', 'b', '--intercept', '10.2.0.0/16:443'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(
    ok.stdout,
    /^iptables -w 5 -t mangle -A LH-a -d 10\.2\.0\.0\/16 -p tcp --dport 443 -m comment --comment longhaul:a:intercept0 -j TPROXY/m,
  );
  assert.match(ok.stdout, /^ip route add local 0\.0\.0\.0\/0 dev lo table 76 proto 76$/m);
  const none = spawnSync(process.execPath, [cli, 'intercept', 'install', '--name', 'a'], { encoding: 'utf8' });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /has no intercept rules/);
});
