// Test harness: a gateway pair on loopback (in-process), key files, log capture, and a
// target server speaking a small verification protocol.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import type { Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { generateStaticKeyPair, writeKeyFiles } from '../../src/crypto/keys.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import type { GatewayConfig } from '../../src/gateway/config.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { runGateway } from '../../src/gateway/run.ts';
import type { RunningGateway } from '../../src/gateway/run.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import type { ConnectionConfig } from '../../src/transport/types.ts';

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      for (const l of chunk.toString().split('\n')) if (l) this.lines.push(JSON.parse(l) as LogLine);
      cb();
    },
  });
  find(msg: string | RegExp, pred: (l: LogLine) => boolean = () => true): LogLine | undefined {
    return this.lines.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)) && pred(l));
  }
  async waitFor(msg: string | RegExp, pred: (l: LogLine) => boolean = () => true, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.find(msg, pred);
      if (l) return l;
      if (Date.now() > deadline) throw new Error(`no log line "${msg}" within ${timeoutMs} ms`);
      await sleep(20);
    }
  }
}

/** A loopback TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A loopback UDP port that was free a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

/** `longhaul gateway ARGS` as a child process (JSON logs); resolves once it has started. */
export function spawnGateway(args: string[]): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [CLI, 'gateway', '--log-json', '--control', 'off', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not handed to the caller, so nobody else would end it (and it keeps the test process alive).
      proc.kill('SIGKILL');
      reject(new Error(`gateway did not start: ${stderr}`));
    }, 15_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      // With --log-json a start-up error is a log line, not stderr.
      if (line.includes('"gateway failed to start"')) stderr += line;
      if (line.includes('"gateway started"')) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.once('close', (code) => reject(new Error(`gateway exited early (${code}): ${stderr}`)));
  });
}

/**
 * A UDP relay standing in for the WAN between A (which sends to `port`) and B (at `bPort`):
 * it can delay and drop datagrams at random (an emulated link), black-hole everything
 * (`drop`, an outage), or be pointed at another B (a restarted instance), after which
 * datagrams from the old one are discarded. Counts what each B sent.
 */
export interface UdpRelay {
  port: number;
  drop: boolean;
  /** Datagrams received from the current B since it became current. */
  fromB: number;
  /** Datagrams from A forwarded (or dropped) since the current B became current. */
  fromA: number;
  pointAt(bPort: number): void;
  close(): Promise<void>;
}

export interface RelayLink {
  /** One-way delay, each direction. */
  delayMs?: number;
  /** Random loss, each direction. */
  lossRate?: number;
}

export async function startUdpRelay(bPort: number, link: RelayLink = {}): Promise<UdpRelay> {
  const bind = async (): Promise<UdpSocket> => {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return s;
  };
  const aSide = await bind();
  const bSide = await bind();
  let aAddr: { port: number; address: string } | null = null;
  let target = bPort;
  let closed = false;
  const delayMs = link.delayMs ?? 0;
  const lossRate = link.lossRate ?? 0;
  // Delayed datagrams in arrival order (the delay is constant, so also in delivery order).
  const queue: Array<{ at: number; data: Buffer; toA: boolean }> = [];
  let head = 0;
  let timer: NodeJS.Timeout | null = null;
  const deliver = (data: Buffer, toA: boolean): void => {
    if (closed) return;
    if (toA) {
      if (aAddr) aSide.send(data, aAddr.port, aAddr.address);
    } else {
      bSide.send(data, target, '127.0.0.1');
    }
  };
  const flush = (): void => {
    timer = null;
    const now = performance.now();
    while (head < queue.length && queue[head]!.at <= now) {
      const e = queue[head++]!;
      deliver(e.data, e.toA);
    }
    if (head > 4096) {
      queue.splice(0, head);
      head = 0;
    }
    if (head < queue.length) timer = setTimeout(flush, Math.max(0, queue[head]!.at - now));
  };
  const forward = (data: Buffer, toA: boolean): void => {
    if (relay.drop || (lossRate > 0 && Math.random() < lossRate)) return;
    if (delayMs <= 0) {
      deliver(data, toA);
      return;
    }
    queue.push({ at: performance.now() + delayMs, data, toA });
    timer ??= setTimeout(flush, delayMs);
  };
  const relay: UdpRelay = {
    port: aSide.address().port,
    drop: false,
    fromB: 0,
    fromA: 0,
    pointAt(p: number) {
      target = p;
      relay.fromB = 0;
      relay.fromA = 0;
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await new Promise<void>((r) => aSide.close(() => r()));
      await new Promise<void>((r) => bSide.close(() => r()));
    },
  };
  aSide.on('message', (d, from) => {
    aAddr = { port: from.port, address: from.address };
    relay.fromA++;
    forward(d, false);
  });
  bSide.on('message', (d, from) => {
    if (from.port !== target) return;
    relay.fromB++;
    forward(d, true);
  });
  return relay;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Stops a child we started: SIGTERM, then SIGKILL if it has not exited within `graceMs`.
 * Resolves once it is gone: a child that does not exit on SIGTERM would otherwise keep the
 * test file's process alive (its ChildProcess handle is ref'd) after its tests passed.
 */
export function stopChild(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Hang diagnostics for a test file whose tests are over: its process should exit at once. If
 * it is still alive `afterMs` later, a Node diagnostic report (JavaScript stack, libuv handles,
 * resource usage) is written to the temp directory and its path printed with the active
 * resources and `extra()` (e.g. the gateways' driver counters), so a process that lingers or
 * spins says why. The timer is unref'd (it never keeps the process alive) and still fires
 * while the loop spins on setImmediate or I/O callbacks (as does NODE_OPTIONS=--report-on-signal
 * with SIGUSR2, which also runs on the loop). A synchronous busy loop starves both: see it with
 * `gdb -p PID -batch -ex bt` or `strace -c -p PID`.
 */
export function reportIfProcessLingers(label: string, afterMs = 30_000, extra: () => unknown = () => null): void {
  const started = process.cpuUsage();
  setTimeout(() => {
    const cpu = process.cpuUsage(started);
    let details: unknown;
    try {
      details = extra();
    } catch (err) {
      details = `extra() failed: ${(err as Error).message}`;
    }
    const file = process.report.writeReport(join(tmpdir(), `longhaul-linger-${label}-${process.pid}.json`));
    process.stderr.write(
      `${label}: process still alive ${afterMs} ms after its tests ended ` +
        `(CPU ${Math.round((cpu.user + cpu.system) / 1000)} ms meanwhile); active: ${JSON.stringify(process.getActiveResourcesInfo())}; ` +
        `details: ${JSON.stringify(details)}; diagnostic report: ${file}\n`,
    );
  }, afterMs).unref();
}

export interface KeySet {
  dir: string;
  aKey: string;
  aPub: string;
  bKey: string;
  bPub: string;
}

export function makeKeys(): KeySet {
  const dir = mkdtempSync(join(tmpdir(), 'lh-gw-keys-'));
  for (const n of ['a', 'b']) {
    const w = writeKeyFiles(dir, n, generateStaticKeyPair());
    if (!w.ok) throw new Error(w.error);
  }
  return { dir, aKey: join(dir, 'a.key'), aPub: join(dir, 'a.pub'), bKey: join(dir, 'b.key'), bPub: join(dir, 'b.pub') };
}

function config(raw: Record<string, unknown>, insecure: boolean): GatewayConfig {
  const r = validateConfig(raw, { insecurePlaintext: insecure });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

export interface PairOptions {
  target: string;
  allow: string[];
  insecure?: boolean;
  keys?: KeySet;
  compression?: 'auto' | 'lz4' | 'zstd' | 'none';
  limits?: Record<string, unknown>;
  mtu?: number;
  transport?: Partial<ConnectionConfig>;
  /** More config keys for A (e.g. its control interface), over the defaults above. */
  aConfig?: Record<string, unknown>;
}

export interface Pair {
  a: RunningGateway;
  b: RunningGateway;
  logA: LogCapture;
  logB: LogCapture;
  /** The tunnel's listening port at A. */
  port: number;
  keys: KeySet | null;
  stop(): Promise<void>;
}

export async function startB(o: PairOptions, keys: KeySet | null, log: LogCapture, wanPort = 0): Promise<RunningGateway> {
  const insecure = o.insecure ?? false;
  return runGateway(
    config(
      {
        name: 'b',
        wan: `127.0.0.1:${wanPort}`,
        control: false,
        logLevel: 'debug',
        allow: o.allow,
        compression: o.compression ?? 'auto',
        ...(keys ? { key: keys.bKey, peers: [{ name: 'a', publicKey: keys.aPub }] } : {}),
        ...(o.limits ? { limits: o.limits } : {}),
        ...(o.mtu ? { mtu: o.mtu } : {}),
      },
      insecure,
    ),
    { logger: createLogger({ level: 'debug', destination: log.stream }), transport: o.transport },
  );
}

export async function startA(o: PairOptions, keys: KeySet | null, bPort: number, log: LogCapture, listenPort = 0): Promise<RunningGateway> {
  const insecure = o.insecure ?? false;
  return runGateway(
    config(
      {
        name: 'a',
        wan: '127.0.0.1:0',
        control: false,
        logLevel: 'debug',
        compression: o.compression ?? 'auto',
        peers: [{ name: 'b', address: `127.0.0.1:${bPort}`, ...(keys ? { publicKey: keys.bPub } : {}) }],
        tunnels: [{ listen: `127.0.0.1:${listenPort}`, peer: 'b', target: o.target }],
        ...(keys ? { key: keys.aKey } : {}),
        ...(o.limits ? { limits: o.limits } : {}),
        ...(o.mtu ? { mtu: o.mtu } : {}),
        ...o.aConfig,
      },
      insecure,
    ),
    { logger: createLogger({ level: 'debug', destination: log.stream }), transport: o.transport },
  );
}

export async function startPair(o: PairOptions): Promise<Pair> {
  const keys = o.insecure ? null : (o.keys ?? makeKeys());
  const logA = new LogCapture();
  const logB = new LogCapture();
  const b = await startB(o, keys, logB);
  const a = await startA(o, keys, b.gateway.wanAddress.port, logA);
  return {
    a,
    b,
    logA,
    logB,
    keys,
    port: a.gateway.tunnels[0]!.address.port,
    async stop() {
      await a.stop(0);
      await b.stop(0);
    },
  };
}

// ---- verification protocol --------------------------------------------------------------
//
// Client -> target: u32 uploadSize, u32 downloadSize, then uploadSize random bytes, then FIN.
// Target -> client: downloadSize random bytes, then (after the client's FIN) sha256(download)
// and sha256(upload as received), then FIN. Both directions flow at once; half-close is used.

export interface TargetServer {
  server: Server;
  port: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startVerifyTarget(): Promise<TargetServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let header: Buffer | null = null;
    let pre = Buffer.alloc(0);
    const up = createHash('sha256');
    const down = createHash('sha256');
    let downloadDone = false;
    let uploadDone = false;
    const maybeFinish = (): void => {
      if (downloadDone && uploadDone && !s.destroyed) s.end(Buffer.concat([down.digest(), up.digest()]));
    };
    const sendDownload = (size: number): void => {
      let left = size;
      const pump = (): void => {
        while (left > 0) {
          const chunk = randomBytes(Math.min(left, 64 * 1024));
          left -= chunk.length;
          down.update(chunk);
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
        downloadDone = true;
        maybeFinish();
      };
      pump();
    };
    s.on('data', (d: Buffer) => {
      if (!header) {
        pre = Buffer.concat([pre, d]);
        if (pre.length < 8) return;
        header = pre.subarray(0, 8);
        const rest = pre.subarray(8);
        if (rest.length) up.update(rest);
        sendDownload(header.readUInt32BE(4));
        return;
      }
      up.update(d);
    });
    s.on('end', () => {
      uploadDone = true;
      maybeFinish();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    sockets,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface TransferResult {
  uploadOk: boolean;
  downloadOk: boolean;
  received: number;
}

/**
 * One verified exchange through the tunnel at `port`. Rejects on socket errors. The upload is
 * random (incompressible) unless `uploadChunk` makes it (n bytes, fresh buffer each call).
 */
export function verifiedExchange(
  port: number,
  uploadSize: number,
  downloadSize: number,
  paceMs = 0,
  uploadChunk: (n: number) => Buffer = randomBytes,
): Promise<TransferResult> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const upHash = createHash('sha256');
    const chunks: Buffer[] = [];
    let received = 0;
    s.on('error', reject);
    s.on('connect', () => {
      const header = Buffer.alloc(8);
      header.writeUInt32BE(uploadSize, 0);
      header.writeUInt32BE(downloadSize, 4);
      s.write(header);
      let left = uploadSize;
      const pump = (): void => {
        while (left > 0) {
          const chunk = uploadChunk(Math.min(left, 64 * 1024));
          left -= chunk.length;
          upHash.update(chunk);
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
          // Paced uploads (a slow client) send one chunk per paceMs.
          if (paceMs > 0 && left > 0) {
            setTimeout(pump, paceMs);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      received += d.length;
    });
    s.on('end', () => {
      const all = Buffer.concat(chunks);
      if (all.length !== downloadSize + 64) {
        reject(new Error(`received ${all.length} bytes, expected ${downloadSize + 64}`));
        return;
      }
      const body = all.subarray(0, downloadSize);
      const downHash = all.subarray(downloadSize, downloadSize + 32);
      const upSeen = all.subarray(downloadSize + 32);
      const downloadOk = createHash('sha256').update(body).digest().equals(downHash);
      const uploadOk = upHash.digest().equals(upSeen);
      s.destroy();
      resolve({ uploadOk, downloadOk, received });
    });
  });
}

/**
 * Sends `payload`, half-closes, reads the answer to EOF: 'ok' when it equals `expected` (by
 * default the payload: an echo), else what went wrong (an error code such as ECONNRESET).
 */
export function sendAndRead(port: number, payload: Buffer, expected: Buffer = payload): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('connect', () => s.end(payload));
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => {
      const all = Buffer.concat(got);
      s.destroy();
      resolve(all.equals(expected) ? 'ok' : `answer of ${all.length} bytes differs from the ${expected.length} expected`);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Log-like text that lz4 and zstd compress, so an encoder stays compressing. */
export function textChunk(n: number): Buffer {
  const words = ['migrate', 'page', 'dirty', 'round', 'vm-17', 'ok', 'bytes', 'copy', '\n'];
  const out = Buffer.alloc(n);
  let seed = n * 7919 + Math.floor(Math.random() * 1e6);
  for (let i = 0; i < n; ) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    i += out.write(`${words[seed % words.length]} ${seed % 1000} `, i);
  }
  return out;
}

/**
 * A gateway pair to a verifying target, paced at 100 Mbit/s: the pace keeps a backlog of several
 * MiB at gateway A while a client writes at loopback speed.
 */
export async function startPacedPair(compression: 'lz4' | 'zstd') {
  const target = await startVerifyTarget();
  const pair = await startPair({
    target: `127.0.0.1:${target.port}`,
    allow: ['127.0.0.1'],
    compression,
    transport: { rateController: () => new ModelBasedController({ maxRateBps: 100e6 }) },
  });
  return { target, pair };
}
