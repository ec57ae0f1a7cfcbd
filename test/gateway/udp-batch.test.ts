// The batched WAN socket (lh_udp addon behind UdpLink): every datagram of a sendBatch arrives
// intact and in order whatever the batch size and datagram size, IPv4 and IPv6, in both directions
// (the receiving side's connected per-peer socket included); sources are reported right; arrival
// times are the kernel's (a batch read late, or held back by receive coalescing, still says when
// each datagram came); receive coalescing gathers a paced stream into fewer, fuller batches yet
// hands the first datagram after a quiet spell over at once; what the kernel refuses (EAGAIN) is
// kept and sent in order once the socket is writable, and beyond the backlog's bound dropped and
// counted; bind errors are Node-style; close gives back every descriptor and lets the process exit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { loadAddon } from '../../src/native/load.ts';
import { DatagramBatch, UdpLink } from '../../src/gateway/udp-link.ts';
import { NativeUdpLink } from '../../src/gateway/udp-batch.ts';
import type { LhUdpAddon, NativeSocket } from '../../src/gateway/udp-batch.ts';
import type { Endpoint } from '../../src/gateway/address.ts';

const load = loadAddon<LhUdpAddon>('lh_udp');
const skip = load.ok ? false : 'lh_udp addon not built (make -C native)';

function fill(buf: Buffer, seq: number, len: number): Buffer {
  const d = buf.subarray(0, len);
  for (let j = 0; j < len; j++) d[j] = (seq * 31 + j * 7) & 0xff;
  if (len >= 4) d.writeUInt32BE(seq, 0);
  return d;
}

function intact(d: Buffer, seq: number, len: number): boolean {
  if (d.length !== len) return false;
  if (len >= 4 && d.readUInt32BE(0) !== seq) return false;
  for (let j = len >= 4 ? 4 : 0; j < len; j++) if (d[j] !== ((seq * 31 + j * 7) & 0xff)) return false;
  return true;
}

/** Writes datagram `seq` of `len` bytes in place at the end of the batch. */
function put(batch: DatagramBatch, seq: number, len: number): void {
  fill(batch.buf.subarray(batch.end), seq, len);
  batch.push(len);
}

// A datagram's arrival time is the addon's monotonic reading of when it read the batch minus the
// datagram's age against the kernel's timestamp (two clocks read back to back): nothing that
// delays the call into JavaScript moves it. What is left is the clocks' own granularity and the
// moment between the two readings.
const ARRIVAL_JITTER_MS = 0.2;

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; !cond() && waited < ms; waited += 10) await sleep(10);
}

/** A sink that keeps every datagram (the link gives each its own bytes unless transient). */
function collect(link: UdpLink): Buffer[] {
  const got: Buffer[] = [];
  link.onDatagrams({ datagram: (d) => got.push(d), endOfBatch: () => {} });
  return got;
}

for (const [family, segmentation] of [
  [4, true],
  [6, true],
  [4, false],
] as const) {
  const host = family === 4 ? '127.0.0.1' : '::1';
  const maxDatagram = family === 4 ? 65507 : 65527; // loopback MTU 65536 minus IP and UDP headers
  const gso = segmentation ? 'GSO/GRO' : 'no GSO/GRO';

  test(`IPv${family}, ${gso}: sendBatch of 1..1500 datagrams, sizes 0..${maxDatagram}, arrive intact and in order both ways`, {
    skip,
  }, async () => {
    const a = await UdpLink.bind({ host, port: 0 }, { backend: 'native', segmentation });
    const b = await UdpLink.bind({ host, port: 0 }, { backend: 'native', segmentation });
    try {
      assert.equal(a.backend, 'native');
      const atB: Array<{ d: Buffer; from: RemoteInfo }> = [];
      const atA: Buffer[] = [];
      let replyTo: Endpoint | null = null;
      b.onDatagrams({
        datagram(d, from) {
          atB.push({ d, from: { ...from } });
          replyTo ??= { host: from.address, port: from.port };
        },
        endOfBatch() {},
      });
      a.onDatagrams({ datagram: (d) => atA.push(d), endOfBatch: () => {} });
      const toB = b.address;
      // Room for the largest case (1500 full-size datagrams; 24 of up to 64 KiB).
      const batch = new DatagramBatch(4 << 20, 2048);
      const cases: Array<[count: number, size: (i: number) => number]> = [
        [1, () => 1],
        [2, () => 1400],
        [7, (i) => 1 + i * 1000],
        [64, () => 1400],
        [65, (i) => 100 + (i % 13) * 100],
        [513, () => 1200],
        [1500, () => 1400], // more than one sendmmsg takes (1024 messages without GSO): sent in several calls
        [24, (i) => (i % 2 ? maxDatagram : 9000)],
        [3, () => 0],
      ];
      let seq = 0;
      for (const [count, size] of cases) {
        const first = seq;
        atB.length = 0;
        for (let i = 0; i < count; i++, seq++) put(batch, seq, size(i));
        a.sendBatch(batch, toB);
        assert.equal(batch.count, 0, 'the batch is empty afterwards');
        assert.equal(batch.end, 0);
        batch.buf.fill(0xee, 0, 4 << 20); // reused at once: nothing sent later may come from it
        await until(() => atB.length >= count);
        assert.equal(atB.length, count, `batch of ${count}: all delivered`);
        for (let i = 0; i < count; i++) {
          assert.ok(
            intact(atB[i]!.d, first + i, size(i)),
            `batch of ${count}: datagram ${i} intact, in order (length ${atB[i]!.d.length})`,
          );
          assert.equal(atB[i]!.from.port, a.address.port);
          assert.equal(atB[i]!.from.address, host);
          assert.equal(atB[i]!.from.family, family === 4 ? 'IPv4' : 'IPv6');
          assert.equal(atB[i]!.from.size, size(i));
        }
        // Received datagrams keep their own bytes: nothing later overwrote them.
        assert.ok(intact(atB[0]!.d, first, size(0)));
      }
      // The reverse direction: b's connected socket to a, a's receive on its connected socket to b.
      const back = replyTo!;
      for (let i = 0; i < 300; i++) put(batch, i, 1000 + i);
      b.sendBatch(batch, back);
      assert.equal(batch.count, 0);
      await until(() => atA.length >= 300);
      assert.equal(atA.length, 300);
      for (const [i, d] of atA.entries()) assert.ok(intact(d, i, 1000 + i), `reply ${i} intact, in order`);
      assert.equal(a.stats.sendErrors, 0);
      assert.equal(a.stats.datagramsOut, seq);
      assert.equal(b.stats.datagramsIn, seq);
      // Batched: one sendmmsg per sendBatch (two for more than 1024 messages), recvmmsg takes several per call.
      assert.ok(a.stats.sendCalls <= 2 * cases.length, `send calls ${a.stats.sendCalls} for ${seq} datagrams`);
      assert.ok(b.stats.recvCalls < b.stats.datagramsIn / 4, `receive calls ${b.stats.recvCalls} for ${b.stats.datagramsIn} datagrams`);
      assert.ok(a.stats.recvBufferBytes > 0 && a.stats.sendBufferBytes > 0);
      // Runs of equal datagrams went as GSO messages and arrived coalesced (or not at all, when off).
      const coalesced = (b as NativeUdpLink).batching.recvCoalesced + (a as NativeUdpLink).batching.recvCoalesced;
      if (segmentation) assert.ok(coalesced > 0, `coalesced messages: ${coalesced}`);
      else assert.equal(coalesced, 0);
    } finally {
      await a.close();
      await b.close();
    }
  });
}

test('send (unconnected) and sendBatch mix; release drops the peer path and a later sendBatch builds a new one', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const batch = new DatagramBatch();
  try {
    const got: number[] = [];
    b.onDatagrams({ datagram: (d) => got.push(d.readUInt32BE(0)), endOfBatch: () => {} });
    const to = b.address;
    const d = Buffer.alloc(64);
    d.writeUInt32BE(1, 0);
    a.send(d, to.port, to.host);
    await until(() => got.length === 1);
    put(batch, 2, 64);
    put(batch, 3, 64);
    a.sendBatch(batch, to);
    await until(() => got.length === 3);
    a.release(to);
    put(batch, 4, 64);
    a.sendBatch(batch, to); // a released path is rebuilt for the same (long-lived) address object
    await until(() => got.length === 4);
    assert.deepEqual(got, [1, 2, 3, 4]);
    const empty = a.stats.sendCalls;
    a.sendBatch(batch, to);
    assert.equal(a.stats.sendCalls, empty, 'an empty batch makes no system call');
  } finally {
    await a.close();
    await b.close();
  }
  // After close, sends are ignored rather than thrown, and the batch is still emptied.
  put(batch, 5, 64);
  assert.doesNotThrow(() => a.sendBatch(batch, b.address));
  assert.equal(batch.count, 0);
  assert.doesNotThrow(() => a.send(Buffer.alloc(8), 9, '127.0.0.1'));
});

test("transient sink: datagrams arrive as views of the link's receive buffer, intact until endOfBatch, without a copy each", {
  skip,
}, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const buffers = new Set<ArrayBufferLike>();
    let ok = 0;
    let next = 0; // sent in order, so each view must hold the next sequence number
    let batches = 0;
    let bigBatches = 0;
    const pending: Buffer[] = [];
    b.onDatagrams(
      {
        datagram(d, from) {
          buffers.add(d.buffer);
          if (from.port === a.address.port) pending.push(d);
        },
        endOfBatch() {
          // The whole batch is still intact here: a sink may defer its work to endOfBatch.
          for (const d of pending) {
            if (intact(d, next, 100 + (next % 900))) ok++;
            next++;
          }
          batches++;
          if (pending.length > 1) bigBatches++;
          pending.length = 0;
        },
      },
      { transient: true },
    );
    const batch = new DatagramBatch();
    for (let seq = 0; seq < 1500; seq++) {
      if (!batch.fits(1000)) a.sendBatch(batch, b.address);
      put(batch, seq, 100 + (seq % 900));
    }
    a.sendBatch(batch, b.address);
    await until(() => b.stats.datagramsIn >= 1500);
    assert.equal(ok, 1500, 'every datagram intact (and no view overwritten by a later one) until its batch ended');
    assert.ok(bigBatches > 0, `batches of several datagrams (${batches} batches)`);
    // The link's one receive buffer, not a copy into a slab per ~256 KiB (~4 of them here).
    assert.equal(buffers.size, 1, `distinct buffers: ${buffers.size}`);
  } finally {
    await a.close();
    await b.close();
  }
});

test("arrival: a batch read late still says when each datagram came (the kernel's timestamp, on performance.now()'s clock)", {
  skip,
}, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: 0 });
  try {
    const got: Array<{ seq: number; arrival: number; handed: number }> = [];
    b.onDatagrams({
      datagram: (d, _from, arrival) => got.push({ seq: d.readUInt32BE(0), arrival, handed: performance.now() }),
      endOfBatch: () => {},
    });
    const batch = new DatagramBatch();
    // A first datagram, so the receive path is compiled and the peer path set up: the very first
    // batch a process hands over can look a few ms late (see ARRIVAL_JITTER_MS).
    batch.add(Buffer.alloc(4));
    a.sendBatch(batch, b.address);
    await until(() => got.length === 1);
    got.length = 0;
    const sent: Array<[before: number, after: number]> = [];
    // Three bursts 10 ms apart while the event loop is busy (no read can happen), then 30 ms more.
    const spin = (ms: number): void => {
      for (const end = performance.now() + ms; performance.now() < end; );
    };
    for (let burst = 0; burst < 3; burst++) {
      const before = performance.now();
      for (let i = 0; i < 10; i++) put(batch, burst * 10 + i, 1200);
      a.sendBatch(batch, b.address);
      sent.push([before, performance.now()]);
      spin(10);
    }
    spin(30);
    await until(() => got.length === 30);
    assert.equal(got.length, 30);
    got.forEach((g, i) => {
      const [before, after] = sent[Math.floor(i / 10)]!;
      assert.equal(g.seq, i);
      if (i > 0) assert.ok(g.arrival >= got[i - 1]!.arrival, `datagram ${i}: arrival before its predecessor's`);
      assert.ok(g.arrival >= before - 0.05, `datagram ${i}: arrival ${g.arrival.toFixed(3)} before its send ${before.toFixed(3)}`);
      // The kernel stamps a loopback datagram during the sending call; allow for clock reads.
      assert.ok(
        g.arrival <= after + ARRIVAL_JITTER_MS,
        `datagram ${i}: arrival ${(g.arrival - after).toFixed(3)} ms after its send returned`,
      );
      assert.ok(g.handed - g.arrival >= 29, `datagram ${i}: read ${(g.handed - g.arrival).toFixed(3)} ms after it came`);
    });
  } finally {
    await a.close();
    await b.close();
  }
});

// A sender in a worker thread, so the receiving loop stays free: `count` datagrams of `size` bytes
// to `port`, one every `gapUs` microseconds (busy-waiting), from a connected node:dgram socket
// (its sends go to the kernel within the call). Resolves with each datagram's send time, taken
// just before its send, on the worker's performance.now() clock.
function pacedSender(port: number, count: number, gapUs: number, size: number): Promise<Float64Array> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { createSocket } = require('node:dgram');
    const { performance } = require('node:perf_hooks');
    const { port, count, gapUs, size } = workerData;
    const s = createSocket('udp4');
    s.connect(port, '127.0.0.1', () => {
      const sent = new Float64Array(count);
      let next = performance.now();
      for (let i = 0; i < count; i++) {
        const d = Buffer.alloc(size);
        for (let j = 4; j < size; j++) d[j] = (i * 31 + j * 7) & 0xff;
        d.writeUInt32BE(i, 0);
        while (performance.now() < next);
        sent[i] = performance.now();
        s.send(d);
        next += gapUs / 1000;
      }
      s.close(() => parentPort.postMessage(sent));
    });`;
  const w = new Worker(code, { eval: true, workerData: { port, count, gapUs, size } });
  return new Promise((resolve, reject) => {
    w.once('message', (sent: Float64Array) => resolve(sent));
    w.once('error', reject);
  });
}

test('receive coalescing: a paced stream arrives in fewer, fuller batches, intact and in order, with its own arrival times', {
  skip,
  timeout: 30_000,
}, async () => {
  const COUNT = 200;
  const GAP_US = 100;
  const SIZE = 1200;
  const PAUSE_US = 2000;
  const rx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: PAUSE_US });
  const got: Array<{ d: Buffer; arrival: number; handed: number; batch: number }> = [];
  const batchSizes: number[] = [];
  const batchHanded: number[] = [];
  let sent: Float64Array = new Float64Array(0);
  try {
    rx.onDatagrams({
      datagram(d, _from, arrival) {
        const handed = performance.now();
        if (batchHanded.length === batchSizes.length) batchHanded.push(handed);
        got.push({ d, arrival, handed, batch: batchSizes.length });
      },
      endOfBatch: () => {
        batchSizes.push(got.length - batchSizes.reduce((n, k) => n + k, 0));
      },
    });
    sent = await pacedSender(rx.address.port, COUNT, GAP_US, SIZE);
    await until(() => got.length >= COUNT);
  } finally {
    await rx.close();
  }
  assert.equal(got.length, COUNT);
  for (const [i, g] of got.entries()) assert.ok(intact(g.d, i, SIZE), `datagram ${i} intact, in order`);
  const batches = batchSizes.length;
  // Read as they come, a datagram every 100 us is a batch or two each; paused 2 ms between reads, ~20 per batch.
  assert.ok(batches <= COUNT / 4, `coalescing 2 ms: ${batches} batches for ${COUNT} datagrams (${batchSizes.join(' ')})`);
  // The pause starts once a batch of at least 4 (COALESCE_MIN_DATAGRAMS) has been handed over, so
  // the next read comes a full pause later (a busy machine may batch by itself, but not with such
  // gaps every time). A full recvmmsg (64) is followed by another read at once, and smaller
  // batches start a pause only once 4 came within a pause length.
  for (let k = 1; k < batches; k++) {
    if (batchSizes[k - 1]! >= 64 || batchSizes[k - 1]! < 4) continue;
    const gap = batchHanded[k]! - batchHanded[k - 1]!;
    assert.ok(gap >= PAUSE_US / 1000 - 0.05, `batch ${k} handed over ${gap.toFixed(3)} ms after the one before (${batchSizes.join(' ')})`);
  }
  // Arrival times: the kernel's, not the read's. Within a batch they are spaced as the datagrams
  // were sent (the sender's clock; a read-time stamp would give the whole batch one time), across
  // batches they keep the send order, and none is after its handover.
  let pairs = 0;
  let spacedAsSent = 0;
  let longestHold = 0;
  got.forEach((g, i) => {
    assert.ok(g.arrival <= g.handed, `datagram ${i}: arrival ${g.arrival.toFixed(3)} after its handover ${g.handed.toFixed(3)}`);
    longestHold = Math.max(longestHold, g.handed - g.arrival);
    if (i === 0) return;
    const prev = got[i - 1]!;
    assert.ok(
      g.arrival >= prev.arrival - ARRIVAL_JITTER_MS,
      `datagram ${i}: arrival ${(g.arrival - prev.arrival).toFixed(3)} ms after its predecessor's`,
    );
    if (g.batch !== prev.batch) return;
    assert.ok(g.arrival >= prev.arrival, `datagram ${i}: arrival before its predecessor's in the same batch`);
    pairs++;
    if (Math.abs(g.arrival - prev.arrival - (sent[i]! - sent[i - 1]!)) < 0.05) spacedAsSent++;
  });
  assert.ok(pairs >= COUNT / 2, `${pairs} datagrams shared a batch with their predecessor`);
  assert.ok(
    spacedAsSent >= pairs * 0.9,
    `arrival spacing within a batch follows the send spacing for ${spacedAsSent} of ${pairs} datagrams`,
  );
  assert.ok(longestHold >= 1, `datagrams were held back by the pause (longest ${longestHold.toFixed(3)} ms) yet kept their arrival times`);
});

test('receive coalescing: datagrams that come slowly are handed over at once, a burst starts the pause, a quiet spell ends it; 0 turns it off', {
  skip,
  timeout: 30_000,
}, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    for (const us of [0, 100_000]) {
      const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: us });
      try {
        let handed = 0;
        let arrival = 0;
        let n = 0;
        b.onDatagrams({
          datagram: (_d, _from, at) => {
            handed = performance.now();
            arrival = at;
            n++;
          },
          endOfBatch: () => {},
        });
        const d = Buffer.alloc(100);
        /** Sends one datagram; ms until the sink has it. */
        const delay = async (): Promise<number> => {
          const want = n + 1;
          const t0 = performance.now();
          a.send(d, b.address.port, b.address.host);
          await until(() => n === want, 2000);
          assert.equal(n, want, 'delivered');
          assert.ok(arrival >= t0 - 0.05 && arrival <= handed, 'arrival between send and handover');
          return handed - t0;
        };
        const first = await delay(); // idle socket
        const second = await delay(); // one more: a slow stream (a sender's acks) is not held back
        // A burst: 8 datagrams at once are 4 or more within a pause length, so a pause starts.
        const burst = n + 8;
        for (let i = 0; i < 8; i++) a.send(d, b.address.port, b.address.host);
        await until(() => n === burst, 2000);
        const afterBurst = await delay(); // the pause is on (if any)
        await sleep(250); // a pause that brings nothing ends it: the socket is polled again
        const third = await delay();
        const label = `coalescing ${us} us: delays ${first.toFixed(1)}, ${second.toFixed(1)}, after a burst ${afterBurst.toFixed(1)}, ${third.toFixed(1)} ms`;
        assert.ok(first < 40, `${label}: an idle socket hands a datagram over at once`);
        assert.ok(second < 40, `${label}: so does one that gets a datagram now and then`);
        assert.ok(third < 40, `${label}: again after a quiet spell`);
        if (us === 0) assert.ok(afterBurst < 40, `${label}: no pause`);
        else assert.ok(afterBurst >= 80, `${label}: after a burst the next one waits for the pause`);
      } finally {
        await b.close();
      }
    }
  } finally {
    await a.close();
  }
});

test("a kernel that refuses (EAGAIN): what it refuses is kept and sent in order on writability; beyond the backlog's bound the rest is dropped and counted", {
  skip,
}, async () => {
  // The real addon behind a stand-in for a full socket buffer: sendBatch takes at most `budget`
  // more datagrams, then says EAGAIN; writability is reported when the test says so.
  const real = (load as { addon: LhUdpAddon }).addon;
  let budget = Infinity;
  const callbacks = new Map<NativeSocket, (event: number, count: number, readTimeMs: number) => void>();
  const wanted = new Map<NativeSocket, boolean>();
  const udp: LhUdpAddon = {
    ...real,
    sendBatch(s, buf, lens, first, count, byteOffset) {
      if (budget <= 0) return -real.EAGAIN;
      const r = real.sendBatch(s, buf, lens, first, Math.min(count, budget), byteOffset);
      if (r > 0) budget -= r;
      return r;
    },
    startPoll(s, recvBuf, meta, slotBytes, maxBatch, cb) {
      callbacks.set(s, cb);
      real.startPoll(s, recvBuf, meta, slotBytes, maxBatch, cb);
    },
    setWritableWanted(s, on) {
      wanted.set(s, on);
    },
  };
  const writable = (): void => {
    for (const [s, on] of wanted) if (on) callbacks.get(s)!(2, 0, 0);
  };
  const waiting = (): boolean => [...wanted.values()].some((on) => on);
  const tx = new NativeUdpLink(
    udp,
    { host: '127.0.0.1', port: 0 },
    { recv: 1 << 20, send: 8 << 20 },
    { segmentation: true, coalescingUs: 0 },
  );
  const rx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const got = collect(rx);
    const to = rx.address;
    const SIZE = 1000; // the backlog's bound is then its 2048 datagrams (udp-batch.ts BACKLOG_DATAGRAMS; 2 MiB would be 2097)
    const batch = new DatagramBatch();
    const sendSeqs = (first: number, end: number): void => {
      for (let seq = first; seq < end; seq++) put(batch, seq, SIZE);
      tx.sendBatch(batch, to);
      assert.equal(batch.count, 0);
      batch.buf.fill(0xee); // reused at once: what was kept is the link's own copy
    };
    // The kernel takes 10 of 50: the other 40 wait, and writability is asked for.
    budget = 10;
    sendSeqs(0, 50);
    assert.equal(tx.stats.datagramsOut, 10);
    assert.equal(tx.batching.sendBlocked, 1);
    assert.ok(waiting(), 'writability wanted');
    // While blocked, later batches queue behind (the kernel is not even asked) until the bound.
    const calls = tx.stats.sendCalls;
    for (let k = 0; k < 5; k++) sendSeqs(50 + k * 500, 50 + (k + 1) * 500);
    assert.equal(tx.stats.sendCalls, calls, 'no system call while blocked');
    assert.equal(tx.stats.datagramsOut, 10);
    // 40 + 2500 kept would be 2540: the newest 492 (2058..2549) do not fit.
    assert.equal(tx.batching.sendDropped, 492);
    assert.equal(tx.stats.sendErrors, 492);
    // Writable, but the kernel takes only 100 more: blocked again, the rest still waits.
    budget = 100;
    writable();
    assert.equal(tx.stats.datagramsOut, 110);
    assert.ok(waiting(), 'still blocked: writability still wanted');
    // A batch sent now goes behind what is left (the backlog has room again: 1948 + 50).
    sendSeqs(2550, 2600);
    assert.equal(tx.batching.sendDropped, 492, 'nothing more dropped');
    // Writable and the kernel takes everything: the backlog empties, writability is no longer wanted.
    budget = Infinity;
    writable();
    assert.equal(tx.stats.datagramsOut, 110 + 1948 + 50);
    assert.ok(!waiting(), 'writability no longer wanted');
    // Unblocked: the next batch goes straight to the kernel.
    sendSeqs(2600, 2610);
    assert.equal(tx.stats.datagramsOut, 2118);
    const expected = [...Array(2058).keys(), ...Array.from({ length: 60 }, (_, i) => 2550 + i)];
    await until(() => got.length >= expected.length);
    await sleep(50);
    assert.equal(got.length, expected.length, 'exactly the kept datagrams arrive');
    for (const [i, d] of got.entries())
      assert.ok(intact(d, expected[i]!, SIZE), `datagram ${i} is ${expected[i]}, intact and in order (got ${d.readUInt32BE(0)})`);
    assert.equal(tx.stats.sendErrors, tx.batching.sendDropped, 'every datagram not sent is counted');
    // A released peer: what waited for it is dropped with its socket; writability sends nothing.
    budget = 0;
    sendSeqs(3000, 3020);
    const out = tx.stats.datagramsOut;
    const dropped = tx.batching.sendDropped;
    const stale = [...callbacks.entries()].filter(([s]) => wanted.get(s));
    assert.equal(stale.length, 1);
    tx.release(to);
    assert.equal(tx.batching.sendDropped, dropped + 20, 'the 20 kept for the released peer are counted as dropped');
    assert.equal(tx.stats.sendErrors, tx.batching.sendDropped);
    budget = Infinity;
    stale[0]![1](2, 0, 0);
    await sleep(50);
    assert.equal(tx.stats.datagramsOut, out);
    assert.equal(got.length, expected.length);
  } finally {
    await tx.close();
    await rx.close();
  }
});

test('a peer that goes away (ICMP port unreachable) and comes back on the same port is heard again', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  let b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const to = b.address; // one long-lived object: a's connected socket to it outlives b
  const batch = new DatagramBatch();
  const one = (link: UdpLink, len: number, dest: Endpoint): void => {
    batch.add(Buffer.alloc(len));
    link.sendBatch(batch, dest);
  };
  try {
    const atB = collect(b);
    one(a, 100, to);
    await until(() => atB.length === 1);
    await b.close();
    // The connected socket now gets port-unreachable errors; they are counted, not fatal.
    for (let i = 0; i < 5; i++) {
      one(a, 100, to);
      await sleep(20);
    }
    assert.ok(a.stats.sendErrors > 0, `errors counted (${a.stats.sendErrors})`);
    b = await UdpLink.bind(to, { backend: 'native' });
    const atA = collect(a);
    const atB2 = collect(b);
    one(b, 77, a.address);
    await until(() => atA.length === 1);
    assert.deepEqual(
      atA.map((d) => d.length),
      [77],
      'the connected socket still receives after the errors',
    );
    one(a, 100, to);
    await until(() => atB2.length === 1);
    assert.equal(atB2.length, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

for (const backend of ['native', 'dgram'] as const) {
  test(`${backend}: binding a port taken by a socket without SO_REUSEPORT fails with EADDRINUSE`, {
    skip: backend === 'native' ? skip : false,
  }, async () => {
    const other = createSocket('udp4');
    await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
    const port = other.address().port;
    try {
      await assert.rejects(UdpLink.bind({ host: '127.0.0.1', port }, { backend }), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.syscall, 'bind');
        assert.match(err.message, new RegExp(`EADDRINUSE 127\\.0\\.0\\.1:${port}`));
        return true;
      });
    } finally {
      other.close();
    }
  });
}

test('native: a WAN host given by name binds to its IPv4 address, as node:dgram does', { skip }, async () => {
  const a = await UdpLink.bind({ host: 'localhost', port: 0 }, { backend: 'native' });
  try {
    assert.equal(a.address.host, '127.0.0.1');
  } finally {
    await a.close();
  }
});

test('close gives back every descriptor it opened (main and per-peer sockets, and their coalescing timers)', { skip }, async () => {
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const before = fds();
  for (const recvCoalescingUs of [0, 250, 0]) {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs });
    try {
      const got = collect(b);
      const batch = new DatagramBatch();
      batch.add(Buffer.alloc(100));
      a.sendBatch(batch, b.address);
      await until(() => got.length === 1);
      const perSocket = recvCoalescingUs > 0 ? 2 : 1; // a timerfd for the pause
      assert.equal(fds(), before + 3 * perSocket, `coalescing ${recvCoalescingUs} us: two main sockets and one connected socket`);
    } finally {
      await a.close();
      await b.close();
    }
  }
  assert.equal(fds(), before);
});

test('a process whose links are closed exits on its own (no poll or timer handle left on the loop)', { skip, timeout: 30_000 }, () => {
  const link = new URL('../../src/gateway/udp-link.ts', import.meta.url).href;
  // Closed from inside a receive callback, and closed while a coalescing pause is on.
  const script = `
    import { UdpLink, DatagramBatch } from ${JSON.stringify(link)};
    const batch = new DatagramBatch();
    for (const [recvCoalescingUs, later] of [[0, false], [100000, false], [100000, true]]) {
      const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs });
      const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs });
      await new Promise((done) => {
        const close = async () => { await a.close(); await b.close(); done(); };
        b.onDatagrams({ datagram() {}, endOfBatch() { if (later) setTimeout(close, 5); else close(); } });
        batch.add(Buffer.alloc(10));
        a.sendBatch(batch, b.address);
      });
    }
    console.log('closed');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, `the process exited by itself (stderr: ${r.stderr})`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'closed');
});

test('LONGHAUL_UDP=dgram selects the node:dgram backend', () => {
  const link = new URL('../../src/gateway/udp-link.ts', import.meta.url).href;
  const script = `
    import { UdpLink } from ${JSON.stringify(link)};
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 });
    console.log(a.backend);
    await a.close();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, LONGHAUL_UDP: 'dgram' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'dgram');
});

test('per-peer receive coalescing: setRecvCoalescing lengthens the pause on one peer path only, and is a no-op before the path exists', {
  skip,
  timeout: 30_000,
}, async () => {
  const PAUSE_US = 30_000;
  const BURST = 5;
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: 0 });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', recvCoalescingUs: 0 });
  const batch = new DatagramBatch();
  try {
    const toA = a.address;
    const toB = b.address;
    assert.equal(b.recvCoalescingUs, 0);
    b.setRecvCoalescing(toA, PAUSE_US); // no path to A yet: nothing to set
    // B sends to A first: that opens B's socket connected to A, which then receives A's datagrams.
    put(batch, 0, 64);
    b.sendBatch(batch, toA);
    let batches = 0;
    let got = 0;
    b.onDatagrams({ datagram: () => got++, endOfBatch: () => batches++ });
    a.onDatagrams({ datagram: () => {}, endOfBatch: () => {} });
    /** A sends `rounds` bursts of BURST datagrams ~2 ms apart; how many batches B read them in. */
    const burstsToB = async (rounds: number): Promise<number> => {
      const before = batches;
      const want = got + rounds * BURST;
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < BURST; i++) put(batch, r * BURST + i, 64);
        a.sendBatch(batch, toB);
        await sleep(2);
      }
      await until(() => got === want);
      assert.equal(got, want, 'every datagram arrived');
      return batches - before;
    };
    const unpaused = await burstsToB(40);
    b.setRecvCoalescing(toA, PAUSE_US);
    const paused = await burstsToB(40);
    // 40 bursts over >= 80 ms: read as they come, about a batch per burst; paused 30 ms after each
    // batch of 4 or more, a handful.
    assert.ok(unpaused >= 20, `no pause: ${unpaused} batches for 40 bursts`);
    assert.ok(paused <= 10, `30 ms pause on the path: ${paused} batches for 40 bursts`);
  } finally {
    await a.close();
    await b.close();
  }
});
