// Child of udp-batch-blocked.test.ts, run inside a network namespace whose loopback is slowed by a
// token-bucket qdisc: a sender with a tiny SO_SNDBUF then meets EAGAIN and partial sendmmsg calls.
// Prints one JSON line: which sequence numbers the link accepted, which arrived, and its counters.
// Then (loopback MTU 1500): runs of datagrams over the MTU, which GSO cannot carry.
import { UdpLink } from '../../src/gateway/udp-link.ts';
import { NativeUdpLink } from '../../src/gateway/udp-batch.ts';

const COUNT = 3000;
const PER_TURN = 300;
const SIZE = 1200;

const rx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const tx = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native', sendBufferBytes: 4096 });
const received: number[] = [];
let corrupt = 0;
rx.onDatagram((d) => {
  const seq = d.readUInt32BE(0);
  if (d.length !== SIZE || d.some((b, j) => j >= 4 && b !== ((seq + j) & 0xff))) corrupt++;
  received.push(seq);
});
const accepted: number[] = [];
const to = rx.address;
const buf = Buffer.alloc(SIZE);
for (let seq = 0; seq < COUNT; seq++) {
  for (let j = 4; j < SIZE; j++) buf[j] = (seq + j) & 0xff;
  buf.writeUInt32BE(seq, 0);
  const errors = tx.stats.sendErrors;
  tx.sendTo(buf, to);
  if (tx.stats.sendErrors === errors) accepted.push(seq);
  if (seq % PER_TURN === PER_TURN - 1) await new Promise((r) => setImmediate(r));
}
// Drain: the qdisc releases ~2 datagrams per writability event; bounded wait.
const deadline = Date.now() + 20_000;
while (received.length < tx.stats.datagramsOut || tx.stats.datagramsOut + (tx as NativeUdpLink).batching.sendDropped < COUNT) {
  if (Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 20));
}
await new Promise((r) => setTimeout(r, 100));
const q = (tx as NativeUdpLink).batching;
await tx.close();
await rx.close();

// Runs of equal datagrams bigger than the route's MTU (1500 here): the kernel refuses them as one
// GSO message, the socket falls back to one message per datagram (IP fragments) and loses none.
const rx2 = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const tx2 = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend: 'native' });
const big: number[] = [];
rx2.onDatagram((d) => {
  if (d.length === 2000 && d.every((b, j) => j < 4 || b === ((d.readUInt32BE(0) + j) & 0xff))) big.push(d.readUInt32BE(0));
});
const buf2 = Buffer.alloc(2000);
for (let seq = 0; seq < 200; seq++) {
  for (let j = 4; j < 2000; j++) buf2[j] = (seq + j) & 0xff;
  buf2.writeUInt32BE(seq, 0);
  tx2.sendTo(buf2, rx2.address);
}
for (let waited = 0; big.length < 200 && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
const oversize = { received: big, sendErrors: tx2.stats.sendErrors };
await tx2.close();
await rx2.close();
process.stdout.write(`${JSON.stringify({ accepted, received, corrupt, datagramsOut: tx.stats.datagramsOut, sendErrors: tx.stats.sendErrors, blocked: q.sendBlocked, dropped: q.sendDropped, sendBufferBytes: tx.stats.sendBufferBytes, oversize })}\n`);
