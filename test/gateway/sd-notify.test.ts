// systemd's notification protocol: the messages the gateway sends (SdNotifier, with a fake
// sender), and the real datagrams a `longhaul gateway` process sends to a NOTIFY_SOCKET this test
// binds (a path and an abstract name): READY, RELOADING/READY around SIGHUP, WATCHDOG, STOPPING.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SdNotifier, addonSend, monotonicUsec } from '../../src/gateway/sd-notify.ts';
import { makeKeys, sleep, stopChild } from './helpers.ts';

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));
const LISTENER = fileURLToPath(new URL('./notify-socket.py', import.meta.url));
const hasPython = spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status === 0;

function recorder(): { sent: Array<[string, string]>; send: (p: string, m: string) => string | null } {
  const sent: Array<[string, string]> = [];
  return {
    sent,
    send: (p, m) => {
      sent.push([p, m]);
      return null;
    },
  };
}

test('SdNotifier: inert without NOTIFY_SOCKET; READY, RELOADING with MONOTONIC_USEC, STOPPING', () => {
  const r = recorder();
  const off = new SdNotifier({ env: {}, send: r.send });
  assert.equal(off.enabled, false);
  assert.equal(off.ready(), false);
  assert.equal(r.sent.length, 0);

  const n = new SdNotifier({ env: { NOTIFY_SOCKET: '/run/test.sock' }, send: r.send });
  assert.equal(n.ready('listening'), true);
  const before = monotonicUsec();
  n.reloading();
  const after = monotonicUsec();
  n.stopping();
  assert.deepEqual(r.sent[0], ['/run/test.sock', 'READY=1\nSTATUS=listening']);
  const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(r.sent[1]![1]);
  assert.ok(m, r.sent[1]![1]);
  const usec = BigInt(m[1]!);
  assert.ok(usec >= before && usec <= after, `${usec} within [${before}, ${after}]`);
  assert.deepEqual(r.sent[2], ['/run/test.sock', 'STOPPING=1']);
});

test('SdNotifier watchdog: pings at half of WATCHDOG_USEC while healthy; not for another WATCHDOG_PID', async () => {
  const r = recorder();
  let healthy = true;
  const n = new SdNotifier({ env: { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '100000' }, send: r.send, healthy: () => healthy });
  assert.equal(n.watchdogUsec, 100_000);
  n.startWatchdog();
  await sleep(280);
  const pings = r.sent.filter(([, m]) => m === 'WATCHDOG=1').length;
  assert.ok(pings >= 3 && pings <= 7, `pings every 50 ms over 280 ms: ${pings}`);
  healthy = false;
  const at = r.sent.length;
  await sleep(200);
  assert.equal(r.sent.length, at, 'no pings while unhealthy (systemd then restarts the service)');
  n.stopWatchdog();

  const other = new SdNotifier({
    env: { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '100000', WATCHDOG_PID: String(process.pid + 1) },
    send: r.send,
  });
  assert.equal(other.watchdogUsec, null);
});

test('addonSend: a missing socket is an error value naming it, not an exception', () => {
  const err = addonSend('/nonexistent/notify.sock', 'READY=1');
  assert.ok(err !== null && /ENOENT/.test(err) && err.includes('/nonexistent/notify.sock'), String(err));
  assert.match(String(addonSend('relative', 'READY=1')), /absolute path or an @abstract name/);
});

interface Notification {
  msg: string;
  monotonic_usec: number;
}

async function startListener(address: string): Promise<{ proc: ChildProcess; got: Notification[] }> {
  const proc = spawn('python3', [LISTENER, address], { stdio: ['pipe', 'pipe', 'inherit'] });
  const got: Notification[] = [];
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line === 'listening') resolve();
      else got.push(JSON.parse(line) as Notification);
    });
  });
  return { proc, got };
}

async function waitFor(got: Notification[], pred: (n: Notification) => boolean, what: string, timeoutMs = 15_000): Promise<Notification> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = got.find(pred);
    if (n) return n;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(got.map((g) => g.msg))}`);
    await sleep(20);
  }
}

for (const kind of ['path', 'abstract'] as const) {
  test(`a gateway process notifies a ${kind} NOTIFY_SOCKET: READY, WATCHDOG, RELOADING/READY on SIGHUP, STOPPING`, {
    skip: hasPython ? false : "python3 (the test's stand-in for systemd's socket) is not installed",
  }, async () => {
    const keys = makeKeys();
    const dir = mkdtempSync(join(tmpdir(), 'lh-notify-'));
    const address = kind === 'path' ? join(dir, 'notify.sock') : `@lh-notify-test-${process.pid}`;
    const cfg = join(dir, 'gw.yaml');
    writeFileSync(cfg, `wan: 127.0.0.1:0\nkey: ${keys.aKey}\npeers: [{ name: b, publicKey: ${keys.bPub} }]\ncontrol: false\n`);
    const listener = await startListener(address);
    const gw = spawn(process.execPath, [CLI, 'gateway', '--config', cfg, '--log-json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NOTIFY_SOCKET: address, WATCHDOG_USEC: '400000' },
    });
    const exited = new Promise((r) => gw.once('exit', r));
    const lines: string[] = [];
    createInterface({ input: gw.stdout! }).on('line', (l) => lines.push(l));
    // A log line travels through a pipe, a notification through a socket: under load the line
    // can arrive a little after the notification that followed it. Waits up to 2 s for it.
    const logged = async (text: string): Promise<boolean> => {
      for (let t = 0; t < 100 && !lines.some((l) => l.includes(text)); t++) await new Promise((r) => setTimeout(r, 20));
      return lines.some((l) => l.includes(text));
    };
    try {
      const ready = await waitFor(listener.got, (n) => n.msg.startsWith('READY=1'), 'READY=1');
      assert.match(ready.msg, /^READY=1\nSTATUS=listening on 127\.0\.0\.1:\d+$/);
      assert.ok(await logged('"gateway started"'), 'READY=1 comes after the gateway started (keys loaded, socket bound)');
      await waitFor(listener.got, (n) => n.msg === 'WATCHDOG=1', 'WATCHDOG=1');

      gw.kill('SIGHUP');
      const reloading = await waitFor(listener.got, (n) => n.msg.startsWith('RELOADING=1'), 'RELOADING=1');
      const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(reloading.msg);
      assert.ok(m, reloading.msg);
      // Same clock as systemd's (CLOCK_MONOTONIC): sent just before the listener received it.
      const lag = reloading.monotonic_usec - Number(m[1]);
      assert.ok(lag >= 0 && lag < 2_000_000, `MONOTONIC_USEC ${m[1]} vs received at ${reloading.monotonic_usec}`);
      const i = listener.got.indexOf(reloading);
      await waitFor(listener.got, (n) => listener.got.indexOf(n) > i && n.msg.startsWith('READY=1'), 'READY=1 after the reload');
      assert.ok(await logged('configuration reloaded'), 'the SIGHUP reload was applied');

      gw.kill('SIGTERM');
      await waitFor(listener.got, (n) => n.msg === 'STOPPING=1', 'STOPPING=1');
      await exited;
    } finally {
      await stopChild(gw);
      listener.proc.stdin!.end();
      await stopChild(listener.proc);
    }
  });
}
