// A gateway killed mid-run (SIGKILL, as a crash) and started again: the connections it
// carried are reset on both sides, and new connections work once it is back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import {
  freePort,
  freeUdpPort,
  LogCapture,
  makeKeys,
  sleep,
  spawnGateway,
  startA,
  startB,
  startVerifyTarget,
  verifiedExchange,
} from './helpers.ts';

test('gateway killed mid-run: its connections reset, new ones work after restart', { timeout: 120_000 }, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const b = await startB({ target: '', allow: ['127.0.0.1'] }, keys, logB);
  const tunnelPort = await freePort();
  const args = [
    '--name',
    'a',
    '--wan',
    '127.0.0.1:0',
    '--peer',
    `127.0.0.1:${b.gateway.wanAddress.port}`,
    '--tunnel',
    `127.0.0.1:${tunnelPort}=127.0.0.1:${target.port}`,
    '--key',
    keys.aKey,
    '--peer-key',
    keys.bPub,
  ];
  let a = await spawnGateway(args);
  const procs: ChildProcess[] = [a];
  try {
    // Five connections that stall mid-transfer: they ask for 32 MiB and do not read it.
    const clients: Socket[] = [];
    const outcomes: Array<Promise<string>> = [];
    for (let i = 0; i < 5; i++) {
      const c = connect({ port: tunnelPort, host: '127.0.0.1' });
      clients.push(c);
      outcomes.push(
        new Promise((resolve) => {
          let err = 'closed';
          c.on('error', (e: NodeJS.ErrnoException) => {
            err = e.code ?? e.message;
          });
          c.on('close', () => resolve(err));
        }),
      );
      const header = Buffer.alloc(8);
      header.writeUInt32BE(0, 0);
      header.writeUInt32BE(32 * 1024 * 1024, 4);
      c.write(header);
      c.pause();
    }
    const deadline = Date.now() + 15_000;
    while (target.sockets.size < 5 && Date.now() < deadline) await sleep(20);
    assert.equal(target.sockets.size, 5, 'all five connections reached the target');

    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    // The clients' connections died with their gateway.
    // Paused sockets only notice the FIN once they read what is buffered.
    for (const c of clients) c.resume();
    const ends = await Promise.all(outcomes);
    assert.equal(ends.length, 5);

    a = await spawnGateway(args);
    procs.push(a);
    // A fresh connection works end to end...
    const r = await verifiedExchange(tunnelPort, 256 * 1024, 512 * 1024);
    assert.ok(r.uploadOk && r.downloadOk);
    // ...and the far side dropped what the dead gateway carried: its target sockets were reset.
    await logB.waitFor('peer re-established its association; closing the old one');
    const deadline2 = Date.now() + 10_000;
    while (target.sockets.size > 0 && Date.now() < deadline2) await sleep(20);
    assert.equal(target.sockets.size, 0, 'target connections of the dead gateway were reset');
    // The answering side counts it: the peer restarted and re-associated.
    const peer = b.gateway.status().peers.find((p) => p.name === 'a')!;
    assert.equal(peer.restartsDetected, 1);
    assert.equal(peer.reassociations, 1);
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await b.stop(0);
    await target.close();
  }
});

test('the answering gateway crashes and restarts: the opening side re-establishes the association', { timeout: 120_000 }, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const wanPort = await freeUdpPort();
  const bArgs = ['--name', 'b', '--wan', `127.0.0.1:${wanPort}`, '--key', keys.bKey, '--peer-key', keys.aPub, '--allow', '127.0.0.1'];
  let b = await spawnGateway(bArgs);
  const procs: ChildProcess[] = [b];
  const logA = new LogCapture();
  // Short idle timeout so the dead association is noticed within the test's time.
  const a = await startA({ target: `127.0.0.1:${target.port}`, allow: [], limits: { peerTimeoutMs: 3000 } }, keys, wanPort, logA);
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    const first = await verifiedExchange(port, 128 * 1024, 128 * 1024);
    assert.ok(first.uploadOk && first.downloadOk);
    b.kill('SIGKILL');
    await new Promise((r) => b.once('exit', r));
    b = await spawnGateway(bArgs);
    procs.push(b);
    await logA.waitFor('association closed', () => true, 15_000);
    const again = await verifiedExchange(port, 128 * 1024, 128 * 1024);
    assert.ok(again.uploadOk && again.downloadOk);
    assert.ok(logA.lines.filter((l) => l.msg === 'association connected').length >= 2);
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await a.stop(0);
    await target.close();
  }
});
