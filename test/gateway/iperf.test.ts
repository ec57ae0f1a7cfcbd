// A client nobody here wrote: iperf3 (Debian package iperf3, installed by .ci/run) through
// the tunnel, both directions.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { freePort, reportIfProcessLingers, startPair, sleep, stopChild } from './helpers.ts';
import type { Pair } from './helpers.ts';

// This file once hung after its test passed (main thread busy, process never exiting) during a
// loaded full run: if it lingers again, it writes a diagnostic report saying what was left.
let lastPair: Pair | null = null;
const associations = (p: Pair['a']): unknown =>
  p.gateway.status().associations.map((x) => ({ role: x.role, connected: x.connected, driver: x.driver }));
after(() => reportIfProcessLingers('iperf', 30_000, () => lastPair && { a: associations(lastPair.a), b: associations(lastPair.b) }));

function hasIperf3(): boolean {
  try {
    execFileSync('iperf3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function runIperfClient(port: number, reverse: boolean): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const args = ['-c', '127.0.0.1', '-p', String(port), '-t', '3', '-J', ...(reverse ? ['-R'] : [])];
    const p = spawn('iperf3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('iperf3 through the tunnel, both directions', {
  skip: hasIperf3() ? false : 'iperf3 not installed (apt-get install -y iperf3)',
  timeout: 90_000,
}, async () => {
  const serverPort = await freePort();
  const server = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(serverPort)], { stdio: 'ignore' });
  const pair = await startPair({ target: `127.0.0.1:${serverPort}`, allow: ['127.0.0.1'] });
  lastPair = pair;
  try {
    await sleep(300); // iperf3 -s has no readiness signal
    for (const reverse of [false, true]) {
      // iperf3 -s serves one test at a time and may still be tearing down the previous one
      // (its data connection's reset crosses both gateways): it then refuses with "busy".
      let r = await runIperfClient(pair.port, reverse);
      for (let attempt = 0; attempt < 5 && r.out.includes('server is busy'); attempt++) {
        await sleep(500);
        r = await runIperfClient(pair.port, reverse);
      }
      assert.equal(r.code, 0, `iperf3 ${reverse ? '-R ' : ''}failed: ${r.out.slice(0, 500)}`);
      const j = JSON.parse(r.out) as { end: { sum_received?: { bytes: number; bits_per_second: number } }; error?: string };
      // iperf3 reports its own failures (e.g. a closed control connection) in the JSON, not the exit code.
      const warnings = (l: typeof pair.logA): string => JSON.stringify(l.lines.filter((x) => x.level >= 40).slice(-10));
      assert.ok(
        j.end.sum_received,
        `iperf3 ${reverse ? '-R ' : ''}gave no result: ${j.error ?? r.out.slice(-800)}\nA: ${warnings(pair.logA)}\nB: ${warnings(pair.logB)}`,
      );
      assert.ok(
        j.end.sum_received.bytes > 1024 * 1024,
        `iperf3 ${reverse ? 'reverse' : 'forward'} moved only ${j.end.sum_received.bytes} bytes`,
      );
    }
    const st = pair.a.gateway.status();
    // Control + data connection per run.
    assert.ok(st.tunnels[0]!.total >= 4);
  } finally {
    const serverGone = stopChild(server);
    await pair.stop();
    await serverGone;
  }
});
