// Bad input: any datagram, however malformed, is dropped whole (state as it was) and nothing
// accepted is lost. Packets are built with the real encoders so they get past the header.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Pair } from './helpers.ts';
import { Reader, Writer } from './transfer.ts';
import { HEADER_SIZE, writeHeader, readHeader, newHeader } from '../../src/transport/packet.ts';
import { encodeFrame, type Frame } from '../../src/transport/frame.ts';
import type { Connection } from '../../src/transport/connection.ts';

/** A packet on `conn`'s association (right connection id) with a fresh packet number. */
function packet(cid: Uint8Array, pn: number, frames: Frame[] | Uint8Array): Uint8Array {
  const body = frames instanceof Uint8Array ? frames : Buffer.concat(frames.map(encodeFrame));
  const out = new Uint8Array(HEADER_SIZE + body.length);
  out.set(cid, 2);
  writeHeader(
    out,
    0,
    ((cid[0]! << 24) | (cid[1]! << 16) | (cid[2]! << 8) | cid[3]!) >>> 0,
    ((cid[4]! << 24) | (cid[5]! << 16) | (cid[6]! << 8) | cid[7]!) >>> 0,
    pn,
  );
  out.set(body, HEADER_SIZE);
  return out;
}

function snapshot(c: Connection): unknown {
  const { datagramsDropped: _d, ...rest } = c.stats();
  const ext = c.extendedStats();
  return { ...rest, buffered: ext.bufferedRecvBytes, send: ext.bufferedSendBytes, timeout: c.nextTimeout(), connected: c.isConnected };
}

function setup(): { p: Pair; cid: Uint8Array; writer: Writer; reader: Reader; lastPn: () => number } {
  const p = new Pair({ seed: 21, link: { lossRate: 0.02, jitterMs: 2 } });
  let cid = new Uint8Array(8);
  let largestPn = 0;
  const h = newHeader();
  p.tap = (d, toServer) => {
    if (toServer && readHeader(d, h) === null) {
      cid = d.slice(2, 10);
      largestPn = Math.max(largestPn, h.packetNumber);
    }
  };
  const writer = new Writer([400_000, 300_000, 2000], 4);
  const reader = new Reader();
  p.onClient = (q) => writer.pump(q.client, q.clientEvents);
  p.onServer = (q) => reader.pump(q.server, q.serverEvents);
  p.runUntil(() => reader.bytes() > 100_000, 60_000);
  return { p, cid: new Uint8Array(cid), writer, reader, lastPn: () => largestPn };
}

test('hostile datagrams are dropped whole, leave state intact, and the transfer still completes byte-exact', () => {
  const { p, cid, writer, reader, lastPn } = setup();
  const server = p.server;
  const pnBase = lastPn() + 1_000_000; // fresh numbers the client will not reach
  const wrongCid = cid.slice();
  wrongCid[7]! ^= 1; // a connection id is 8 bytes
  const streamId = [...reader.chunks.keys()][0]!;
  const hostile: Uint8Array[] = [
    new Uint8Array(0),
    new Uint8Array(5),
    Uint8Array.of(9, ...new Uint8Array(40)), // bad version
    packet(wrongCid, pnBase, [{ type: 'ping' }]),
    packet(cid, pnBase + 1, Uint8Array.of(0x3f)), // unknown frame
    packet(cid, pnBase + 2, Uint8Array.of(0x10, 0, 0, 0xbf, 0xff, 0xff, 0xff)), // truncated STREAM
    // Well-formed, semantically invalid: beyond flow control, beyond the stream limit, a
    // peer-side id the client never opened, a stream id of the wrong side, an INIT to an open association.
    packet(cid, pnBase + 3, [{ type: 'stream', streamId, offset: 1 << 30, fin: false, data: new Uint8Array(10) }]),
    packet(cid, pnBase + 4, [{ type: 'stream', streamId: 2 * 100_000, offset: 0, fin: false, data: new Uint8Array(1) }]),
    packet(cid, pnBase + 5, [{ type: 'stream', streamId: 1, offset: 0, fin: false, data: new Uint8Array(1) }]),
    packet(cid, pnBase + 6, [{ type: 'reset-stream', streamId, code: 1, finalSize: 0 }]),
    packet(cid, pnBase + 7, [{ type: 'stream', streamId, offset: 0, fin: true, data: new Uint8Array(1) }]),
    packet(cid, pnBase + 8, [
      {
        type: 'handshake',
        kind: 2,
        params: { maxPacketSize: 1452, maxData: 1, maxStreamData: 1, maxStreams: 1, idleTimeoutMs: 1, maxAckDelayUs: 1 },
      },
    ]),
    // A valid frame followed by garbage: the valid part must not be applied either.
    packet(cid, pnBase + 9, Uint8Array.of(...encodeFrame({ type: 'max-streams', max: 1 }), 0xff)),
  ];
  for (const d of hostile) {
    const before = snapshot(server);
    const dropped = server.stats().datagramsDropped;
    p.inject(true, d);
    assert.deepEqual(snapshot(server), before, `state changed by ${Buffer.from(d.subarray(0, 24)).toString('hex')}`);
    assert.equal(server.stats().datagramsDropped, dropped + 1);
  }
  // Random bytes behind a valid header, and random bytes alone.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), fc.nat(), (body, withHeader, n) => {
      const d = withHeader ? packet(cid, pnBase + 100 + n, body) : body;
      const before = snapshot(server);
      p.inject(true, d);
      const after = snapshot(server);
      if (server.stats().datagramsDropped === 0) assert.fail('nothing was dropped');
      // Either dropped (state identical) or a harmless valid packet (only padding/ping/ack-like).
      if (JSON.stringify(after) !== JSON.stringify(before)) {
        const a = after as Record<string, unknown>;
        const b = before as Record<string, unknown>;
        assert.equal(a.streamBytesReceived, b.streamBytesReceived);
        assert.equal(a.activeStreams, b.activeStreams);
      }
    }),
    { numRuns: 400, seed: 5 },
  );
  // Replays of real packets are duplicates: ignored.
  assert.ok(p.runUntil(() => reader.finished.size === 3, 300_000));
  assert.ok(server.isConnected);
  assert.deepEqual(reader.digests(), writer.digests());
});

test('replayed packets are ignored', () => {
  const p = new Pair({ seed: 1 });
  const captured: Uint8Array[] = [];
  p.tap = (d, toServer) => {
    if (toServer) captured.push(d);
  };
  const writer = new Writer([50_000], 1);
  const reader = new Reader();
  p.onClient = (q) => writer.pump(q.client, q.clientEvents);
  p.onServer = (q) => reader.pump(q.server, q.serverEvents);
  assert.ok(p.runUntil(() => reader.finished.size === 1, 10_000));
  const received = p.server.stats().streamBytesReceived;
  for (const d of captured) p.inject(true, d);
  assert.equal(p.server.stats().streamBytesReceived, received);
  assert.ok(p.server.extendedStats().duplicatePackets >= captured.length - 2);
  assert.deepEqual(reader.digests(), writer.digests());
});
