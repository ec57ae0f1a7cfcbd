import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../src/transport/pacing.ts';
import { Pair, drain, randomBytes, sha256 } from './helpers.ts';

const PACKET = 1400;
const BULK = 64 * 1024 * 1024; // a backlog far larger than any quantum

/** Sends packets at `now` while the pacer allows; returns how many left and the next release time. */
function burst(p: Pacer, now: number, backlog = BULK): { sent: number; next: number } {
  let sent = 0;
  let at: number;
  while ((at = p.releaseTime(now, PACKET, backlog)) <= now) {
    p.onSent(PACKET);
    sent++;
    if (sent > 10_000) throw new Error('pacer never blocked');
  }
  return { sent, next: at };
}

function pacerAt(rateBps: number): Pacer {
  const p = new Pacer(0, PACKET);
  p.setRate(rateBps, PACKET);
  return p;
}

test('Pacer releases bulk data in quanta of about 1 ms of rate', () => {
  const p = pacerAt(100e6); // 12.5 kB per ms: a quantum of ~9 packets
  burst(p, 0);
  const first = burst(p, 0.01);
  assert.equal(first.sent, 0, 'a drained bucket does not release a single packet');
  assert.ok(first.next > 0.01);
  const at = burst(p, first.next);
  assert.ok(
    at.sent >= Math.floor(p.quantum / PACKET) && at.sent <= Math.ceil(p.quantum / PACKET),
    `burst of ${at.sent} packets, quantum ${p.quantum} B`,
  );
  assert.ok(p.quantum >= 12_000 && p.quantum <= 12_500);
});

test('Pacer bounds the quantum: at least 2 packets at low rates, at most 64 packets at high rates', () => {
  assert.equal(pacerAt(1e6).quantum, 2 * PACKET);
  assert.equal(pacerAt(10e9).quantum, 64 * PACKET);
  const p = pacerAt(1e6);
  burst(p, 0);
  const { next } = burst(p, 1);
  assert.equal(burst(p, next).sent, 2);
});

test('Pacer acks arriving between quanta do not dribble single packets', () => {
  const p = pacerAt(900e6);
  burst(p, 0);
  const sizes: number[] = [];
  // A flush every 50 µs (acks arriving), as an ack-clocked driver would run.
  for (let now = 0.05; now < 100; now += 0.05) {
    const { sent } = burst(p, now);
    if (sent > 0) sizes.push(sent);
  }
  const minBurst = Math.floor(p.quantum / PACKET);
  assert.ok(sizes.length > 50);
  for (const s of sizes) assert.ok(s >= minBurst, `burst of ${s} packets, quantum ${minBurst}`);
});

test('Pacer keeps the average rate within 1% when the timer wakes up to 1.1 ms late', () => {
  for (const rateBps of [10e6, 100e6, 900e6, 2e9]) {
    for (const lateMs of [0, 0.3, 1.1]) {
      const p = pacerAt(rateBps);
      burst(p, 0); // the initial bucket is not part of the rate
      let now = 0;
      let bytes = 0;
      let wakeups = 0;
      // A driver that sleeps until the pacer's release time, rounded up to whole milliseconds
      // like setTimeout, plus lateness varying 0..lateMs.
      while (now < 2000) {
        const { sent, next } = burst(p, now);
        bytes += sent * PACKET;
        wakeups++;
        now += Math.max(1, Math.ceil(next - now)) + (lateMs * ((wakeups * 7) % 10)) / 10;
      }
      const rate = (bytes * 8) / (now / 1000);
      assert.ok(Math.abs(rate / rateBps - 1) < 0.01, `${rateBps / 1e6} Mbit/s, late ${lateMs} ms: ${(rate / 1e6).toFixed(2)} Mbit/s`);
    }
  }
});

test('Pacer sends a lone small write at once, even right after a burst', () => {
  const p = pacerAt(900e6);
  burst(p, 0);
  const small = 300;
  // 5 µs later: under one quantum, but enough tokens for the small write's own packet.
  assert.ok(p.releaseTime(0.005, PACKET, BULK) > 0.005, 'bulk data waits for a quantum');
  assert.equal(p.releaseTime(0.005, small, small), 0.005, 'a small write does not');
  // The tail of application-limited data waits for its own tokens, not a whole quantum.
  const tail = 3 * PACKET;
  const at = p.releaseTime(0.01, PACKET, tail);
  assert.ok(at <= 0.01 + tail / 112_500 + 1e-9, `tail released at ${at}`);
});

test('Pacer bucket is bounded: a quantum plus 2 ms of rate, at most 512 KiB, never less than a quantum', () => {
  for (const rateBps of [1e6, 100e6, 900e6, 10e9]) {
    const p = pacerAt(rateBps);
    const { next } = burst(p, 0);
    p.releaseTime(next, PACKET); // back on time and nothing more to send: no wait outstanding
    const { sent } = burst(p, 10_000); // after a long idle period
    const expected = Math.max(Math.min(p.quantum + (rateBps / 8000) * 2, 512 * 1024), p.quantum);
    assert.equal(p.bucketBytes, expected);
    assert.equal(sent, Math.floor(expected / PACKET + 1e-9), `${rateBps / 1e6} Mbit/s`);
  }
});

test('Pacer: a sender woken later than its release time gets the tokens of the lateness, a quiet one does not', () => {
  const rate = 12_500; // bytes per ms at 100 Mbit/s
  const late = pacerAt(100e6);
  burst(late, 0);
  const { next } = burst(late, 0.01); // told to come back at `next`
  const caughtUp = burst(late, next + 6).sent * PACKET; // ... and woken 6 ms late
  // Everything that accrued since 0.01 (~7 ms of rate), beyond the quantum + 2 ms bucket.
  assert.ok(caughtUp >= (next + 6 - 0.01) * rate - 2 * PACKET, `late sender released ${caughtUp} bytes`);
  assert.ok(caughtUp > late.bucketBytes + 2 * PACKET, `more than the bucket (${late.bucketBytes})`);

  const quiet = pacerAt(100e6);
  burst(quiet, 0);
  const q = burst(quiet, 0.01);
  quiet.releaseTime(q.next, PACKET); // released on time, then nothing asked (a full window)
  const afterQuiet = burst(quiet, q.next + 6).sent * PACKET;
  assert.ok(afterQuiet <= quiet.bucketBytes, `after a quiet spell ${afterQuiet} bytes, bucket ${quiet.bucketBytes}`);

  // Lateness beyond 8 ms is not owed.
  const veryLate = pacerAt(100e6);
  burst(veryLate, 0);
  const v = burst(veryLate, 0.01);
  const flood = burst(veryLate, v.next + 100).sent * PACKET;
  assert.ok(flood <= veryLate.bucketBytes + 8 * rate + PACKET, `100 ms late: ${flood} bytes`);
});

/** Client datagrams of at least `minSize` bytes, grouped by the virtual time they left at. */
function burstsByTime(p: Pair, minSize: number): Map<number, number> {
  const bursts = new Map<number, number>();
  p.tap = (data, toServer) => {
    if (toServer && data.length >= minSize) bursts.set(p.now, (bursts.get(p.now) ?? 0) + 1);
  };
  return bursts;
}

test('Connection sends bulk data in quanta, not packet by packet as acks arrive', () => {
  // TestController paces at 400 Mbit/s: a quantum of 50 kB, ~35-40 full packets.
  const p = new Pair({ link: { delayMs: 5 } });
  p.connect();
  const id = p.client.openStream();
  const data = randomBytes(3, 4 * 1024 * 1024);
  let written = 0;
  const sink: Uint8Array[] = [];
  p.onClient = (q) => {
    if (written < data.length) written += q.client.write(id, data.subarray(written));
  };
  p.onServer = (q) => {
    for (const e of q.serverEvents.splice(0)) if (e.type === 'stream-readable') drain(q.server, e.streamId, sink);
  };
  const bursts = burstsByTime(p, 1000);
  const ok = p.runUntil(() => p.server.stats().streamBytesReceived === data.length, 10_000);
  assert.ok(ok, 'transfer finished');
  assert.equal(sha256(sink), sha256([data]));
  const sizes = [...bursts.values()];
  // Every burst but the last (the tail) carries at least a quantum's worth of full packets.
  const quantumPackets = Math.floor(50_000 / 1452);
  const small = sizes.slice(0, -1).filter((n) => n < quantumPackets);
  assert.ok(sizes.length > 50, `${sizes.length} bursts`);
  assert.deepEqual(small, [], `bursts smaller than ${quantumPackets} packets`);
});

test('Connection sends a small write at once right after a burst drained the pacer', () => {
  const p = new Pair({ link: { delayMs: 5 } });
  p.connect();
  const id = p.client.openStream();
  // 400 kB: more than the bucket (150 kB), so the pacer is empty when the last packet leaves.
  const bulk = randomBytes(4, 400_000);
  assert.equal(p.client.write(id, bulk), bulk.length);
  let lastDataAt = -1;
  p.tap = (data, toServer) => {
    if (toServer && data.length > 100) lastDataAt = p.now;
  };
  assert.ok(p.runUntil(() => p.client.stats().streamBytesSent === bulk.length, 10_000));
  assert.equal(lastDataAt, p.now, 'stopped right as the last bulk packet left');
  // 10 µs later (a later flush, so not the same burst).
  p.runUntil(() => false, p.now + 0.01);
  const start = p.now;
  let smallAt = -1;
  p.tap = (data, toServer) => {
    if (toServer && smallAt < 0 && data.length > 100) smallAt = p.now;
  };
  const id2 = p.client.openStream();
  assert.equal(p.client.write(id2, new Uint8Array(100).fill(7)), 100);
  p.service();
  p.runUntil(() => smallAt >= 0, start + 10);
  // Its own tokens accrue in ~3 µs at 400 Mbit/s; a quantum would take ~1 ms.
  assert.ok(smallAt >= 0 && smallAt - start < 0.05, `small write left after ${smallAt - start} ms`);
});
