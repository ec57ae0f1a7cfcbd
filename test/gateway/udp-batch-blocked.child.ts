// Child of udp-batch-blocked.test.ts, run inside a network namespace whose loopback is slowed by a
// token-bucket qdisc: a sender with a tiny SO_SNDBUF then meets EAGAIN and partial sendmmsg calls.
// Prints one JSON line: which sequence numbers the link accepted, which arrived, and its counters.
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
while (received.length < tx.stats.datagramsOut || tx.stats.datagramsOut + (tx as NativeUdpLink).queue.dropped < COUNT) {
  if (Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 20));
}
await new Promise((r) => setTimeout(r, 100));
const q = (tx as NativeUdpLink).queue;
process.stdout.write(`${JSON.stringify({ accepted, received, corrupt, datagramsOut: tx.stats.datagramsOut, sendErrors: tx.stats.sendErrors, blocked: q.blocked, dropped: q.dropped, sendBufferBytes: tx.stats.sendBufferBytes })}\n`);
await tx.close();
await rx.close();
