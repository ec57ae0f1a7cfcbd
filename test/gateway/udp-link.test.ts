// The WAN link's contract on both backends (the lh_udp addon when built, and the node:dgram
// fallback). Sending: sendBatch sends a batch of datagrams of mixed sizes intact and in order and
// leaves the batch empty, so the caller refills it at once (the gateway seals every flush into one
// batch) without changing what the peer receives. Receiving: every datagram reaches the sink, each
// batch of them closed by one endOfBatch, and each with an arrival time on performance.now()'s
// clock that is plausible: not before it was sent, not after it was handed over, close to the send.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { createSocket } from 'node:dgram';
import { loadAddon } from '../../src/native/load.ts';
import { DatagramBatch, UdpLink } from '../../src/gateway/udp-link.ts';

// The kernel stamps arrivals on CLOCK_REALTIME and the addon turns them into ages; allow for the
// two clocks drifting apart by a few microseconds (NTP slewing) between the reads.
const CLOCK_SLACK_MS = 0.05;

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; !cond() && waited < ms; waited += 10) await sleep(10);
}

/** Datagram `seq` of length `len`: seq in the first 4 bytes, then a pattern that depends on both. */
function fill(d: Buffer, seq: number, len: number): void {
  d.writeUInt32BE(seq, 0);
  for (let j = 4; j < len; j++) d[j] = (seq * 13 + j) & 0xff;
}

function intact(d: Buffer, seq: number, len: number): boolean {
  if (d.length !== len || d.readUInt32BE(0) !== seq) return false;
  for (let j = 4; j < len; j++) if (d[j] !== ((seq * 13 + j) & 0xff)) return false;
  return true;
}

// Runs of equal sizes (GSO messages on the native backend) broken by shorter, longer and tiny ones.
const SIZES = [1400, 1400, 1400, 1400, 600, 1400, 1400, 4, 9000, 1399, 1400, 1400, 64, 30000, 1400];
const sizeOf = (seq: number): number => SIZES[seq % SIZES.length]!;

for (const backend of ['native', 'dgram'] as const) {
  const skip = backend === 'native' && !loadAddon('lh_udp').ok ? 'lh_udp addon not built' : false;

  test(`${backend}: sendBatch: mixed sizes arrive intact and in order; the batch is left empty and may be refilled at once`, {
    skip,
  }, async () => {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    try {
      assert.equal(a.backend, backend);
      const received: Buffer[] = [];
      let batches = 0;
      let open = 0; // datagrams since the last endOfBatch
      let emptyBatches = 0;
      b.onDatagrams({
        datagram(d) {
          received.push(d);
          open++;
        },
        endOfBatch() {
          if (open === 0) emptyBatches++;
          batches++;
          open = 0;
        },
      });
      const to = b.address; // one long-lived object: it keys the connected path
      const batch = new DatagramBatch();
      const ROUNDS = 40;
      const PER_ROUND = 50;
      let seq = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (let i = 0; i < PER_ROUND; i++, seq++) {
          const len = sizeOf(seq);
          assert.ok(batch.fits(len));
          if (i % 2 === 0) {
            // Written in place, as the packet protection seals into the batch.
            fill(batch.buf.subarray(batch.end), seq, len);
            batch.push(len);
          } else {
            const d = Buffer.alloc(len);
            fill(d, seq, len);
            batch.add(d);
          }
        }
        const used = batch.end;
        a.sendBatch(batch, to);
        assert.equal(batch.count, 0, 'sendBatch empties the batch');
        assert.equal(batch.end, 0);
        // The caller reuses the batch at once: whatever the link still holds must be its own copy.
        batch.buf.fill(0xee, 0, used);
        if (round % 4 === 3) await new Promise((r) => setImmediate(r)); // a few flushes per turn, as the association does
      }
      await until(() => received.length >= seq);
      assert.equal(received.length, seq, 'every datagram arrives');
      for (const [i, d] of received.entries())
        assert.ok(intact(d, i, sizeOf(i)), `datagram ${i} intact and in order (length ${d.length}, seq ${d.readUInt32BE(0)})`);
      assert.equal(open, 0, 'every batch of datagrams is closed by endOfBatch');
      assert.equal(emptyBatches, 0, 'no endOfBatch without datagrams');
      if (backend === 'dgram') assert.equal(batches, seq, 'node:dgram: every datagram is a batch of its own');
      else assert.ok(batches <= seq, `${batches} batches for ${seq} datagrams`);
      assert.equal(a.stats.sendErrors, 0);
      assert.equal(a.stats.datagramsOut, seq);
      assert.equal(
        a.stats.bytesOut,
        received.reduce((n, d) => n + d.length, 0),
      );
      assert.equal(b.stats.datagramsIn, seq);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test(`${backend}: arrival: every datagram's arrival time lies between its send and its handover, close to the send`, {
    skip,
  }, async () => {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    try {
      const got: Array<{ seq: number; arrival: number; handed: number }> = [];
      b.onDatagrams({
        datagram(d, _from, arrival) {
          got.push({ seq: d.readUInt32BE(0), arrival, handed: performance.now() });
        },
        endOfBatch() {},
      });
      const to = b.address;
      const sentBefore: number[] = [];
      const sentAfter: number[] = [];
      const batch = new DatagramBatch();
      let seq = 0;
      // Single datagrams, unconnected and through the peer path, then batches of them.
      for (let round = 0; round < 30; round++) {
        const n = round < 10 ? 1 : 1 + (round % 7) * 5;
        const before = performance.now();
        if (round < 5) {
          const d = Buffer.alloc(100);
          fill(d, seq, 100);
          a.send(d, to.port, to.host);
          sentBefore[seq] = before;
          sentAfter[seq++] = performance.now();
        } else {
          const first = seq;
          for (let i = 0; i < n; i++, seq++) {
            fill(batch.buf.subarray(batch.end), seq, 1200);
            batch.push(1200);
          }
          a.sendBatch(batch, to);
          const after = performance.now();
          for (let s = first; s < seq; s++) {
            sentBefore[s] = before;
            sentAfter[s] = after;
          }
        }
        await until(() => got.length === seq);
        await sleep(round % 3); // now and then an idle socket
      }
      assert.equal(got.length, seq);
      let prev = -Infinity;
      got.forEach((g, i) => {
        assert.equal(g.seq, i, 'in order');
        assert.ok(Number.isFinite(g.arrival), `datagram ${i}: arrival ${g.arrival}`);
        assert.ok(
          g.arrival >= sentBefore[i]! - CLOCK_SLACK_MS,
          `datagram ${i} arrived (${g.arrival.toFixed(3)}) before it was sent (${sentBefore[i]!.toFixed(3)})`,
        );
        assert.ok(
          g.arrival <= g.handed,
          `datagram ${i}: arrival ${g.arrival.toFixed(3)} in the future of its handover ${g.handed.toFixed(3)}`,
        );
        assert.ok(g.arrival - sentAfter[i]! < 100, `datagram ${i}: arrival ${(g.arrival - sentAfter[i]!).toFixed(3)} ms after its send`);
        assert.ok(g.arrival >= prev, `datagram ${i}: arrival times follow the send order`);
        prev = g.arrival;
      });
    } finally {
      await a.close();
      await b.close();
    }
  });

  test(`${backend}: an address another socket holds is refused (EADDRINUSE) unless sharing is asked for on purpose`, { skip }, async () => {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend });
    const port = a.address.port;
    const opened: UdpLink[] = [a];
    try {
      await assert.rejects(UdpLink.bind({ host: '127.0.0.1', port }, { backend }), { code: 'EADDRINUSE' });
      // The wildcard address overlaps it too.
      await assert.rejects(UdpLink.bind({ host: '0.0.0.0', port }, { backend }), { code: 'EADDRINUSE' });
      // A plain socket of another program holding the address: refused as well.
      const plain = createSocket('udp4');
      await new Promise<void>((r) => plain.bind(0, '127.0.0.1', () => r()));
      await assert.rejects(UdpLink.bind({ host: '127.0.0.1', port: plain.address().port }, { backend }), { code: 'EADDRINUSE' });
      await new Promise<void>((r) => plain.close(() => r()));
      // Asked for: the link joins the first one's address, and it carries datagrams.
      const shared = await UdpLink.bind({ host: '127.0.0.1', port }, { backend, reusePort: true });
      opened.push(shared);
      assert.equal(shared.address.port, port);
      // Once the holders are gone the address is free again.
      for (const l of opened.splice(0)) await l.close();
      const again = await UdpLink.bind({ host: '127.0.0.1', port }, { backend });
      opened.push(again);
      assert.equal(again.address.port, port);
    } finally {
      for (const l of opened) await l.close();
    }
  });
}
