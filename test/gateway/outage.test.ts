// A WAN outage longer than the 30 s that once ended every association (issue #14): with the
// default outage budget the association and the transfer on it survive, both gateways say the
// peer is unreachable (status, metrics, one log line each way), a connection opened meanwhile is
// reset after limits.connectWaitMs with its reason logged, and data flows again within about a
// second of the link's return.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { createMetrics } from '../../src/gateway/metrics.ts';
import { LogCapture, makeKeys, sleep, startA, startB, startUdpRelay, startVerifyTarget, verifiedExchange } from './helpers.ts';

const OUTAGE_MS = 35_000;
const MiB = 1024 * 1024;

function clientOutcome(port: number): Promise<{ outcome: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', (err: NodeJS.ErrnoException) => resolve({ outcome: err.code ?? err.message, ms: Date.now() - t0 }));
    s.on('close', () => resolve({ outcome: 'closed', ms: Date.now() - t0 }));
  });
}

test(`a ${OUTAGE_MS / 1000} s WAN outage mid-transfer: the transfer survives, the outage is reported, the link's return is noticed at once`, {
  timeout: 120_000,
}, async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const logA = new LogCapture();
  // 40 Mbit/s keeps the 24 MiB exchange running across the outage.
  const transport = { rateController: () => new ModelBasedController({ maxRateBps: 40e6 }) };
  const b = await startB({ target: '', allow: ['127.0.0.1'], transport }, keys, logB);
  const relay = await startUdpRelay(b.gateway.wanAddress.port, { delayMs: 5 });
  const a = await startA(
    { target: `127.0.0.1:${target.port}`, allow: [], transport, limits: { connectWaitMs: 3000 } },
    keys,
    relay.port,
    logA,
  );
  const port = a.gateway.tunnels[0]!.address.port;
  try {
    const transfer = verifiedExchange(port, 12 * MiB, 12 * MiB);
    await sleep(1500);
    relay.drop = true;
    const outageStart = Date.now();
    // Both sides report it, once, within a few seconds.
    const lineA = await logA.waitFor(/^peer unreachable/, () => true, 8_000);
    await logB.waitFor(/^peer unreachable/, () => true, 8_000);
    assert.ok(typeof lineA.since === 'string' && lineA.connections === 1, JSON.stringify(lineA));
    const peerA = a.gateway.status().peers[0]!;
    assert.equal(peerA.reachable, false);
    assert.ok(peerA.unreachableSince !== null && peerA.outages === 1);
    assert.equal(b.gateway.status().peers[0]!.reachable, false);
    const metrics = await createMetrics(() => a.gateway.status()).metrics();
    assert.match(metrics, /longhaul_peer_reachable\{peer="b"\} 0/);
    assert.match(metrics, /longhaul_peer_outages_total\{peer="b"\} 1/);

    // A connection opened during the outage waits connectWaitMs, then is reset with a reason.
    const late = await clientOutcome(port);
    assert.equal(late.outcome, 'ECONNRESET');
    assert.ok(late.ms >= 2500 && late.ms < 6000, `reset after ${late.ms} ms`);
    assert.ok(logA.find(/^connection reset: peer gateway unreachable \(WAN outage\)/));

    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
    const inBefore = a.gateway.status().associations[0]!.bytesInRaw;
    relay.drop = false;
    const back = Date.now();
    let resumedMs = Infinity;
    while (Date.now() - back < 5000) {
      if (a.gateway.status().associations[0]!.bytesInRaw > inBefore) {
        resumedMs = Date.now() - back;
        break;
      }
      await sleep(20);
    }
    assert.ok(resumedMs <= 1500, `data flowed again ${resumedMs} ms after the link returned`);
    const r = await transfer;
    assert.ok(r.uploadOk && r.downloadOk, 'transfer intact across the outage');
    await logA.waitFor(/^peer reachable again after a/, () => true, 3_000);
    await logB.waitFor(/^peer reachable again after a/, () => true, 3_000);
    for (const log of [logA, logB]) {
      assert.equal(log.lines.filter((l) => /^peer unreachable/.test(l.msg)).length, 1, 'one line at the start');
      assert.equal(log.lines.filter((l) => /^peer reachable again/.test(l.msg)).length, 1, 'one line at the end');
      assert.ok(!log.find(/^association closed/));
      assert.ok(!log.find(/^peer gateway restarted/));
    }
    assert.equal(a.gateway.status().peers[0]!.reachable, true);
  } finally {
    await a.stop(0);
    await b.stop(0);
    await relay.close();
    await target.close();
  }
});
