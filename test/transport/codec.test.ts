import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Reader, writeVarint, varintSize, MAX_VARINT } from '../../src/transport/varint.ts';
import { HEADER_SIZE, newHeader, readHeader, writeHeader, MAX_PACKET_NUMBER, PROTOCOL_VERSION } from '../../src/transport/packet.ts';
import {
  decodeFrames,
  encodeFrame,
  readFrame,
  HandshakeKind,
  MAX_ACK_RANGES,
  type Frame,
  type TransportParams,
} from '../../src/transport/frame.ts';

test('varint round trips at every length boundary', () => {
  const values = [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 32 + 5, MAX_VARINT];
  for (const v of values) {
    const buf = new Uint8Array(8);
    const end = writeVarint(buf, 0, v);
    assert.equal(end, varintSize(v));
    const r = new Reader(buf, 0, end);
    assert.equal(r.varint(), v);
    assert.equal(r.failed, false);
  }
});

test('varint beyond 2^53 and truncated varints fail without throwing', () => {
  const r = new Reader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  assert.equal(r.varint(), 0);
  assert.equal(r.failed, true);
  const t = new Reader(Uint8Array.of(0x80, 1));
  t.varint();
  assert.equal(t.failed, true);
});

test('packet header round trips and rejects bad version, flags, truncation', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: MAX_PACKET_NUMBER }),
      fc.constantFrom(0, 1),
      (hi, lo, pn, flags) => {
        const buf = new Uint8Array(HEADER_SIZE);
        writeHeader(buf, flags, hi, lo, pn);
        const h = newHeader();
        assert.equal(readHeader(buf, h), null);
        assert.deepEqual(h, { version: PROTOCOL_VERSION, flags, cidHi: hi, cidLo: lo, packetNumber: pn });
      },
    ),
  );
  const buf = new Uint8Array(HEADER_SIZE);
  writeHeader(buf, 0, 1, 2, 3);
  const h = newHeader();
  assert.equal(readHeader(buf.subarray(0, 15), h)?.error, 'truncated');
  const v = buf.slice();
  v[0] = 9;
  assert.equal(readHeader(v, h)?.error, 'bad-version');
  const f = buf.slice();
  f[1] = 0x80;
  assert.equal(readHeader(f, h)?.error, 'bad-flags');
});

const params: TransportParams = {
  maxPacketSize: 1452,
  maxData: 64 << 20,
  maxStreamData: 16 << 20,
  maxStreams: 4096,
  idleTimeoutMs: 30000,
  maxAckDelayUs: 5000,
};

const arbParams: fc.Arbitrary<TransportParams> = fc.record({
  maxPacketSize: fc.integer({ min: 512, max: 65527 }),
  maxData: fc.integer({ min: 0, max: 2 ** 40 }),
  maxStreamData: fc.integer({ min: 0, max: 2 ** 40 }),
  maxStreams: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  idleTimeoutMs: fc.integer({ min: 0, max: 2 ** 31 }),
  maxAckDelayUs: fc.integer({ min: 0, max: 1_000_000 }),
});

// ACK ranges: descending, disjoint, separated by at least one missing number.
const arbAckRanges = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 1000 })), { minLength: 1, maxLength: 40 })
  .map((parts) => {
    const asc: number[] = [];
    let cursor = 0;
    for (const [len, gap] of parts) {
      const low = cursor;
      const high = low + len;
      asc.push(low, high);
      cursor = high + 1 + gap;
    }
    const ranges: number[] = [];
    for (let i = asc.length - 2; i >= 0; i -= 2) ranges.push(asc[i + 1]!, asc[i]!);
    return ranges;
  });

const arbStreamId = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const arbFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.constant<Frame>({ type: 'ping' }),
  fc.integer({ min: 1, max: 64 }).map((length): Frame => ({ type: 'padding', length })),
  fc.tuple(arbAckRanges, fc.integer({ min: 0, max: 2 ** 32 })).map(([ranges, ackDelayUs]): Frame => ({ type: 'ack', ranges, ackDelayUs })),
  fc.record({ streamId: arbStreamId, code: fc.nat(), finalSize: fc.nat() }).map((r): Frame => ({ type: 'reset-stream', ...r })),
  fc.nat().map((max): Frame => ({ type: 'max-data', max })),
  fc.record({ streamId: arbStreamId, max: fc.nat() }).map((r): Frame => ({ type: 'max-stream-data', ...r })),
  fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((max): Frame => ({ type: 'max-streams', max })),
  fc
    .tuple(fc.constantFrom(HandshakeKind.INIT, HandshakeKind.ACCEPT), arbParams)
    .map(([kind, p]): Frame => ({ type: 'handshake', kind, params: p })),
  fc.record({ code: fc.nat(), reason: fc.string({ maxLength: 100 }) }).map((r): Frame => ({ type: 'close', ...r })),
  fc
    .record({
      streamId: arbStreamId,
      offset: fc.integer({ min: 0, max: 2 ** 50 }),
      fin: fc.boolean(),
      data: fc.uint8Array({ maxLength: 300 }),
    })
    .map((r): Frame => ({ type: 'stream', ...r })),
);

function normalize(f: Frame): unknown {
  if (f.type === 'stream') return { ...f, data: Array.from(f.data) };
  if (f.type === 'handshake') return { ...f, params: { ...f.params } };
  return { ...f };
}

test('every frame type round trips (property)', () => {
  fc.assert(
    fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 8 }), (frames) => {
      // Padding absorbs following zero bytes, so it is only compared as the last frame.
      const list = frames.filter((f, i) => f.type !== 'padding' || i === frames.length - 1);
      const parts = list.map(encodeFrame);
      const total = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let pos = 0;
      for (const p of parts) {
        total.set(p, pos);
        pos += p.length;
      }
      const decoded = decodeFrames(total);
      assert.ok(Array.isArray(decoded), JSON.stringify(decoded));
      assert.deepEqual(decoded.map(normalize), list.map(normalize));
    }),
    { numRuns: 500 },
  );
});

function decodeNeverThrows(bytes: Uint8Array): void {
  let result: ReturnType<typeof decodeFrames>;
  try {
    result = decodeFrames(bytes);
  } catch (e) {
    assert.fail(`decoder threw ${String(e)}`);
  }
  if (!Array.isArray(result)) {
    assert.equal(typeof result.error, 'string');
    assert.ok(result.offset >= 0 && result.offset <= bytes.length);
  } else {
    for (const f of result) if (f.type === 'stream') assert.ok(f.data.length <= bytes.length);
  }
  const h = newHeader();
  try {
    readHeader(bytes, h);
  } catch (e) {
    assert.fail(`header reader threw ${String(e)}`);
  }
}

test('decoders on random bytes return a typed error or valid frames, never throw', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), decodeNeverThrows), { numRuns: 3000 });
  // Frame-type-led inputs reach deeper into each decoder.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0x12 }), fc.uint8Array({ maxLength: 60 }), (t, rest) => {
      decodeNeverThrows(Uint8Array.of(t, ...rest));
    }),
    { numRuns: 3000 },
  );
});

test('decoders on mutated valid frames return a typed error or valid frames, never throw', () => {
  fc.assert(
    fc.property(
      arbFrame,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (frame, mutations, cut) => {
        const bytes = encodeFrame(frame).slice();
        for (const [at, v] of mutations) if (bytes.length > 0) bytes[at % bytes.length] = v;
        decodeNeverThrows(bytes);
        decodeNeverThrows(bytes.subarray(0, cut % (bytes.length + 1)));
      },
    ),
    { numRuns: 3000 },
  );
});

test('hostile lengths are rejected before any allocation or loop', () => {
  // STREAM claiming 2^40 bytes of payload.
  const s = Uint8Array.of(0x10, 0, 0, 0xc0, 0, 0x01, 0, 0, 0, 0, 0, 0);
  const rs = decodeFrames(s);
  assert.ok(!Array.isArray(rs) && rs.error === 'truncated');
  // ACK claiming 2^30 extra ranges.
  const a = Uint8Array.of(0x02, 10, 0, 0xbf, 0xff, 0xff, 0xff, 0);
  const ra = decodeFrames(a);
  assert.ok(!Array.isArray(ra) && ra.error === 'too-many-ranges');
  // ACK with more ranges than allowed but few bytes.
  const b = Uint8Array.of(0x02, 10, 0, 0x40 | (MAX_ACK_RANGES >> 8), MAX_ACK_RANGES & 0xff, 0);
  const rb = decodeFrames(b);
  assert.ok(!Array.isArray(rb) && rb.error === 'too-many-ranges');
  // ACK range below zero.
  const c = Uint8Array.of(0x02, 5, 0, 0, 6);
  const rc = decodeFrames(c);
  assert.ok(!Array.isArray(rc) && rc.error === 'bad-ack');
  // CLOSE reason longer than the cap.
  const d = Uint8Array.of(0x0b, 0, 0x7f, 0xff);
  const rd = decodeFrames(d);
  assert.ok(!Array.isArray(rd) && rd.error === 'bad-reason');
  // Invalid UTF-8 in the reason.
  const e = Uint8Array.of(0x0b, 0, 2, 0xc3, 0x28);
  const re = decodeFrames(e);
  assert.ok(!Array.isArray(re) && re.error === 'bad-reason');
  // Unknown frame type.
  const u = decodeFrames(Uint8Array.of(0x3f));
  assert.ok(!Array.isArray(u) && u.error === 'unknown-frame');
});

test('handshake: unknown parameters are skipped, duplicates and missing ones rejected', () => {
  const enc = encodeFrame({ type: 'handshake', kind: HandshakeKind.INIT, params });
  // Append an unknown parameter (id 40, 3 bytes) inside the body.
  const body = enc.subarray(2);
  const r = new Reader(body);
  const bodyLen = r.varint();
  const inner = body.subarray(r.pos, r.pos + bodyLen);
  const extended = Uint8Array.of(...inner, 40, 3, 1, 2, 3);
  const withUnknown = Uint8Array.of(0x0a, HandshakeKind.INIT, 0x40 | (extended.length >> 8), extended.length & 0xff, ...extended);
  const ok = decodeFrames(withUnknown);
  assert.ok(Array.isArray(ok));
  assert.deepEqual(ok[0], { type: 'handshake', kind: HandshakeKind.INIT, params });
  const dup = Uint8Array.of(...inner, 1, 2, 0x45, 0xac);
  const withDup = Uint8Array.of(0x0a, 1, 0x40 | (dup.length >> 8), dup.length & 0xff, ...dup);
  const rd = decodeFrames(withDup);
  assert.ok(!Array.isArray(rd) && rd.error === 'bad-handshake');
  const missing = Uint8Array.of(0x0a, 1, 0);
  const rm = decodeFrames(missing);
  assert.ok(!Array.isArray(rm) && rm.error === 'bad-handshake');
});

test('readFrame on an empty reader reports truncation', () => {
  const f = readFrame(new Reader(new Uint8Array(0)));
  assert.ok('error' in f && f.error === 'truncated');
});
