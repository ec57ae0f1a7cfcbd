// Restart detection: the answering gateway restarts (a crash: its keys and associations are
// gone) while the opening side has connections in use. The opening side must find out within
// limits.peerRestartDetectMs plus a handshake, not after peerTimeoutMs (30 s by default here):
// old connections reset with the reason logged, new ones work, and the re-association counted.
// A peer that is only slow keeps its association; a peer that stays down is not flooded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { formatStatus } from '../../src/cli/status-command.ts';
import { createMetrics } from '../../src/gateway/metrics.ts';
import {
  freeUdpPort,
  LogCapture,
  makeKeys,
  sleep,
  spawnGateway,
  startA,
  startB,
  startUdpRelay,
  startVerifyTarget,
  verifiedExchange,
} from './helpers.ts';

/** A tunnel connection that asks the target for `download` bytes and does not read them: a transfer stuck mid-way. */
function openStalled(port: number, download = 32 * 1024 * 1024): { socket: Socket; ended: Promise<string> } {
  const socket = connect({ port, host: '127.0.0.1' });
  const ended = new Promise<string>((resolve) => {
    let how = 'closed';
    socket.on('error', (e: NodeJS.ErrnoException) => {
      how = e.code ?? e.message;
    });
    socket.on('close', () => resolve(how));
  });
  const header = Buffer.alloc(8);
  header.writeUInt32BE(64 * 1024 * 1024, 0);
  header.writeUInt32BE(download, 4);
  socket.write(header);
  socket.pause();
  return { socket, ended };
}

/** A tunnel connection uploading without end (a transfer in progress); stop() ends the writing. */
function openUploader(port: number): { socket: Socket; ended: Promise<void>; stop(): void } {
  const socket = connect({ port, host: '127.0.0.1' });
  const ended = new Promise<void>((r) => {
    socket.on('error', () => {});
    socket.on('close', () => r());
  });
  const header = Buffer.alloc(8);
  header.writeUInt32BE(1024 * 1024 * 1024, 0);
  socket.write(header);
  const chunk = Buffer.alloc(16 * 1024, 7);
  // Bounded: at most 1 GiB at 16 KiB per 5 ms, far more than any test runs.
  const pump = setInterval(() => {
    if (!socket.destroyed && socket.writableLength < 1024 * 1024) socket.write(chunk);
  }, 5);
  const stop = (): void => clearInterval(pump);
  socket.on('close', stop);
  return { socket, ended, stop };
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(20);
  return cond();
}

test('answering gateway killed and restarted mid-transfer: detected quickly, old connections reset, new ones work', {
  timeout: 120_000,
}, async (t) => {
  const DETECT_MS = 1000;
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const wanPort = await freeUdpPort();
  const bArgs = ['--name', 'b', '--wan', `127.0.0.1:${wanPort}`, '--key', keys.bKey, '--peer-key', keys.aPub, '--allow', '127.0.0.1'];
  let b = await spawnGateway(bArgs);
  const procs: ChildProcess[] = [b];
  const logA = new LogCapture();
  // peerTimeoutMs stays at its 30 s default: only restart detection can explain a quick recovery.
  const a = await startA(
    { target: `127.0.0.1:${target.port}`, allow: [], limits: { peerRestartDetectMs: DETECT_MS } },
    keys,
    wanPort,
    logA,
  );
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    const first = await verifiedExchange(port, 128 * 1024, 128 * 1024);
    assert.ok(first.uploadOk && first.downloadOk);
    // Transfers in progress: three stuck downloads, and one upload still being written.
    const stalled = [openStalled(port), openStalled(port), openStalled(port)];
    const uploader = openUploader(port);
    assert.ok(await waitUntil(() => target.sockets.size >= 4, 15_000), 'all transfers reached the target');

    b.kill('SIGKILL');
    await new Promise((r) => b.once('exit', r));
    const killedAt = Date.now();
    b = await spawnGateway(bArgs);
    procs.push(b);
    const restartedAt = Date.now();

    const detected = await logA.waitFor(/^peer gateway restarted/, () => true, 30_000);
    const detectMs = Date.now() - killedAt;
    t.diagnostic(
      `restart detected ${detectMs} ms after the kill (${Date.now() - restartedAt} ms after the new process was up; peerRestartDetectMs ${DETECT_MS})`,
    );
    assert.equal(detected.peer, 'b');
    // Well before the association's idle timeout (30 s), which was the only detection before.
    assert.ok(detectMs < 20_000, `detected after ${detectMs} ms`);

    // Old connections: reset, each with the reason in its close line.
    const ends = await Promise.all(
      stalled.map((s) => {
        s.socket.resume();
        return s.ended;
      }),
    );
    await uploader.ended;
    assert.equal(ends.length, 3);
    assert.ok(
      await waitUntil(() => logA.lines.filter((l) => l.msg === 'connection closed' && l.end === 'association-lost').length >= 4, 5000),
    );
    for (const l of logA.lines.filter((x) => x.msg === 'connection closed' && x.end === 'association-lost')) {
      assert.match(String(l.reason), /peer gateway restarted/);
    }

    // New connections go over the new association, end to end.
    const again = await verifiedExchange(port, 256 * 1024, 256 * 1024);
    assert.ok(again.uploadOk && again.downloadOk);
    const st = a.gateway.status();
    const peer = st.peers.find((p) => p.name === 'b')!;
    assert.equal(peer.restartsDetected, 1);
    assert.equal(peer.reassociations, 1);
    assert.ok(peer.rehandshakes >= 1);
    assert.equal(st.liveness.restartDetectMs, DETECT_MS);
    assert.equal(st.associations.filter((x) => x.connected).length, 1);
    assert.ok(!logA.find('association closed', (l) => l.reason === 'idle timeout'), 'not noticed by the idle timeout');
    assert.match(formatStatus(st), /peer b: outages \d+ {2}restarts detected 1 {2}re-associations 1/);
    const metrics = await createMetrics(() => a.gateway.status()).metrics();
    assert.match(metrics, /longhaul_peer_reassociations_total\{peer="b"\} 1\b/);
    assert.match(metrics, /longhaul_peer_restarts_detected_total\{peer="b"\} 1\b/);
  } finally {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await a.stop(0);
    await target.close();
  }
});

/**
 * A reaches B1 through a UDP relay; B2, a fresh gateway with the same key, stands by so the
 * relay can "restart" B by pointing at it. `stop` ends everything the scene started.
 */
async function restartScene(opts: { detectMs: number; insecure?: boolean }) {
  const insecure = opts.insecure ?? false;
  const keys = insecure ? null : makeKeys();
  const target = await startVerifyTarget();
  const o = { target: '', allow: ['127.0.0.1'], insecure };
  const b1 = await startB(o, keys, new LogCapture());
  const relay = await startUdpRelay(b1.gateway.wanAddress.port);
  const logA = new LogCapture();
  const a = await startA(
    { target: `127.0.0.1:${target.port}`, allow: [], insecure, limits: { peerRestartDetectMs: opts.detectMs } },
    keys,
    relay.port,
    logA,
  );
  const b2 = await startB(o, keys, new LogCapture());
  const stop = async (): Promise<void> => {
    await a.stop(0);
    await b1.stop(0);
    await b2.stop(0);
    await relay.close();
    await target.close();
  };
  return { target, relay, a, b2, logA, port: a.gateway.tunnels[0]!.address.port, stop };
}

test('a restarted answering gateway stays silent to packets of the lost session and keeps no state for them', {
  timeout: 60_000,
}, async () => {
  // Detection far off: A keeps sending under the old session all through the test.
  const { target, relay, b2, port, stop } = await restartScene({ detectMs: 20_000 });
  try {
    const first = await verifiedExchange(port, 64 * 1024, 64 * 1024);
    assert.ok(first.uploadOk && first.downloadOk);
    const uploader = openUploader(port);
    assert.ok(await waitUntil(() => target.sockets.size >= 1, 10_000));
    // "Restart": the WAN now leads to a fresh gateway with the same key and no state.
    relay.pointAt(b2.gateway.wanAddress.port);
    assert.ok(await waitUntil(() => relay.fromA >= 5, 10_000), 'A kept sending under the old session');
    await sleep(500);
    const st = b2.gateway.status();
    assert.ok(st.crypto.endpoint!.unknownIndex >= 5, `unknownIndex ${st.crypto.endpoint!.unknownIndex}`);
    assert.equal(relay.fromB, 0, 'the restarted gateway answered nothing');
    assert.equal(st.udp.datagramsOut, 0);
    assert.equal(st.associations.length, 0);
    assert.equal(st.crypto.endpoint!.sessions, 0);
    assert.equal(st.crypto.endpoint!.halfOpen, 0);
    uploader.stop();
    uploader.socket.destroy();
  } finally {
    await stop();
  }
});

for (const insecure of [false, true])
  test(`restart of the answering instance behind the same address: detected, new connections work (in-process${insecure ? ', plaintext debug mode' : ''})`, {
    timeout: 60_000,
  }, async () => {
    const { target, relay, a, b2, logA, port, stop } = await restartScene({ detectMs: 500, insecure });
    try {
      assert.ok((await verifiedExchange(port, 64 * 1024, 64 * 1024)).downloadOk);
      const stalled = openStalled(port);
      assert.ok(await waitUntil(() => target.sockets.size >= 1, 10_000));
      relay.pointAt(b2.gateway.wanAddress.port);
      await logA.waitFor(/^peer gateway restarted/, () => true, 20_000);
      stalled.socket.resume();
      assert.notEqual(await stalled.ended, 'closed', 'the stuck connection was reset, not closed cleanly');
      const r = await verifiedExchange(port, 512 * 1024, 512 * 1024);
      assert.ok(r.uploadOk && r.downloadOk);
      assert.equal(a.gateway.status().peers[0]!.reassociations, 1);
      // The far side of the new association: B2 carried the new connection.
      assert.equal(b2.gateway.status().inbound.total, 1);
    } finally {
      await stop();
    }
  });

test('an idle association whose peer restarted: the next connection checks first and goes over a new association', {
  timeout: 60_000,
}, async () => {
  const { relay, a, b2, logA, port, stop } = await restartScene({ detectMs: 500 });
  try {
    assert.ok((await verifiedExchange(port, 64 * 1024, 64 * 1024)).downloadOk);
    await sleep(1000); // idle: no streams, next keepalive far off (10 s)
    relay.pointAt(b2.gateway.wanAddress.port);
    // Not reset: it waited for the check, which found the restart, and used the new association.
    const r = await verifiedExchange(port, 256 * 1024, 256 * 1024);
    assert.ok(r.uploadOk && r.downloadOk);
    assert.ok(logA.find(/^peer gateway restarted/));
    const peer = a.gateway.status().peers[0]!;
    assert.equal(peer.restartsDetected, 1);
    assert.equal(peer.reassociations, 1);
    assert.equal(a.gateway.tunnels[0]!.counters.failed, 0);
    assert.ok(!logA.find('connection closed', (l) => l.end === 'association-lost'));
  } finally {
    await stop();
  }
});

test('a peer that is only slow (WAN black-holed for a while) keeps its association and the transfer completes', {
  timeout: 60_000,
}, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const b = await startB({ target: '', allow: ['127.0.0.1'] }, keys, logB);
  const relay = await startUdpRelay(b.gateway.wanAddress.port);
  const logA = new LogCapture();
  const a = await startA({ target: `127.0.0.1:${target.port}`, allow: [], limits: { peerRestartDetectMs: 500 } }, keys, relay.port, logA);
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    // A paced upload that runs through the outage.
    const transfer = verifiedExchange(port, 2 * 1024 * 1024, 1024 * 1024, 20);
    assert.ok(await waitUntil(() => target.sockets.size >= 1, 10_000));
    relay.drop = true;
    // Long enough for a probe and at least one re-handshake.
    await logA.waitFor(/^peer silent and not answering probes/, () => true, 15_000);
    await sleep(1000);
    relay.drop = false;
    const r = await transfer;
    assert.ok(r.uploadOk && r.downloadOk, 'transfer intact across the outage');
    assert.ok(!logA.find(/^peer gateway restarted/));
    assert.ok(!logA.find('association closed'));
    assert.ok(!logB.find('association closed'));
    const peer = a.gateway.status().peers[0]!;
    assert.equal(peer.restartsDetected, 0);
    assert.equal(peer.reassociations, 0);
    assert.ok(peer.rehandshakes >= 1);
    assert.equal(logA.lines.filter((l) => l.msg === 'association connected').length, 1);
  } finally {
    await a.stop(0);
    await b.stop(0);
    await relay.close();
    await target.close();
  }
});

test('an idle association with a live peer is left alone', { timeout: 60_000 }, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const b = await startB({ target: '', allow: ['127.0.0.1'] }, keys, logB);
  const logA = new LogCapture();
  // Keepalives every second (a third of peerTimeoutMs); detection after 500 ms of unanswered use.
  const a = await startA(
    { target: `127.0.0.1:${target.port}`, allow: [], limits: { peerTimeoutMs: 3000, peerRestartDetectMs: 500 } },
    keys,
    b.gateway.wanAddress.port,
    logA,
  );
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    assert.ok((await verifiedExchange(port, 64 * 1024, 64 * 1024)).downloadOk);
    await sleep(4000); // several keepalive rounds, longer than peerTimeoutMs
    assert.ok((await verifiedExchange(port, 64 * 1024, 64 * 1024)).downloadOk);
    assert.ok(!logA.find('association closed'));
    assert.ok(!logA.find(/^peer gateway restarted/));
    assert.equal(a.gateway.status().peers[0]!.restartsDetected, 0);
    assert.equal(logA.lines.filter((l) => l.msg === 'association connected').length, 1);
  } finally {
    await a.stop(0);
    await b.stop(0);
    await target.close();
  }
});

test('a peer that stays down: bounded handshake rate with backoff, waiting connections given up', { timeout: 60_000 }, async (t) => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const b = await startB({ target: '', allow: ['127.0.0.1'] }, keys, new LogCapture());
  const relay = await startUdpRelay(b.gateway.wanAddress.port);
  const logA = new LogCapture();
  const a = await startA(
    { target: `127.0.0.1:${target.port}`, allow: [], limits: { peerRestartDetectMs: 300, connectWaitMs: 2000 } },
    keys,
    relay.port,
    logA,
  );
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    assert.ok((await verifiedExchange(port, 64 * 1024, 64 * 1024)).downloadOk);
    const stalled = openStalled(port);
    stalled.socket.on('error', () => {});
    assert.ok(await waitUntil(() => target.sockets.size >= 1, 10_000));
    relay.drop = true; // the peer is gone for good
    const before = a.gateway.status().crypto.endpoint!.handshakeInitiationsSent;
    // Clients keep trying meanwhile, one every 250 ms.
    const attempts: Array<Promise<string>> = [];
    const WINDOW_MS = 8000;
    const started = Date.now();
    while (Date.now() - started < WINDOW_MS) {
      attempts.push(
        new Promise((resolve) => {
          const c = connect({ port, host: '127.0.0.1' });
          c.on('error', () => {});
          c.on('close', () => resolve('closed'));
        }),
      );
      await sleep(250);
    }
    const initiations = a.gateway.status().crypto.endpoint!.handshakeInitiationsSent - before;
    // Every tick (75 ms) would be >100; a fixed re-handshake at the detection period ~27.
    // Backoff (0.3, 0.6, 1.2, 2.4, 4.8 s) plus the handshake's own 5 s retransmission: well under 12.
    assert.ok(initiations >= 1, 'it did try');
    assert.ok(initiations <= 12, `${initiations} handshake initiations in ${WINDOW_MS} ms`);
    const peer = a.gateway.status().peers[0]!;
    assert.ok(peer.rehandshakes >= 2 && peer.rehandshakes <= 6, `rehandshakes ${peer.rehandshakes}`);
    // Connections that waited for the verdict were given up after connectWaitMs, not held forever.
    t.diagnostic(`${initiations} handshake initiations, ${peer.rehandshakes} re-handshakes in ${WINDOW_MS} ms of outage`);
    // (Those that arrived before the probe went unanswered ride the silent association until it
    // is resolved; the later ones wait for the verdict.)
    const ends = await Promise.all(attempts.slice(12, 17));
    assert.equal(ends.length, 5);
    assert.ok(logA.find(/^connection reset: peer gateway unreachable/));
    assert.ok(!logA.find(/^peer gateway restarted/), 'silence alone never tears the association down');
    stalled.socket.destroy();
  } finally {
    await a.stop(0);
    await b.stop(0);
    await relay.close();
    await target.close();
  }
});
