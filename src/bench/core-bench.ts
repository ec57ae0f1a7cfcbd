// Micro-benchmark of the transport core's CPU cost per packet: one bulk stream through a
// loss-free in-memory pair (no sockets, no crypto), sender and receiver timed separately.
// The gateway's budget is ~85k packets/s (1 Gbit/s of 1452-byte packets) on 2 cores, with
// sockets and packet protection on top, so the core must stay well under ~10 us/packet.
//
//   npm run bench:core [-- --packets N] [--json]
// Writes bench/results/core-<date>.json and .md (run under flock /tmp/longhaul-bench.lock).

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import {
  Connection,
  defaultConnectionConfig,
  fixedRateController,
  type ConnectionConfig,
  type ConnectionEvent,
  type Transmit,
} from '../transport/index.ts';
import { benchCommand, positiveIntArg, positiveNumberArg } from './args.ts';

interface Result {
  scenario: string;
  controller: string;
  dataPackets: number;
  ackPackets: number;
  payloadBytes: number;
  senderNsPerPacket: number;
  receiverNsPerPacket: number;
  senderPacketsPerSecPerCore: number;
  receiverPacketsPerSecPerCore: number;
  senderGbpsPerCore: number;
  wallSeconds: number;
  byteExact: boolean;
}

const args = benchCommand(
  'bench:core',
  "the transport core's CPU cost per packet: one bulk stream through an in-memory pair; writes bench/results/core-<date>.{json,md}",
)
  .option('--packets <n>', 'data packets per scenario', positiveIntArg, 300_000)
  .option('--max-seconds <s>', 'wall-clock bound per scenario', positiveNumberArg, 60)
  .option('--json', 'print the report as one JSON line (instead of one line per scenario)', false)
  .parse()
  .opts<{ packets: number; maxSeconds: number; json: boolean }>();

function run(scenario: string, targetPackets: number, cfg: Partial<ConnectionConfig>, maxWallMs: number): Result {
  let seed = 1;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const clock = (): number => performance.now();
  const client = new Connection({ role: 'client', config: defaultConnectionConfig({ random, ...cfg }), now: clock() });
  const server = new Connection({ role: 'server', config: defaultConnectionConfig({ random, ...cfg }), now: clock() });
  const chunk = new Uint8Array(256 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
  let streamId = -1;
  let written = 0;
  let received = 0;
  let mismatch = false;
  let dataPackets = 0;
  let ackPackets = 0;
  let senderNs = 0n;
  let receiverNs = 0n;
  const toServer: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const start = clock();
  while (dataPackets < targetPackets && clock() - start < maxWallMs) {
    const now = clock();
    // --- sender: application writes, timers, transmits
    const t0 = process.hrtime.bigint();
    if (client.isConnected && streamId < 0) streamId = client.openStream();
    if (streamId >= 0) {
      for (;;) {
        const off = written % chunk.length;
        const n = client.write(streamId, chunk.subarray(off));
        if (n === 0) break;
        written += n;
      }
    }
    const ct = client.nextTimeout();
    if (ct !== null && ct <= now) client.handleTimeout(now);
    let t: Transmit | null;
    while ((t = client.pollTransmit(now)) !== null) toServer.push(t.data);
    const t1 = process.hrtime.bigint();
    // --- receiver: each datagram is an event (as a UDP socket delivers them): in, read, poll out
    for (let i = 0; i < toServer.length; i++) {
      server.handleDatagram(toServer[i]!, now);
      let e: ConnectionEvent | null;
      while ((e = server.pollEvent()) !== null) {
        if (e.type === 'stream-readable') {
          let c: Uint8Array | null;
          while ((c = server.read(e.streamId)) !== null) {
            // Spot-check content without per-byte cost: first byte of each chunk.
            if (c.length > 0 && c[0] !== (((received % chunk.length) * 2654435761) >>> 24) % 256) mismatch = true;
            received += c.length;
          }
        }
      }
      while ((t = server.pollTransmit(now)) !== null) toClient.push(t.data);
    }
    dataPackets += toServer.length;
    toServer.length = 0;
    const st = server.nextTimeout();
    if (st !== null && st <= now) server.handleTimeout(now);
    while ((t = server.pollTransmit(now)) !== null) toClient.push(t.data);
    const t2 = process.hrtime.bigint();
    // --- sender: each ack is an event: in, then whatever may leave now
    for (let i = 0; i < toClient.length; i++) {
      client.handleDatagram(toClient[i]!, now);
      while (client.pollEvent() !== null) {
        /* stream-writable: the next round writes */
      }
      while ((t = client.pollTransmit(now)) !== null) toServer.push(t.data);
    }
    ackPackets += toClient.length;
    toClient.length = 0;
    const t3 = process.hrtime.bigint();
    senderNs += t1 - t0 + (t3 - t2);
    receiverNs += t2 - t1;
  }
  const wall = (clock() - start) / 1000;
  const sNs = Number(senderNs) / dataPackets;
  const rNs = Number(receiverNs) / dataPackets;
  const pkt = client.stats().packetSize;
  return {
    scenario,
    controller: client.extendedStats().controller,
    dataPackets,
    ackPackets,
    payloadBytes: received,
    senderNsPerPacket: Math.round(sNs),
    receiverNsPerPacket: Math.round(rNs),
    senderPacketsPerSecPerCore: Math.round(1e9 / sNs),
    receiverPacketsPerSecPerCore: Math.round(1e9 / rNs),
    senderGbpsPerCore: Number((((1e9 / sNs) * pkt * 8) / 1e9).toFixed(2)),
    wallSeconds: Number(wall.toFixed(2)),
    byteExact: !mismatch,
  };
}

const packets = args.packets;
const maxWallMs = args.maxSeconds * 1000;
// Warm-up so the JIT has compiled the hot paths before measuring.
run('warmup', 20_000, { rateController: fixedRateController({ rateBps: 100e9 }) }, 10_000);
const results: Result[] = [
  run('bulk, fixed-rate controller (core only)', packets, { rateController: fixedRateController({ rateBps: 100e9 }) }, maxWallMs),
  run('bulk, default model-based controller', packets, {}, maxWallMs),
];

const machine = {
  date: new Date().toISOString(),
  nproc: os.availableParallelism(),
  cpu: os.cpus()[0]?.model ?? 'unknown',
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
};
const report = { benchmark: 'core', machine, packetsTarget: packets, results };
if (args.json) {
  console.log(JSON.stringify(report));
} else {
  for (const r of results) console.log(JSON.stringify(r));
}
const day = machine.date.slice(0, 10);
mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/core-${day}.json`, `${JSON.stringify(report, null, 2)}\n`);
const md = [
  `# Transport core micro-benchmark (${day})`,
  '',
  `Machine: ${machine.nproc} cores, ${machine.cpu}, Node ${machine.node}, ${machine.platform}, load ${machine.loadavg.join(' ')}.`,
  'One bulk stream through a loss-free in-memory client/server pair; no sockets, no packet protection.',
  'CPU time per data packet, sender (writes, packetization, ack processing) and receiver',
  '(decode, reassembly, reads, acks) measured separately; "per core" = 1 s / that cost.',
  'The machine is shared: treat numbers as noisy lower bounds.',
  '',
  '| scenario | controller | data packets | acks | sender ns/pkt | receiver ns/pkt | sender pkt/s/core | receiver pkt/s/core | sender Gbit/s/core | byte-exact |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.scenario} | ${r.controller} | ${r.dataPackets} | ${r.ackPackets} | ${r.senderNsPerPacket} | ${r.receiverNsPerPacket} | ${r.senderPacketsPerSecPerCore} | ${r.receiverPacketsPerSecPerCore} | ${r.senderGbpsPerCore} | ${r.byteExact} |`,
  ),
  '',
].join('\n');
writeFileSync(`bench/results/core-${day}.md`, md);
