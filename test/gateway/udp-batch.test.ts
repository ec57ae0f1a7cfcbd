// The batched WAN socket (lh_udp addon behind UdpLink): every datagram arrives intact and in
// order whatever the batch size and datagram size, IPv4 and IPv6, in both directions (the
// receiving side's connected per-peer socket included); sources are reported right; bind errors
// are Node-style; close gives back every descriptor and lets the process exit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadAddon } from '../../src/native/load.ts';
import { UdpLink } from '../../src/gateway/udp-link.ts';
import { NativeUdpLink } from '../../src/gateway/udp-batch.ts';
import type { Endpoint } from '../../src/gateway/address.ts';

const built = loadAddon('lh_udp').ok;
const skip = built ? false : 'lh_udp addon not built (make -C native)';

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

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; !cond() && waited < ms; waited += 10) await sleep(10);
}

for (const [family, segmentation] of [[4, true], [6, true], [4, false]] as const) {
  const host = family === 4 ? '127.0.0.1' : '::1';
  const maxDatagram = family === 4 ? 65507 : 65527; // loopback MTU 65536 minus IP and UDP headers
  const gso = segmentation ? 'GSO/GRO' : 'no GSO/GRO';

  test(`IPv${family}, ${gso}: batches of 1..1500 datagrams, sizes 1..${maxDatagram}, arrive intact and in order both ways`, { skip }, async () => {
    const a = await UdpLink.bind({ host, port: 0 }, { backend: 'native', segmentation });
    const b = await UdpLink.bind({ host, port: 0 }, { backend: 'native', segmentation });
    try {
      assert.equal(a.backend, 'native');
      const atB: Array<{ d: Buffer; from: RemoteInfo }> = [];
      const atA: Buffer[] = [];
      let replyTo: Endpoint | null = null;
      b.onDatagram((d, from) => {
        atB.push({ d, from: { ...from } });
        replyTo ??= { host: from.address, port: from.port };
      });
      a.onDatagram((d) => atA.push(d));
      const toB = b.address;
      const scratch = Buffer.alloc(maxDatagram);
      const cases: Array<[count: number, size: (i: number) => number]> = [
        [1, () => 1],
        [2, () => 1400],
        [7, (i) => 1 + i * 1000],
        [64, () => 1400],
        [65, (i) => 100 + (i % 13) * 100],
        [513, () => 1200],
        [1500, () => 1400], // more than one send queue's worth in one turn: flushed as it fills
        [24, (i) => (i % 2 ? maxDatagram : 9000)],
        [3, () => 0],
      ];
      let seq = 0;
      for (const [count, size] of cases) {
        const first = seq;
        atB.length = 0;
        for (let i = 0; i < count; i++, seq++) {
          // The buffer is reused at once: sendTo reports it copied.
          assert.equal(a.sendTo(fill(scratch, seq, size(i)), toB), true);
        }
        await until(() => atB.length >= count);
        assert.equal(atB.length, count, `batch of ${count}: all delivered`);
        for (let i = 0; i < count; i++) {
          assert.ok(intact(atB[i]!.d, first + i, size(i)), `batch of ${count}: datagram ${i} intact, in order (length ${atB[i]!.d.length})`);
          assert.equal(atB[i]!.from.port, a.address.port);
          assert.equal(atB[i]!.from.address, host);
          assert.equal(atB[i]!.from.family, family === 4 ? 'IPv4' : 'IPv6');
        }
        // Received datagrams keep their own bytes: nothing later overwrote them.
        assert.ok(intact(atB[0]!.d, first, size(0)));
      }
      // The reverse direction: b's connected socket to a, a's receive on its connected socket to b.
      const back = replyTo!;
      for (let i = 0; i < 300; i++) b.sendTo(fill(scratch, i, 1000 + i), back);
      await until(() => atA.length >= 300);
      assert.equal(atA.length, 300);
      atA.forEach((d, i) => assert.ok(intact(d, i, 1000 + i), `reply ${i} intact, in order`));
      assert.equal(a.stats.sendErrors, 0);
      assert.equal(a.stats.datagramsOut, seq);
      assert.equal(b.stats.datagramsIn, seq);
      // Batched: one sendmmsg per turn (or per full queue), recvmmsg takes several per call.
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

test('send (unconnected) and sendTo mix; release drops the peer path and a later sendTo builds a new one', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const got: number[] = [];
    b.onDatagram((d) => got.push(d.readUInt32BE(0)));
    const to = b.address;
    const d = Buffer.alloc(64);
    d.writeUInt32BE(1, 0);
    a.send(d, to.port, to.host);
    await until(() => got.length === 1);
    d.writeUInt32BE(2, 0);
    a.sendTo(d, to);
    await until(() => got.length === 2);
    a.release(to);
    d.writeUInt32BE(3, 0);
    a.sendTo(d, to); // a released path is rebuilt for the same (long-lived) address object
    await until(() => got.length === 3);
    assert.deepEqual(got, [1, 2, 3]);
  } finally {
    await a.close();
    await b.close();
  }
  // After close, sends are ignored rather than thrown.
  assert.doesNotThrow(() => a.sendTo(Buffer.alloc(8), b.address));
});

test('sendSpace/commitSend: datagrams written in place in the send queue go out intact, in order with sendTo ones; a full queue gives no space', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const got: Buffer[] = [];
    b.onDatagram((d) => got.push(d));
    const to = b.address;
    const scratch = Buffer.alloc(1500);
    for (let seq = 0; seq < 300; seq++) {
      const len = 4 + ((seq * 37) % 1400);
      if (seq % 3 === 0) {
        a.sendTo(fill(scratch, seq, len), to);
        continue;
      }
      const space = a.sendSpace(to, 1500);
      assert.ok(space, 'the native link offers space in its queue');
      fill(space.buf.subarray(space.offset), seq, len);
      a.commitSend(space, len);
    }
    await until(() => got.length === 300);
    assert.equal(got.length, 300);
    got.forEach((d, seq) => assert.ok(intact(d, seq, 4 + ((seq * 37) % 1400)), `datagram ${seq} intact`));
    const space = a.sendSpace(to, 100);
    assert.ok(space);
    assert.throws(() => a.commitSend({ buf: space.buf, offset: space.offset }, 10), /not the space/, 'only the space just given can be committed');
    assert.equal(a.sendSpace(to, 3 * 1024 * 1024), null, 'more than the queue holds: no space (sendTo counts the drop)');
  } finally {
    await a.close();
    await b.close();
  }
});

test('commitSend with a sealer: queued datagrams are sealed in runs just before they leave, never sent unsealed; a run that cannot be sealed is dropped', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const got: Buffer[] = [];
    b.onDatagram((d) => got.push(Buffer.from(d)));
    const to = b.address;
    const scratch = Buffer.alloc(1500);
    // A stand-in for the packet protection: flips every byte; refuses runs holding a datagram of length 13.
    const runs: number[] = [];
    const sealer = (buf: Buffer, lens: Int32Array, from: number, count: number, at: number): boolean => {
      runs.push(count);
      let off = at;
      for (let k = from; k < from + count; k++) off += lens[k]!;
      for (let k = from; k < from + count; k++) if (lens[k] === 13) return false;
      for (let i = at; i < off; i++) buf[i] = buf[i]! ^ 0xff;
      return true;
    };
    const lenOf = (seq: number) => (seq % 50 === 7 ? 13 : 4 + ((seq * 37) % 1400));
    const viaSendTo = (seq: number) => seq % 5 === 0;
    // 2500 in one turn: more than a send queue holds, so it also flushes (and seals) as it fills.
    for (let seq = 0; seq < 2500; seq++) {
      const len = lenOf(seq);
      if (viaSendTo(seq)) {
        a.sendTo(fill(scratch, seq, len), to);
        continue;
      }
      const space = a.sendSpace(to, 1500)!;
      fill(space.buf.subarray(space.offset), seq, len);
      a.commitSend(space, len, sealer);
    }
    const expected = [...Array(2500).keys()].filter((seq) => viaSendTo(seq) || lenOf(seq) !== 13);
    await until(() => got.length >= expected.length - 400); // minus the refused runs' other datagrams
    await sleep(100);
    assert.ok(runs.length > 1 && runs.some((n) => n > 1), `sealed in runs: ${runs.length} calls`);
    // Every datagram that arrived is either a sendTo one (as sent) or a sealed one (flipped); none unsealed.
    let i = 0;
    let dropped = 0;
    for (let seq = 0; seq < 2500 && i < got.length; seq++) {
      const len = lenOf(seq);
      const d = got[i]!;
      if (viaSendTo(seq)) {
        assert.ok(intact(d, seq, len), `sendTo datagram ${seq} intact and in order`);
        i++;
        continue;
      }
      const unflipped = Buffer.from(d.map((x) => x ^ 0xff));
      if (intact(unflipped, seq, len)) {
        i++;
        continue;
      }
      assert.ok(!intact(d, seq, len), `datagram ${seq} never leaves unsealed`);
      dropped++; // part of a refused run
    }
    assert.equal(i, got.length, 'every arrival accounted for, in order');
    assert.ok(dropped > 0 && (a as NativeUdpLink).batching.sendDropped === dropped, `dropped ${dropped}, counted ${(a as NativeUdpLink).batching.sendDropped}`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('transient handler: datagrams arrive as views of the link\'s receive buffer, intact during the call, without a copy each', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  try {
    const buffers = new Set<ArrayBufferLike>();
    let ok = 0;
    b.onDatagram((d, from) => {
      buffers.add(d.buffer);
      const seq = d.readUInt32BE(0);
      if (intact(d, seq, 100 + (seq % 900)) && from.port === a.address.port) ok++;
    }, { transient: true });
    const scratch = Buffer.alloc(1500);
    for (let seq = 0; seq < 1500; seq++) a.sendTo(fill(scratch, seq, 100 + (seq % 900)), b.address);
    await until(() => b.stats.datagramsIn >= 1500);
    assert.equal(ok, 1500, 'every datagram intact while its handler ran');
    // The link's one receive buffer, not a copy into a slab per ~256 KiB (~4 of them here).
    assert.equal(buffers.size, 1, `distinct buffers: ${buffers.size}`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('node:dgram offers no send space (callers use sendTo)', async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'dgram' });
  try {
    assert.equal(a.sendSpace({ host: '127.0.0.1', port: 9 }, 100), null);
  } finally {
    await a.close();
  }
});

test('a peer that goes away (ICMP port unreachable) and comes back on the same port is heard again', { skip }, async () => {
  const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  let b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
  const to = b.address; // one long-lived object: a's connected socket to it outlives b
  try {
    let atB = 0;
    b.onDatagram(() => atB++);
    a.sendTo(Buffer.alloc(100), to);
    await until(() => atB === 1);
    await b.close();
    // The connected socket now gets port-unreachable errors; they are counted, not fatal.
    for (let i = 0; i < 5; i++) {
      a.sendTo(Buffer.alloc(100), to);
      await sleep(20);
    }
    assert.ok(a.stats.sendErrors > 0, `errors counted (${a.stats.sendErrors})`);
    b = await UdpLink.bind(to, { backend: 'native' });
    const atA: number[] = [];
    a.onDatagram((d) => atA.push(d.length));
    let atB2 = 0;
    b.onDatagram(() => atB2++);
    b.sendTo(Buffer.alloc(77), a.address);
    await until(() => atA.length === 1);
    assert.deepEqual(atA, [77], 'the connected socket still receives after the errors');
    a.sendTo(Buffer.alloc(100), to);
    await until(() => atB2 === 1);
    assert.equal(atB2, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

for (const backend of ['native', 'dgram'] as const) {
  test(`${backend}: binding a port taken by a socket without SO_REUSEPORT fails with EADDRINUSE`, { skip: backend === 'native' ? skip : false }, async () => {
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

test('close gives back every descriptor it opened (main and per-peer sockets)', { skip }, async () => {
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const before = fds();
  for (let round = 0; round < 3; round++) {
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    let n = 0;
    b.onDatagram(() => n++);
    a.sendTo(Buffer.alloc(100), b.address);
    await until(() => n === 1);
    assert.equal(fds(), before + 3, 'two main sockets and one connected socket');
    await a.close();
    await b.close();
  }
  assert.equal(fds(), before);
});

test('a process whose links are closed exits on its own (no poll handle left on the loop)', { skip, timeout: 30_000 }, () => {
  const link = new URL('../../src/gateway/udp-link.ts', import.meta.url).href;
  const script = `
    import { UdpLink } from ${JSON.stringify(link)};
    const a = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    const b = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
    b.onDatagram(async () => { await a.close(); await b.close(); console.log('closed'); });
    a.sendTo(Buffer.alloc(10), b.address);`;
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
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, LONGHAUL_UDP: 'dgram' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'dgram');
});
