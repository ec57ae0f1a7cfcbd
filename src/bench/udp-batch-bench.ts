// UDP datapath micro-benchmark: datagrams per CPU-second of the process doing the work, node:dgram
// (one syscall and, on receive, one JS callback per datagram) against the lh_udp addon (sendmmsg /
// recvmmsg batches; UdpLink's receives with and without receive coalescing). 1400-byte datagrams over loopback; the peer runs in a child process so only
// the measured side's CPU is counted. On loopback the sender's CPU includes the kernel's delivery
// into the receiving socket (it runs in the sender's context), as it does for the gateway bench.
// Run: flock /tmp/longhaul-bench.lock npx node src/bench/udp-batch-bench.ts [--seconds 3]
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../native/load.ts';
import type { LhUdpAddon } from '../gateway/udp-batch.ts';
import { DatagramBatch, RECV_COALESCING_US, UdpLink } from '../gateway/udp-link.ts';
import { Option } from 'commander';
import { benchCommand, positiveIntArg, positiveNumberArg } from './args.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SIZE = 1400;
const args = benchCommand(
  'udp-batch-bench',
  'UDP datapath: datagrams per CPU-second, node:dgram against the lh_udp addon (sendmmsg/recvmmsg, GSO, receive coalescing); writes bench/results/udp-batch-<date>.{json,md}',
)
  .option('--seconds <s>', 'seconds per variant', positiveNumberArg, 3)
  // The child processes' roles (the bench starts them itself).
  .addOption(new Option('--role <role>').choices(['drain', 'blaster']).hideHelp())
  .addOption(new Option('--port <port>').argParser(positiveIntArg).hideHelp())
  .addOption(new Option('--gso').hideHelp())
  .parse()
  .opts<{ seconds: number; role?: 'drain' | 'blaster'; port?: number; gso?: boolean }>();
const SECONDS = args.seconds;
// Datagrams a sender hands over per event-loop turn (the gateway flushes up to 512 per turn).
const PER_TURN = 64;
const MAX_DATAGRAMS = 20_000_000; // bound on any loop, whatever the machine's speed

const load = loadAddon<LhUdpAddon>('lh_udp');
if (!load.ok) throw new Error(load.error);
const udp = load.addon;

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

// ---- child roles: a drain (for send variants) and a blaster (for receive variants) --------------

/** Receives with the addon as cheaply as possible; prints its port, then its count on "stop". */
function runDrain(): void {
  const s = udp.open(4, '127.0.0.1', 0, false, 32 << 20, 1 << 20);
  udp.setSegmentation(s, false); // a plain receiver, as for node:dgram: GSO runs are split on arrival
  const slot = 2048;
  const rb = Buffer.allocUnsafeSlow(slot * 64);
  const meta = new Int32Array(64 * udp.metaStride);
  let count = 0;
  udp.startPoll(s, rb, meta, slot, 64, (ev, n) => {
    if (ev === 1) count += n;
  });
  process.stdout.write(`${JSON.stringify({ port: udp.localAddress(s)[1] })}\n`);
  createInterface({ input: process.stdin }).on('line', () => {
    process.stdout.write(`${JSON.stringify({ count })}\n`);
    udp.close(s);
    process.exit(0);
  });
}

/** Sends batches of 64 to the given port for the given seconds, as fast as the kernel takes them (GSO: as runs). */
function runBlaster(port: number, seconds: number, gso: boolean): void {
  const s = udp.open(4, '127.0.0.1', 0, false, 0, 4 << 20);
  udp.setSegmentation(s, gso);
  udp.connect(s, '127.0.0.1', port);
  const buf = Buffer.alloc(SIZE * 64, 0x5a);
  const lens = new Int32Array(64).fill(SIZE);
  const end = Date.now() + seconds * 1000;
  let sent = 0;
  const turn = (): void => {
    for (let k = 0; k < 16; k++) {
      const r = udp.sendBatch(s, buf, lens, 0, 64, 0);
      if (r > 0) sent += r;
    }
    if (Date.now() < end && sent < MAX_DATAGRAMS) setImmediate(turn);
    else {
      process.stdout.write(`${JSON.stringify({ sent })}\n`);
      udp.close(s);
    }
  };
  turn();
}

function child(args: string[]): { proc: ChildProcess; lines: AsyncIterator<string> } {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  return { proc, lines };
}

async function nextJson<T>(it: AsyncIterator<string>): Promise<T> {
  const r = await it.next();
  if (r.done) throw new Error('child ended early');
  return JSON.parse(r.value) as T;
}

// ---- send variants ------------------------------------------------------------------------------

interface Result {
  variant: string;
  datagrams: number;
  cpuSeconds: number;
  wallSeconds: number;
  perCoreKpps: number;
  wallKpps: number;
  delivered?: number;
}

type Sender = { sendTurn(n: number): void; close(): Promise<void> | void };

async function measureSend(variant: string, make: (port: number) => Promise<Sender>): Promise<Result> {
  const drain = child(['--role', 'drain']);
  const { port } = await nextJson<{ port: number }>(drain.lines);
  const sender = await make(port);
  let sent = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await new Promise<void>((done) => {
    const turn = (): void => {
      sender.sendTurn(PER_TURN);
      sent += PER_TURN;
      if (performance.now() - t0 < SECONDS * 1000 && sent < MAX_DATAGRAMS) setImmediate(turn);
      else done();
    };
    turn();
  });
  const cpu = cpuSeconds(c0);
  const wall = (performance.now() - t0) / 1000;
  await sender.close();
  await new Promise((r) => setTimeout(r, 200));
  drain.proc.stdin!.write('stop\n');
  const { count } = await nextJson<{ count: number }>(drain.lines);
  return {
    variant,
    datagrams: sent,
    cpuSeconds: cpu,
    wallSeconds: wall,
    perCoreKpps: sent / cpu / 1000,
    wallKpps: sent / wall / 1000,
    delivered: count,
  };
}

const payload = Buffer.alloc(SIZE, 0xa5);

function dgramSender(connected: boolean) {
  return async (port: number): Promise<Sender> => {
    const s = createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    if (connected) await new Promise<void>((r) => s.connect(port, '127.0.0.1', () => r()));
    return {
      sendTurn(n) {
        for (let i = 0; i < n; i++) {
          if (connected) s.send(payload);
          else s.send(payload, port, '127.0.0.1');
        }
      },
      close: () => new Promise<void>((r) => s.close(() => r())),
    };
  };
}

function nativeSender(batch: number, gso = false) {
  return async (port: number): Promise<Sender> => {
    const s = udp.open(4, '127.0.0.1', 0, false, 0, 4 << 20);
    udp.connect(s, '127.0.0.1', port);
    udp.setSegmentation(s, gso);
    const buf = Buffer.allocUnsafeSlow(SIZE * batch);
    const lens = new Int32Array(batch);
    return {
      // Copies each datagram into the batch buffer, as the gateway's send queue does.
      sendTurn(n) {
        let k = 0;
        for (let i = 0; i < n; i++) {
          buf.set(payload, k * SIZE);
          lens[k++] = SIZE;
          if (k === batch) {
            udp.sendBatch(s, buf, lens, 0, k, 0);
            k = 0;
          }
        }
        if (k > 0) udp.sendBatch(s, buf, lens, 0, k, 0);
      },
      close: () => udp.close(s),
    };
  };
}

/** The gateway's path: UdpLink.sendBatch (each datagram copied into a batch, one sendBatch per turn or full batch). */
function linkSender(backend: 'native' | 'dgram', segmentation = true) {
  return async (port: number): Promise<Sender> => {
    const link = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend, segmentation });
    const to = { host: '127.0.0.1', port };
    const batch = new DatagramBatch();
    return {
      sendTurn(n) {
        for (let i = 0; i < n; i++) {
          if (!batch.fits(payload.length)) link.sendBatch(batch, to);
          batch.add(payload);
        }
        link.sendBatch(batch, to);
      },
      close: () => link.close(),
    };
  };
}

// ---- receive variants ---------------------------------------------------------------------------

type Receiver = { port: number; count(): number; close(): Promise<void> | void };

async function measureRecv(variant: string, make: () => Promise<Receiver>, gso = false): Promise<Result> {
  const r = await make();
  const blaster = child(['--role', 'blaster', '--port', String(r.port), '--seconds', String(SECONDS), ...(gso ? ['--gso'] : [])]);
  // Measure over the blaster's run: from the first datagram to its end report.
  while (r.count() === 0) await new Promise((res) => setTimeout(res, 1));
  const n0 = r.count();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const { sent } = await nextJson<{ sent: number }>(blaster.lines);
  const cpu = cpuSeconds(c0);
  const wall = (performance.now() - t0) / 1000;
  const got = r.count() - n0;
  await r.close();
  return {
    variant,
    datagrams: got,
    cpuSeconds: cpu,
    wallSeconds: wall,
    perCoreKpps: got / cpu / 1000,
    wallKpps: got / wall / 1000,
    delivered: sent,
  };
}

async function dgramReceiver(): Promise<Receiver> {
  const s = createSocket({ type: 'udp4', recvBufferSize: 32 << 20 });
  let count = 0;
  s.on('message', () => {
    count++;
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return { port: s.address().port, count: () => count, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** UdpLink's receive path; `recvCoalescingUs` undefined: the link's default (RECV_COALESCING_US). */
async function linkReceiver(backend: 'native' | 'dgram', segmentation = true, recvCoalescingUs?: number): Promise<Receiver> {
  const link = await UdpLink.bind({ host: '127.0.0.1', port: 0 }, { backend, segmentation, recvCoalescingUs });
  let count = 0;
  link.onDatagrams({
    datagram: () => {
      count++;
    },
    endOfBatch: () => {},
  });
  return { port: link.address.port, count: () => count, close: () => link.close() };
}

async function main(): Promise<void> {
  const results: Result[] = [];
  const report = (r: Result): void => {
    results.push(r);
    process.stdout.write(
      `${r.variant.padEnd(34)} ${r.perCoreKpps.toFixed(0).padStart(6)} kpps/core  ${r.wallKpps.toFixed(0).padStart(6)} kpps wall  (${r.datagrams} in ${r.wallSeconds.toFixed(1)} s, CPU ${r.cpuSeconds.toFixed(2)} s)\n`,
    );
  };
  report(await measureSend('send: dgram unconnected', dgramSender(false)));
  report(await measureSend('send: dgram connected', dgramSender(true)));
  report(await measureSend('send: sendmmsg batch 1', nativeSender(1)));
  report(await measureSend('send: sendmmsg batch 8', nativeSender(8)));
  report(await measureSend('send: sendmmsg batch 64', nativeSender(64)));
  report(await measureSend('send: sendmmsg batch 64 + GSO', nativeSender(64, true)));
  report(await measureSend('send: UdpLink.sendBatch dgram', linkSender('dgram')));
  report(await measureSend('send: UdpLink.sendBatch native, no GSO', linkSender('native', false)));
  report(await measureSend('send: UdpLink.sendBatch native + GSO', linkSender('native')));
  report(await measureRecv('recv: dgram message events', dgramReceiver));
  report(await measureRecv('recv: UdpLink dgram', () => linkReceiver('dgram')));
  report(await measureRecv('recv: UdpLink native, no coalescing', () => linkReceiver('native', false, 0)));
  report(await measureRecv(`recv: UdpLink native (recvmmsg 64, ${RECV_COALESCING_US} us pauses)`, () => linkReceiver('native', false)));
  report(await measureRecv('recv: UdpLink native, GSO sender + GRO', () => linkReceiver('native'), true));
  const date = new Date().toISOString();
  const machine = { nproc: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version };
  const outDir = join(ROOT, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  const stem = join(outDir, `udp-batch-${date.slice(0, 10)}`);
  writeFileSync(
    `${stem}.json`,
    `${JSON.stringify({ benchmark: 'udp-batch', date, machine, datagramBytes: SIZE, seconds: SECONDS, perTurn: PER_TURN, results }, null, 2)}\n`,
  );
  writeFileSync(
    `${stem}.md`,
    [
      `# UDP datapath micro-benchmark (${date})`,
      '',
      `Machine: ${machine.nproc} cores, ${machine.cpuModel}, Node ${machine.node}. ${SIZE}-byte datagrams on loopback, ${SECONDS} s per variant;`,
      `senders hand over ${PER_TURN} datagrams per event-loop turn. kpps/core = datagrams per CPU-second of the measured process`,
      '(send: includes the kernel delivering into the receiving socket, which runs in the sender on loopback; the drain is a child process).',
      '',
      '| variant | kpps per core | kpps wall | CPU s |',
      '|---|---|---|---|',
      ...results.map((r) => `| ${r.variant} | ${r.perCoreKpps.toFixed(0)} | ${r.wallKpps.toFixed(0)} | ${r.cpuSeconds.toFixed(2)} |`),
      '',
    ].join('\n'),
  );
  process.stdout.write(`results: ${stem}.json, ${stem}.md\n`);
}

if (args.role === 'drain') runDrain();
else if (args.role === 'blaster') runBlaster(args.port ?? 0, SECONDS, args.gso === true);
else await main();
