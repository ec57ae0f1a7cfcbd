// A fresh gateway pair opens its association on the first client connection, while the
// packet-protection handshake for it is still under way: the association's first packets must
// wait for that handshake (and go out when it completes), not be dropped and left to the
// transport's retransmission timer, which made every first connection ~0.6 s slower.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAddon } from '../../src/native/load.ts';
import { startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const nativeBuilt = loadAddon('lh_udp').ok;

for (const udp of ['native', 'dgram'] as const) {
  test(`${udp} WAN socket: transport packets sent before the secure session exists are held and sent when it completes, none lost`, {
    skip: udp === 'native' && !nativeBuilt ? 'lh_udp addon not built (make -C native)' : false,
  }, async () => {
    // The backend is picked from the environment at bind time (each test file runs in its own process).
    const saved = process.env.LONGHAUL_UDP;
    process.env.LONGHAUL_UDP = udp;
    const target = await startVerifyTarget();
    const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'], compression: 'none' });
    if (saved === undefined) delete process.env.LONGHAUL_UDP;
    else process.env.LONGHAUL_UDP = saved;
    try {
      // The native link has the gateway seal straight into its send queue; node:dgram has it seal into a reused buffer.
      const started = pair.logA.find('gateway started');
      assert.equal((started?.datapath as { udp?: string } | undefined)?.udp, udp, 'the WAN socket backend under test');
      const r = await verifiedExchange(pair.port, 2 * 1024 * 1024, 1024 * 1024);
      assert.ok(r.uploadOk && r.downloadOk);
      const s = pair.a.gateway.status();
      const held = s.crypto.heldForHandshake;
      assert.ok(held.held >= 1, `the association's first packets were held (${JSON.stringify(held)})`);
      assert.equal(held.released, held.held, 'every held packet was sent once the session existed');
      assert.equal(held.dropped, 0);
      const assoc = s.associations.find((x) => x.role === 'client');
      assert.ok(assoc);
      assert.equal(assoc.packetsLost, 0, 'the transport lost nothing: its INIT was not dropped for want of keys');
      assert.deepEqual(
        pair.b.gateway.status().crypto.heldForHandshake,
        { held: 0, released: 0, dropped: 0 },
        'the answering side has its session before it sends',
      );
    } finally {
      await pair.stop();
      await target.close();
    }
  });
}
