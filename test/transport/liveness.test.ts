// Liveness regressions: a window smaller than one (MTU-probed) packet, events queued by
// application calls, and the send time every ACK sample carries.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pair, TestController, drain } from './helpers.ts';
import { Reader, Writer } from './transfer.ts';
import type { AckSample } from '../../src/transport/congestion/controller.ts';
import { decodeFrames } from '../../src/transport/frame.ts';
import { HEADER_SIZE } from '../../src/transport/packet.ts';

const KiB = 1024;

test('receiver whose window is smaller than one 8900-byte packet still sends credit updates', () => {
  // The gateway's report: the receiving side probed up to 8900-byte packets while its
  // controller's window floor (4 x 1452 B) stayed at 5.8 KB; its MAX_DATA/MAX_STREAM_DATA
  // never fitted the window and the sender stalled with data buffered and nothing in flight.
  const small = new TestController(400e6, 5808);
  const big = { maxPacketSize: 8900, connectionReceiveWindow: 256 * KiB, streamReceiveWindow: 256 * KiB };
  const p = new Pair({ seed: 4, client: big, server: { ...big, rateController: () => small } });
  const writer = new Writer([4_000_000], 3);
  const reader = new Reader();
  p.onClient = (q) => writer.pump(q.client, q.clientEvents);
  p.onServer = (q) => reader.pump(q.server, q.serverEvents);
  assert.ok(
    p.runUntil(() => reader.finished.size === 1, 60_000),
    `stalled at ${reader.bytes()} bytes`,
  );
  assert.deepEqual(reader.digests(), writer.digests());
  assert.equal(p.server.stats().packetSize, 8900, 'the receiver did reach the large packet size');
  assert.ok(p.server.stats().cwndBytes < 8900);
});

test('sender whose window is smaller than one MTU probe: data never waits behind the probe', () => {
  const small = new TestController(400e6, 5000);
  const cfg = { maxPacketSize: 8900 };
  const p = new Pair({ seed: 5, client: { ...cfg, rateController: () => small }, server: cfg });
  const writer = new Writer([1_000_000], 4);
  const reader = new Reader();
  p.onClient = (q) => writer.pump(q.client, q.clientEvents);
  p.onServer = (q) => reader.pump(q.server, q.serverEvents);
  let largestData = 0;
  p.tap = (data, toServer) => {
    const frames = decodeFrames(data, HEADER_SIZE);
    if (toServer && Array.isArray(frames) && frames.some((f) => f.type === 'stream')) largestData = Math.max(largestData, data.length);
  };
  assert.ok(
    p.runUntil(() => reader.finished.size === 1, 120_000),
    `stalled at ${reader.bytes()} bytes`,
  );
  assert.deepEqual(reader.digests(), writer.digests());
  // The 8900-byte probe never fits this window; data goes in packets the window holds.
  assert.ok(largestData >= 1200 && largestData <= 5000, `largest data packet ${largestData}`);
});

test('an event queued by read() makes nextTimeout() due at once', () => {
  const p = new Pair({ seed: 6 });
  p.connect();
  const id = p.client.openStream();
  p.client.write(id, new Uint8Array(3000).fill(7));
  p.client.finish(id);
  // Deliver everything but let the "application" read nothing yet.
  assert.ok(p.runUntil(() => p.serverEvents.some((e) => e.type === 'stream-readable') && p.client.stats().bytesInFlight === 0, 5_000));
  while (p.server.pollEvent() !== null) {
    /* a driver's event loop: drained before reading */
  }
  // The handler reads inside the loop; the FIN has been consumed, stream-finished is queued.
  const sink: Uint8Array[] = [];
  assert.equal(drain(p.server, id, sink), 3000);
  const deadline = p.server.nextTimeout();
  assert.ok(deadline !== null && deadline <= p.now, `deadline ${deadline} at now ${p.now}`);
  assert.deepEqual(p.server.pollEvent(), { type: 'stream-finished', streamId: id });
  // Once polled, the deadline is an ordinary future one again (no busy loop).
  const after = p.server.nextTimeout();
  assert.ok(after === null || after > p.now);
});

test('every ACK sample carries the send time of its newest acknowledged packet', () => {
  class Recording extends TestController {
    readonly samples: Array<{ now: number; rttMs: number; sentAt: number | undefined }> = [];
    override onAck(s: AckSample): void {
      super.onAck(s);
      this.samples.push({ now: s.now, rttMs: s.rttMs, sentAt: s.sentAt });
    }
  }
  const ctl = new Recording();
  // Loss and jitter reordering: some ACKs newly cover only holes below the largest acked.
  const p = new Pair({ seed: 8, client: { rateController: () => ctl }, link: { delayMs: 10, lossRate: 0.03, jitterMs: 6 } });
  const writer = new Writer([2_000_000], 9);
  const reader = new Reader();
  p.onClient = (q) => writer.pump(q.client, q.clientEvents);
  p.onServer = (q) => reader.pump(q.server, q.serverEvents);
  assert.ok(p.runUntil(() => reader.finished.size === 1, 60_000));
  assert.ok(ctl.samples.length > 100);
  let holeOnly = 0;
  for (const s of ctl.samples) {
    assert.ok(s.sentAt !== undefined && Number.isFinite(s.sentAt), 'sentAt set');
    // The packet crossed the link both ways (10 ms each) before its ACK arrived.
    assert.ok(s.now - s.sentAt >= 20, `sentAt ${s.sentAt} at ${s.now}`);
    // An ACK of holes only: the newest acked packet is older than the RTT sample says.
    if (s.now - s.sentAt > s.rttMs + 1) holeOnly++;
  }
  assert.ok(holeOnly > 0, 'some ACKs covered only holes');
});
