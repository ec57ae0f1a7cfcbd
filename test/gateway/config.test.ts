import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFromFlags, loadConfigFile, parseRate, parseSize, peerRestartDetectMs, validateConfig } from '../../src/gateway/config.ts';
import { isAllowed, parseAllowRule, parseEndpoint } from '../../src/gateway/address.ts';
import { decodeOpenHeader, encodeOpenHeader } from '../../src/gateway/open-header.ts';
import { transportConfigFor } from '../../src/gateway/gateway.ts';
import { protectionOverhead } from '../../src/gateway/wan-security.ts';

const dir = mkdtempSync(join(tmpdir(), 'lh-config-'));
function writeYaml(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const GOOD = `
name: site-a
wan: 0.0.0.0:4500
key: a.key
peers:
  - name: dc2
    address: 198.18.1.1:4500
    publicKey: b.pub
tunnels:
  - listen: 127.0.0.1:6600
    peer: dc2
    target: 10.0.0.7:6600
allow: [10.0.0.0/24, "192.168.1.5:22"]
rate: { controller: fixed, committedRate: 100M, maxRate: 1G }
limits: { maxConnections: 500, memoryBudget: 128MiB }
compression: zstd
control: 127.0.0.1:4600
`;

test('a correct config file loads with units converted and key paths relative to the file', () => {
  const r = loadConfigFile(writeYaml('good.yaml', GOOD));
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  const c = r.config;
  assert.equal(c.name, 'site-a');
  assert.deepEqual(c.wan, { host: '0.0.0.0', port: 4500 });
  assert.equal(c.peers[0]!.address!.host, '198.18.1.1');
  assert.equal(c.tunnels[0]!.target.port, 6600);
  assert.equal(c.rate.committedRate, 100e6);
  assert.equal(c.rate.maxRate, 1e9);
  assert.equal(c.limits.memoryBudget, 128 * 1024 * 1024);
  assert.equal(c.limits.maxConnections, 500);
  assert.equal(c.compression, 'zstd');
  assert.deepEqual(c.control, { host: '127.0.0.1', port: 4600 });
  assert.equal(c.baseDir, dir);
  assert.equal(c.insecurePlaintext, false);
});

test('config mistakes give one error per mistake, naming the key path and the problem', () => {
  const bad = `
wan: 0.0.0.0:99999
key: a.key
peers:
  - name: dc2
    address: nohost
    publicKey: b.pub
tunnels:
  - listen: 127.0.0.1:6600
    peer: dc3
    target: 10.0.0.7:6600
allow: [10.0.0.0/33]
rate: { controller: turbo }
limits: { maxConnections: -3 }
compression: brotli
colour: blue
`;
  const r = loadConfigFile(writeYaml('bad.yaml', bad));
  assert.equal(r.ok, false);
  if (r.ok) return;
  const text = r.errors.join('\n');
  const expect = [
    /bad\.yaml: wan: "99999" is not a valid port/,
    /bad\.yaml: peers\[0\]\.address: expected HOST:PORT/,
    /bad\.yaml: allow\[0\]: "\/33" is not a valid prefix length/,
    /bad\.yaml: rate\.controller: .*"model".*"fixed"/,
    /bad\.yaml: limits\.maxConnections: .*/,
    /bad\.yaml: compression: .*"auto"/,
    /bad\.yaml: unknown key "colour"/,
  ];
  for (const re of expect) assert.match(text, re);
  // Cross-field checks run once the fields themselves parse.
  const r2 = loadConfigFile(
    writeYaml('bad2.yaml', GOOD.replace('peer: dc2', 'peer: dc3').replace('committedRate: 100M', 'committedRate: 2G')),
  );
  assert.equal(r2.ok, false);
  if (r2.ok) return;
  const t2 = r2.errors.join('\n');
  assert.match(t2, /tunnels\[0\]\.peer: unknown peer "dc3" \(peers: "dc2"\)/);
  assert.match(t2, /rate\.committedRate: committed rate .* exceeds maxRate/);
});

test('missing key material is refused unless the debug plaintext switch is on', () => {
  const noKeys = GOOD.replace('key: a.key\n', '').replace('    publicKey: b.pub\n', '');
  const r = loadConfigFile(writeYaml('nokeys.yaml', noKeys));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.match(r.errors.join('\n'), /key: required/);
    assert.match(r.errors.join('\n'), /peers\[0\]\.publicKey: required/);
  }
  assert.equal(loadConfigFile(writeYaml('nokeys.yaml', noKeys), { insecurePlaintext: true }).ok, true);
  // The switch cannot come from the file: unknown keys are rejected.
  const r3 = loadConfigFile(writeYaml('sneaky.yaml', `${noKeys}insecurePlaintext: true\n`));
  assert.equal(r3.ok, false);
  if (!r3.ok) assert.match(r3.errors.join('\n'), /unknown key "insecurePlaintext"/);
});

test('unreadable, non-YAML and non-mapping files are clear errors', () => {
  const missing = loadConfigFile(join(dir, 'absent.yaml'));
  assert.ok(!missing.ok && /absent\.yaml: cannot read/.test(missing.errors[0]!));
  const broken = loadConfigFile(writeYaml('broken.yaml', 'wan: [1, 2\n'));
  assert.ok(!broken.ok && /broken\.yaml: not valid YAML/.test(broken.errors[0]!));
  const list = loadConfigFile(writeYaml('list.yaml', '- a\n- b\n'));
  assert.ok(!list.ok && /expected a mapping/.test(list.errors[0]!));
});

test('quick-start flags map onto the same schema', () => {
  const a = configFromFlags({
    wan: '0.0.0.0:4500',
    peer: '198.18.0.6:4500',
    tunnel: ['127.0.0.1:6600=10.0.0.7:6600'],
    key: 'a.key',
    peerKey: 'b.pub',
    rate: '500M',
    compression: 'lz4',
    control: '127.0.0.1:0',
  });
  assert.ok(a.ok, a.ok ? '' : a.errors.join('\n'));
  assert.equal(a.config.peers[0]!.name, 'peer');
  assert.equal(a.config.tunnels[0]!.peer, 'peer');
  assert.deepEqual(a.config.tunnels[0]!.listen, { host: '127.0.0.1', port: 6600 });
  assert.equal(a.config.rate.committedRate, 500e6);
  const b = configFromFlags({ wan: '0.0.0.0:4500', key: 'b.key', peerKey: 'a.pub', allow: ['10.0.0.0/24,10.1.0.0/16:443'] });
  assert.ok(b.ok, b.ok ? '' : b.errors.join('\n'));
  assert.equal(b.config.allow.length, 2);
  assert.equal(b.config.peers[0]!.address, undefined);
  const bad = configFromFlags({ wan: '0.0.0.0:4500', key: 'a.key', peer: '1.2.3.4:1', peerKey: 'b.pub', tunnel: ['127.0.0.1:6600'] });
  assert.ok(!bad.ok && /--tunnel #1: expected LISTEN=TARGET/.test(bad.errors[0]!));
  const noWan = configFromFlags({ key: 'a.key' });
  assert.ok(!noWan.ok && /^wan: required/.test(noWan.errors[0]!));
});

test('flags override a config file key by key', () => {
  const file = writeYaml('base.yaml', GOOD);
  const r = configFromFlags({ config: file, control: '127.0.0.1:0', maxConnections: '7' });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.equal(r.config.limits.maxConnections, 7);
  assert.equal(r.config.limits.memoryBudget, 128 * 1024 * 1024);
  assert.ok(r.config.control !== false, 'the control interface is on');
  assert.equal(r.config.control.port, 0);
  assert.equal(r.config.tunnels.length, 1);
});

test('rates and sizes parse with units', () => {
  assert.equal(parseRate('100M'), 100e6);
  assert.equal(parseRate('1.5gbit'), 1.5e9);
  assert.equal(parseRate('250 Mbps'), 250e6);
  assert.equal(parseRate('fast'), null);
  assert.equal(parseSize('256MiB'), 256 * 1024 * 1024);
  assert.equal(parseSize('1GB'), 1e9);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('12 parsecs'), null);
});

test('allow-list rules match CIDR blocks and optional ports', () => {
  const rules = ['10.0.0.0/24', '192.168.1.5:22', '[2001:db8::/32]:443', '127.0.0.1'].map((t) => {
    const r = parseAllowRule(t);
    assert.ok(r.ok, t);
    return r.value;
  });
  assert.ok(isAllowed(rules, '10.0.0.200', 80));
  assert.ok(!isAllowed(rules, '10.0.1.1', 80));
  assert.ok(isAllowed(rules, '192.168.1.5', 22));
  assert.ok(!isAllowed(rules, '192.168.1.5', 23));
  assert.ok(isAllowed(rules, '2001:db8:1::5', 443));
  assert.ok(!isAllowed(rules, '2001:db8:1::5', 80));
  assert.ok(!isAllowed(rules, '2001:db9::5', 443));
  assert.ok(isAllowed(rules, '::ffff:10.0.0.3', 5));
  assert.ok(isAllowed(rules, '127.0.0.1', 1234));
  assert.ok(!isAllowed(rules, '127.0.0.2', 1234));
  assert.equal(parseAllowRule('10.0.0.0/24:0').ok, false);
  assert.equal(parseAllowRule('example.com').ok, false);
  assert.equal(parseEndpoint('[::1]:80').ok, true);
  assert.equal(parseEndpoint('::1:80').ok, false);
});

test('open header round-trips and rejects malformed input', () => {
  const h = encodeOpenHeader({ host: 'db.internal', port: 5432 });
  assert.equal(decodeOpenHeader(h.subarray(0, 5)).status, 'incomplete');
  const r = decodeOpenHeader(Buffer.concat([h, Buffer.from('rest')]));
  assert.deepEqual(r, { status: 'ok', target: { host: 'db.internal', port: 5432 }, length: h.length });
  assert.equal(decodeOpenHeader(Uint8Array.of(9, 1, 65, 0, 1)).status, 'error');
  assert.equal(decodeOpenHeader(Uint8Array.of(1, 0)).status, 'error');
  assert.equal(decodeOpenHeader(Uint8Array.of(1, 1, 65, 0, 0)).status, 'error');
  assert.equal(decodeOpenHeader(Uint8Array.of(1, 1, 0x20, 0, 80)).status, 'error');
});

test('limits.peerRestartDetectMs: default, explicit value, and clear errors on bad values', () => {
  const base = { wan: '0.0.0.0:4500', peers: [{ name: 'b', address: '198.18.1.1:4500' }] };
  const ok = (limits: Record<string, unknown>) => {
    const r = validateConfig({ ...base, limits }, { insecurePlaintext: true });
    assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    return r.config;
  };
  assert.equal(peerRestartDetectMs(ok({}).limits), 5000);
  assert.equal(peerRestartDetectMs(ok({ peerRestartDetectMs: 1500 }).limits), 1500);
  // A short peerTimeoutMs pulls the default below it.
  assert.equal(peerRestartDetectMs(ok({ peerTimeoutMs: 3000 }).limits), 1500);
  const errorsFor = (limits: Record<string, unknown>): string => {
    const r = validateConfig({ ...base, limits }, { insecurePlaintext: true });
    assert.ok(!r.ok);
    return r.errors.join('\n');
  };
  assert.match(errorsFor({ peerRestartDetectMs: 50 }), /limits\.peerRestartDetectMs: must be at least 200 ms/);
  assert.match(errorsFor({ peerRestartDetectMs: 1.5e3 + 0.5 }), /limits\.peerRestartDetectMs: expected a whole number of milliseconds/);
  assert.match(errorsFor({ peerRestartDetectMs: '5s' }), /limits\.peerRestartDetectMs: expected a number of milliseconds/);
  assert.match(
    errorsFor({ peerRestartDetectMs: 180_000 }),
    /limits\.peerRestartDetectMs: must be below limits\.peerTimeoutMs \(180000 ms, the default\)/,
  );
  assert.match(errorsFor({ peerRestartDetectMs: 4000, peerTimeoutMs: 3000 }), /must be below limits\.peerTimeoutMs \(3000 ms\)/);
});

test('the largest packet fits the configured MTU with the WAN address family headers: 20 bytes more payload on IPv4', () => {
  const packetSize = (wan: string, mtu?: number): number => {
    const r = validateConfig({ wan, mtu, peers: [{ name: 'b', address: '198.18.1.1:4500' }] }, { insecurePlaintext: true });
    assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
    return transportConfigFor(r.config).maxPacketSize + protectionOverhead(r.config);
  };
  assert.equal(packetSize('0.0.0.0:4500'), 1500 - 20 - 8);
  assert.equal(packetSize('198.18.1.2:4500', 9000), 9000 - 20 - 8);
  assert.equal(packetSize('[::]:4500'), 1500 - 40 - 8);
});
