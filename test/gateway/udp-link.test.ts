// UdpLink.sendTo's reuse signal: a buffer it reports as copied can be overwritten at once
// without changing what the peer receives (the gateway seals every packet into one buffer).
// Both backends: the lh_udp addon (when built) and the node:dgram fallback.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAddon } from '../../src/native/load.ts';
import { UdpLink } from '../../src/gateway/udp-link.ts';

for (const backend of ['native', 'dgram'] as const) {
  const skip = backend === 'native' && !loadAddon('lh_udp').ok ? 'lh_udp addon not built' : false;
  test(`${backend}: sendTo: a buffer reported as copied may be reused; every datagram arrives as it was sent`, { skip }, async () => {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    try {
      const received: Buffer[] = [];
      b.onDatagram((d) => received.push(d));
      const to = b.address; // one long-lived object: it keys the connected socket
      const SIZE = 1400;
      const COUNT = 3000;
      let buf = Buffer.alloc(SIZE);
      let reused = 0;
      for (let i = 0; i < COUNT; i++) {
        for (let off = 0; off < SIZE; off += 4) buf.writeUInt32LE(i, off);
        if (a.sendTo(buf, to)) reused++;
        else buf = Buffer.alloc(SIZE); // possibly still referenced by a queued send
        if (i === 4) await sleep(50); // the first few go unconnected (sent a turn later); then the connected socket is up
        if (i % 200 === 199) await sleep(1); // bounded bursts: stay within the socket buffers
      }
      for (let waited = 0; received.length < COUNT && waited < 2000; waited += 20) await sleep(20);
      assert.ok(reused > COUNT / 2, `the connected path reports copies (${reused} of ${COUNT})`);
      assert.ok(received.length > COUNT * 0.9, `datagrams arrive (${received.length} of ${COUNT})`);
      const seen = new Set<number>();
      for (const d of received) {
        assert.equal(d.length, SIZE);
        const i = d.readUInt32LE(0);
        for (let off = 0; off < SIZE; off += 4) assert.equal(d.readUInt32LE(off), i, `datagram ${i} intact`);
        assert.ok(!seen.has(i), `datagram ${i} once`);
        seen.add(i);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
}
