// peekRoute: what the gateway's router reads from a datagram without parsing it must agree with
// the wire format the core writes (header and first frame), so the router needs no copy of it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameType, HandshakeKind, writeHandshake } from '../../src/transport/frame.ts';
import { HEADER_SIZE, peekRoute, writeHeader, type PacketRoute } from '../../src/transport/packet.ts';

const params = {
  maxPacketSize: 1400,
  maxData: 1 << 20,
  maxStreamData: 1 << 16,
  maxStreams: 100,
  maxAckDelayUs: 5000,
  idleTimeoutMs: 30_000,
};

function packet(kind: number | null): Uint8Array {
  const buf = new Uint8Array(256);
  let at = writeHeader(buf, 0, 0x12345678, 0x9abcdef0, 7);
  if (kind !== null) at = writeHandshake(buf, at, kind, params);
  else buf[at++] = FrameType.PING;
  return buf.subarray(0, at);
}

test('peekRoute reads the connection id and whether a packet opens an association', () => {
  const out: PacketRoute = { cidHi: 0, cidLo: 0, opensAssociation: false };
  assert.equal(peekRoute(packet(HandshakeKind.INIT), out), true);
  assert.deepEqual(out, { cidHi: 0x12345678, cidLo: 0x9abcdef0, opensAssociation: true });
  assert.equal(peekRoute(packet(HandshakeKind.ACCEPT), out), true);
  assert.equal(out.opensAssociation, false, 'an ACCEPT opens nothing');
  assert.equal(peekRoute(packet(null), out), true);
  assert.equal(out.opensAssociation, false, 'nor does a packet that starts with another frame');
  assert.equal(peekRoute(packet(HandshakeKind.INIT).subarray(0, HEADER_SIZE - 1), out), false, 'shorter than a header');
});
