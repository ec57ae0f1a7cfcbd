// Child of udp-batch-blocked.test.ts, run inside a network namespace whose loopback is slowed by a
// token-bucket qdisc: a sender with a tiny SO_SNDBUF then meets EAGAIN and partial sendmmsg calls.
// Prints one JSON line: which sequence numbers the link accepted (sent at once or kept in its
// backlog), which arrived, and its counters. Then (loopback MTU 1500): runs of datagrams over the
// MTU, which GSO cannot carry.
import { DatagramBatch, UdpLink } from '../../src/gateway/udp-link.ts';
import type { NativeUdpLink } from '../../src/gateway/udp-batch.ts';

const COUNT = 3000;
const PER_BATCH = 300;
const SIZE = 1200;

const rx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const tx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', sendBufferBytes: 4096 });
const q = (tx as NativeUdpLink).batching;
const received: number[] = [];
let corrupt = 0;
rx.onDatagrams({
  datagram(d) {
    const seq = d.readUInt32BE(0);
    if (d.length !== SIZE || d.some((b, j) => j >= 4 && b !== ((seq + j) & 0xff))) corrupt++;
    received.push(seq);
  },
  endOfBatch() {},
});
const accepted: number[] = [];
// Datagrams accepted but not yet taken by the kernel when a drop happened: the backlog was that full.
let backlogAtDrop = Infinity;
const to = rx.address;
const batch = new DatagramBatch();
for (let first = 0; first < COUNT; first += PER_BATCH) {
  for (let seq = first; seq < first + PER_BATCH; seq++) {
    const d = batch.buf.subarray(batch.end, batch.end + SIZE);
    for (let j = 4; j < SIZE; j++) d[j] = (seq + j) & 0xff;
    d.writeUInt32BE(seq, 0);
    batch.push(SIZE);
  }
  const dropped = q.sendDropped;
  tx.sendBatch(batch, to);
  if (batch.count !== 0) throw new Error('sendBatch left datagrams in the batch');
  batch.buf.fill(0xee); // reused at once: what the link kept is its own copy
  // What does not fit the backlog is the batch's tail: the rest was sent or kept, in order.
  const lost = q.sendDropped - dropped;
  for (let seq = first; seq < first + PER_BATCH - lost; seq++) accepted.push(seq);
  if (lost > 0) backlogAtDrop = Math.min(backlogAtDrop, accepted.length - tx.stats.datagramsOut);
  await new Promise((r) => setImmediate(r));
}
// Drain: the qdisc releases ~2 datagrams per writability event; bounded wait.
const deadline = Date.now() + 20_000;
while (received.length < tx.stats.datagramsOut || tx.stats.datagramsOut + q.sendDropped < COUNT) {
  if (Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 20));
}
await new Promise((r) => setTimeout(r, 100));
await tx.close();
await rx.close();

// Runs of equal datagrams bigger than the route's MTU (1500 here): the kernel refuses them as one
// GSO message, the socket falls back to one message per datagram (IP fragments) and loses none.
const rx2 = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const tx2 = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const big: number[] = [];
rx2.onDatagrams({
  datagram(d) {
    if (d.length === 2000 && d.every((b, j) => j < 4 || b === ((d.readUInt32BE(0) + j) & 0xff))) big.push(d.readUInt32BE(0));
  },
  endOfBatch() {},
});
for (let seq = 0; seq < 200; seq++) {
  const d = batch.buf.subarray(batch.end, batch.end + 2000);
  for (let j = 4; j < 2000; j++) d[j] = (seq + j) & 0xff;
  d.writeUInt32BE(seq, 0);
  batch.push(2000);
}
tx2.sendBatch(batch, rx2.address);
for (let waited = 0; big.length < 200 && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
const oversize = { received: big, sendErrors: tx2.stats.sendErrors };
await tx2.close();
await rx2.close();
process.stdout.write(
  `${JSON.stringify({
    accepted,
    received,
    corrupt,
    datagramsOut: tx.stats.datagramsOut,
    sendErrors: tx.stats.sendErrors,
    blocked: q.sendBlocked,
    dropped: q.sendDropped,
    backlogAtDrop: Number.isFinite(backlogAtDrop) ? backlogAtDrop : null,
    sendBufferBytes: tx.stats.sendBufferBytes,
    oversize,
  })}\n`,
);
