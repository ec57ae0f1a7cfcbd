// After the datapath's error and shutdown paths the process goes idle and exits on its own:
// nothing left polling (a socket armed for writability, a readable callback that does not
// consume, an ICMP error re-reported, a receive-coalescing timer that keeps re-arming), no driver
// re-scheduling itself with setImmediate.
// Each case runs in a child process, so "exits on its own" is checked for real; the child
// measures its own CPU over one idle second (a spin burns most of it, an idle process ~0).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { loadAddon } from '../../src/native/load.ts';

const skipNative = loadAddon('lh_udp').ok ? false : 'lh_udp addon not built (make -C native)';
// Generous against a loaded machine: a process spinning for the idle second uses most of it.
const IDLE_CPU_LIMIT_MS = 250;

const url = (rel: string): string => JSON.stringify(new URL(rel, import.meta.url).href);

// Prints {"idleCpuMs": n, ...} after one idle second; the script itself never calls process.exit.
const measure = `
  const c0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, 1000));
  const c1 = process.cpuUsage(c0);
  const idleCpuMs = (c1.user + c1.system) / 1000;`;

function runChild(script: string): { idleCpuMs: number; [k: string]: unknown } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, `the child exited by itself (it was killed after 30 s; stderr: ${r.stderr.slice(-2000)})`);
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as { idleCpuMs: number };
}

test('native link: sends to a closed peer (ICMP port unreachable, ECONNREFUSED) leave the process idle, and it exits after close', {
  skip: skipNative,
  timeout: 60_000,
}, () => {
  const out = runChild(`
    import { UdpLink, DatagramBatch } from ${url('../../src/gateway/udp-link.ts')};
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    const to = b.address;
    const batch = new DatagramBatch();
    let got = 0;
    b.onDatagrams({ datagram() { got++; }, endOfBatch() {} });
    batch.add(Buffer.alloc(1200));
    a.sendBatch(batch, to);
    while (got === 0) await sleep(5);
    await b.close();
    // Runs of equal datagrams (GSO messages) and single ones to the dead port, both sockets.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 100; i++) batch.add(Buffer.alloc(1200));
      batch.add(Buffer.alloc(300));
      a.sendBatch(batch, to);
      a.send(Buffer.alloc(100), to.port, to.host);
      await sleep(20);
    }
    await sleep(50);
    ${measure}
    const errors = a.stats.sendErrors;
    await a.close();
    console.log(JSON.stringify({ idleCpuMs, errors }));`);
  assert.ok((out.errors as number) > 0, `the refused sends were counted (${out.errors})`);
  assert.ok(out.idleCpuMs < IDLE_CPU_LIMIT_MS, `idle after the errors: ${out.idleCpuMs} ms CPU in 1 s`);
});

test('native link with receive coalescing: once a stream stops, the pause timer stops too (the process idles), and it exits after close', {
  skip: skipNative,
  timeout: 60_000,
}, () => {
  const out = runChild(`
    import { UdpLink, DatagramBatch } from ${url('../../src/gateway/udp-link.ts')};
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: 250 });
    const batch = new DatagramBatch();
    let got = 0;
    let batches = 0;
    b.onDatagrams({ datagram() { got++; }, endOfBatch() { batches++; } });
    // A stream of small batches, each well within a pause of the one before: reads keep pausing.
    for (let i = 0; i < 200; i++) {
      for (let k = 0; k < 5; k++) batch.add(Buffer.alloc(1200));
      a.sendBatch(batch, b.address);
      await new Promise((r) => setImmediate(r));
    }
    while (got < 1000) await sleep(5);
    // The main thread's wake-ups over the idle second: a timer that kept re-arming would wake it
    // thousands of times without much CPU.
    const { readFileSync } = await import('node:fs');
    const wakeups = () => Number(/voluntary_ctxt_switches:\\s+(\\d+)/.exec(readFileSync('/proc/self/task/' + process.pid + '/status', 'utf8'))[1]);
    const w0 = wakeups();
    ${measure}
    const idleWakeups = wakeups() - w0;
    // The socket is polled again: a datagram after the quiet second still arrives.
    batch.add(Buffer.alloc(100));
    a.sendBatch(batch, b.address);
    const t0 = performance.now();
    while (got < 1001 && performance.now() - t0 < 5000) await sleep(1);
    await a.close();
    await b.close();
    console.log(JSON.stringify({ idleCpuMs, idleWakeups, got, batches }));`);
  assert.equal(out.got, 1001, 'every datagram arrived, the last one after the quiet second too');
  assert.ok((out.batches as number) < 1000, `read in batches (${out.batches})`);
  assert.ok(out.idleCpuMs < IDLE_CPU_LIMIT_MS, `idle once the stream stopped: ${out.idleCpuMs} ms CPU in 1 s`);
  assert.ok(
    (out.idleWakeups as number) < 100,
    `the loop slept through the idle second (${out.idleWakeups} wake-ups; a 250 us timer would make ~4000)`,
  );
});

test('gateway pair stopped while connections are reset mid-transfer: the process goes idle and exits on its own', {
  timeout: 90_000,
}, () => {
  const out = runChild(`
    import { connect } from 'node:net';
    import { startPair, startVerifyTarget, verifiedExchange, sleep } from ${url('./helpers.ts')};
    const target = await startVerifyTarget();
    const pair = await startPair({ target: '127.0.0.1:' + target.port, allow: ['127.0.0.1'] });
    const exchange = await verifiedExchange(pair.port, 1e6, 1e6);
    // Clients that vanish mid-transfer (as iperf3 tears down its data connections), and one
    // transfer still running when the gateways stop.
    const resets = [0, 1, 2].map((i) => new Promise((resolve) => {
      const s = connect(pair.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', resolve);
      s.on('connect', () => {
        const h = Buffer.alloc(8);
        h.writeUInt32BE(2e6, 0);
        h.writeUInt32BE(8e6, 4);
        s.write(h);
        s.write(Buffer.alloc(2e6));
        setTimeout(() => s.resetAndDestroy(), 100 + 100 * i);
      });
    }));
    const running = verifiedExchange(pair.port, 20e6, 20e6).catch(() => null);
    await Promise.all(resets);
    await sleep(100);
    await target.close();
    await pair.stop();
    await running;
    ${measure}
    console.log(JSON.stringify({ idleCpuMs, exchangeOk: exchange.uploadOk && exchange.downloadOk }));`);
  assert.equal(out.exchangeOk, true, 'the tunnel carried data before the teardown');
  assert.ok(out.idleCpuMs < IDLE_CPU_LIMIT_MS, `idle after stop: ${out.idleCpuMs} ms CPU in 1 s`);
});
