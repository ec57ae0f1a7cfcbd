// A fresh gateway pair opens its association on the first client connection, while the
// packet-protection handshake for it is still under way: the association's first packets must
// wait for that handshake (and go out when it completes), not be dropped and left to the
// transport's retransmission timer, which made every first connection ~0.6 s slower.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

test('the first connection: transport packets sent before the secure session exists are held and sent when it completes, none lost', async () => {
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1'], compression: 'none' });
  try {
    const r = await verifiedExchange(pair.port, 64 * 1024, 64 * 1024);
    assert.ok(r.uploadOk && r.downloadOk);
    const s = pair.a.gateway.status();
    const held = s.crypto.heldForHandshake;
    assert.ok(held.held >= 1, `the association's first packets were held (${JSON.stringify(held)})`);
    assert.equal(held.released, held.held, 'every held packet was sent once the session existed');
    assert.equal(held.dropped, 0);
    const assoc = s.associations.find((x) => x.role === 'client');
    assert.ok(assoc);
    assert.equal(assoc.packetsLost, 0, 'the transport lost nothing: its INIT was not dropped for want of keys');
    assert.deepEqual(pair.b.gateway.status().crypto.heldForHandshake, { held: 0, released: 0, dropped: 0 }, 'the answering side has its session before it sends');
  } finally {
    await pair.stop();
    await target.close();
  }
});
