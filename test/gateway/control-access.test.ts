// The control interface's dashboard files and its token: what is served without a token on
// loopback, what needs the token when one is set (everything but /healthz), the forms the token
// may take, and the config rule that a non-loopback control address needs one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { isLoopbackHost } from '../../src/gateway/address.ts';
import { configFromFlags, validateConfig } from '../../src/gateway/config.ts';
import type { GatewayConfig } from '../../src/gateway/config.ts';
import { carriesToken, loadControlToken } from '../../src/gateway/control-auth.ts';
import { startControlServer } from '../../src/gateway/control.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { runGateway } from '../../src/gateway/run.ts';
import { LogCapture, sleep, startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const TOKEN = '0123456789abcdef0123456789abcdef';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const dir = mkdtempSync(join(tmpdir(), 'lh-control-'));

function config(raw: Record<string, unknown>): GatewayConfig {
  const r = validateConfig({ wan: '127.0.0.1:0', ...raw }, { insecurePlaintext: true, baseDir: dir, source: 'site.yaml' });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

test('carriesToken: Bearer or a Basic password equal to the token, nothing else', () => {
  assert.equal(carriesToken(`Bearer ${TOKEN}`, TOKEN), true);
  assert.equal(carriesToken(`bearer ${TOKEN}`, TOKEN), true);
  assert.equal(carriesToken(basic('ops', TOKEN), TOKEN), true);
  assert.equal(carriesToken(basic('', TOKEN), TOKEN), true);
  assert.equal(carriesToken(undefined, TOKEN), false);
  assert.equal(carriesToken('', TOKEN), false);
  assert.equal(carriesToken(TOKEN, TOKEN), false, 'no scheme');
  assert.equal(carriesToken(`Bearer ${TOKEN}x`, TOKEN), false);
  assert.equal(carriesToken(`Bearer ${TOKEN.slice(1)}`, TOKEN), false);
  assert.equal(carriesToken(basic(TOKEN, 'wrong'), TOKEN), false, 'the token as user name is not the password');
  assert.equal(carriesToken(`Basic ${Buffer.from(TOKEN).toString('base64')}`, TOKEN), false, 'Basic without a colon');
  assert.equal(carriesToken(`Digest ${TOKEN}`, TOKEN), false);
});

test('isLoopbackHost: 127/8, ::1 and localhost only', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'gw.example', '128.0.0.1', '::ffff:10.0.0.1', '127.0.0.1.example'])
    assert.equal(isLoopbackHost(h), false, h);
});

test('config: a control address other machines can reach needs a token, with one clear line', () => {
  const refused = validateConfig({ wan: '0.0.0.0:4500', control: '0.0.0.0:4501' }, { insecurePlaintext: true, source: 'site.yaml' });
  assert.equal(refused.ok, false);
  assert.deepEqual(!refused.ok && refused.errors, [
    'site.yaml: control: 0.0.0.0:4501 is reachable from other machines, so the control interface needs a bearer token: ' +
      'set controlToken or controlTokenFile (--control-token-file), or bind it to 127.0.0.1',
  ]);
  assert.equal(
    validateConfig({ wan: '0.0.0.0:4500', control: 'gw.example:4501' }, { insecurePlaintext: true }).ok,
    false,
    'a host name may resolve anywhere',
  );
  assert.equal(validateConfig({ wan: '0.0.0.0:4500', control: '0.0.0.0:4501', controlToken: TOKEN }, { insecurePlaintext: true }).ok, true);
  assert.equal(
    validateConfig({ wan: '0.0.0.0:4500', control: '10.1.1.1:4501', controlTokenFile: 'control.token' }, { insecurePlaintext: true }).ok,
    true,
  );
  for (const control of ['127.0.0.1:4501', 'localhost:4501', '[::1]:4501']) {
    const r = validateConfig({ wan: '0.0.0.0:4500', control }, { insecurePlaintext: true });
    assert.ok(r.ok, `${control}: ${r.ok ? '' : r.errors.join('; ')}`);
  }
  assert.equal(validateConfig({ wan: '0.0.0.0:4500', control: false }, { insecurePlaintext: true }).ok, true);
  // The old forms still parse to what they did.
  const old = config({ control: '127.0.0.1:4601' });
  assert.deepEqual(old.control, { host: '127.0.0.1', port: 4601 });
  assert.equal(old.controlToken, undefined);

  const short = validateConfig({ wan: '0.0.0.0:4500', controlToken: 'abc' }, { insecurePlaintext: true });
  assert.match(!short.ok ? short.errors.join('\n') : '', /controlToken: must be at least 16 characters/);
  const both = validateConfig({ wan: '0.0.0.0:4500', controlToken: TOKEN, controlTokenFile: 'x' }, { insecurePlaintext: true });
  assert.match(!both.ok ? both.errors.join('\n') : '', /controlTokenFile: give controlToken or controlTokenFile, not both/);
});

test('--control-token-file is taken relative to the working directory, even with --config', () => {
  const file = join(dir, 'flags.yaml');
  writeFileSync(file, 'wan: 127.0.0.1:0\ncontrol: 0.0.0.0:4501\n');
  const r = configFromFlags({ config: file, controlTokenFile: 'rel/control.token', insecurePlaintext: true });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  assert.equal(r.config.controlTokenFile, join(process.cwd(), 'rel/control.token'));
});

test("loadControlToken: the token, the file's first line, or a line naming the setting", () => {
  assert.equal(loadControlToken(config({})), null);
  assert.equal(loadControlToken(config({ controlToken: TOKEN })), TOKEN);
  writeFileSync(join(dir, 'good.token'), `${TOKEN}\n`);
  assert.equal(loadControlToken(config({ controlTokenFile: 'good.token' })), TOKEN, 'relative to the config file');
  writeFileSync(join(dir, 'short.token'), 'abc\n');
  assert.throws(() => loadControlToken(config({ controlTokenFile: 'short.token' })), {
    message:
      "site.yaml: controlTokenFile: short.token: the control token must be at least 16 characters on the file's first line (e.g. openssl rand -hex 32)",
  });
  assert.throws(() => loadControlToken(config({ controlTokenFile: 'missing.token' })), {
    message: 'site.yaml: controlTokenFile: missing.token: cannot read the control token (ENOENT)',
  });
});

test('without a token: the dashboard page and its files are served from the package, locked down by CSP', async () => {
  const server = await startControlServer({ host: '127.0.0.1', port: 0 }, () => ({ name: 'x' }), new Registry());
  const base = `http://127.0.0.1:${server.address.port}`;
  try {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const html = await page.text();
    // Every file the page loads is local (no CDN: the gateway may have no internet) and served.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(
      refs.includes('uplot.js') && refs.includes('uplot.css') && refs.includes('dashboard.js') && refs.includes('dashboard.css'),
      refs.join(' '),
    );
    for (const ref of refs) {
      assert.doesNotMatch(ref, /^(https?:)?\/\//, `${ref} is not local`);
      if (ref.startsWith('data:')) continue;
      const r = await fetch(new URL(ref, `${base}/`));
      assert.equal(r.status, 200, ref);
      await r.arrayBuffer();
    }
    const uplot = await fetch(`${base}/uplot.js`);
    assert.match(uplot.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await uplot.text(), /uPlot/);
    assert.match((await fetch(`${base}/uplot.css`)).headers.get('content-type') ?? '', /^text\/css/);
    assert.equal((await fetch(`${base}/status`)).status, 200, 'no token configured: open');
    assert.equal((await fetch(`${base}/`, { method: 'POST' })).status, 405, 'read-only');
    assert.equal((await fetch(`${base}/nosuch.js`)).status, 404);
  } finally {
    await server.close();
  }
});

test('with a token: everything but /healthz answers 401 and a Basic challenge unless the token comes along', async () => {
  const server = await startControlServer({ host: '127.0.0.1', port: 0 }, () => ({ name: 'x' }), new Registry(), { token: TOKEN });
  const base = `http://127.0.0.1:${server.address.port}`;
  try {
    for (const path of ['/', '/uplot.js', '/dashboard.js', '/status', '/metrics', '/nosuch']) {
      const r = await fetch(`${base}${path}`);
      assert.equal(r.status, 401, path);
      assert.match(r.headers.get('www-authenticate') ?? '', /Basic realm="longhaul control"/, path);
      assert.match(await r.text(), /token required/);
      assert.equal((await fetch(`${base}${path}`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })).status, 401, path);
    }
    assert.equal((await fetch(`${base}/status`, { method: 'POST' })).status, 401, 'checked before anything else');
    const bearer = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bearer.status, 200);
    assert.deepEqual(await bearer.json(), { name: 'x' });
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
    assert.equal((await fetch(`${base}/`, { headers: { authorization: basic('ops', TOKEN) } })).status, 200);
    assert.equal((await fetch(`${base}/`, { headers: { authorization: basic('ops', 'nope') } })).status, 401);
    // The liveness probe stays open for load balancers (what it answers is the health endpoint's business).
    assert.notEqual((await fetch(`${base}/healthz`)).status, 401);
  } finally {
    await server.close();
  }
});

test('runGateway wires controlTokenFile into the control interface, and refuses an unreadable one before starting', async () => {
  writeFileSync(join(dir, 'gw.token'), `${TOKEN}\n`);
  const log = new LogCapture();
  const logger = createLogger({ level: 'info', destination: log.stream });
  const running = await runGateway(config({ control: '127.0.0.1:0', controlTokenFile: 'gw.token' }), { logger });
  try {
    const base = `http://127.0.0.1:${running.control!.address.port}`;
    assert.equal((await fetch(`${base}/status`)).status, 401);
    const ok = await fetch(`${base}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    const s = (await ok.json()) as { associations: unknown[] };
    assert.ok(Array.isArray(s.associations));
    const listening = await log.waitFor(/^control interface listening/);
    assert.equal(listening.token, true);
  } finally {
    await running.stop(0);
  }
  const before = log.lines.length;
  await assert.rejects(runGateway(config({ control: '127.0.0.1:0', controlTokenFile: 'nosuch.token' }), { logger }), {
    message: 'site.yaml: controlTokenFile: nosuch.token: cannot read the control token (ENOENT)',
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    log.lines.slice(before).map((l) => l.msg),
    [],
    'refused before anything started (nothing logged)',
  );
});

test('/status: per association, raw and wire rates over the last second and the stream byte counters the dashboard charts', {
  timeout: 60_000,
}, async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({
    target: `127.0.0.1:${target.port}`,
    allow: ['127.0.0.1/32'],
    compression: 'lz4',
    aConfig: { control: '127.0.0.1:0' },
  });
  // Text-like upload, paced (64 KiB every 20 ms, ~2.6 s), so a 1-second sample falls inside it.
  const text = Buffer.from('{"op":"replicate","host":"db-1","block":4711,"state":"clean"}\n'.repeat(1100)).subarray(0, 64 * 1024);
  const transfer = verifiedExchange(pair.port, 8 * 1024 * 1024, 0, 20, (n) => Buffer.from(text.subarray(0, n)));
  try {
    type A = {
      rawSendRateBps: number;
      sendRateBps: number;
      rawReceiveRateBps: number;
      streamBytesSent: number;
      streamBytesRetransmitted: number;
    };
    let seen: A | undefined;
    for (let i = 0; i < 40 && !seen; i++) {
      await sleep(100);
      const s = (await (await fetch(`http://127.0.0.1:${pair.a.control!.address.port}/status`)).json()) as { associations: A[] };
      const a = s.associations[0];
      if (a && a.rawSendRateBps > 0 && a.sendRateBps > 0) seen = a;
    }
    assert.ok(seen, 'a sample with raw and wire send rates above zero');
    assert.ok(
      seen.rawSendRateBps > 1.5 * seen.sendRateBps,
      `raw ${seen.rawSendRateBps} bit/s vs wire ${seen.sendRateBps}: text compresses`,
    );
    assert.ok(seen.rawSendRateBps < 100e6, 'paced at ~26 Mbit/s of raw data');
    assert.ok(seen.streamBytesSent > 0);
    assert.equal(typeof seen.streamBytesRetransmitted, 'number');
    assert.equal(typeof seen.rawReceiveRateBps, 'number');
    const r = await transfer;
    assert.ok(r.uploadOk && r.downloadOk);
  } finally {
    await pair.stop();
    await target.close();
  }
});
