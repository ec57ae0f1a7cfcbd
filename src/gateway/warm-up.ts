// Compiles the datapath before the gateway listens: a gateway runs for months, but V8 compiles
// its hot functions only once they have run a few thousand times, and until then the bridge,
// the codec, the transport core, the security layer and the UDP link run interpreted or
// half-optimized. So at start the gateway carries WARM_UP_BYTES through a throwaway pair of
// gateways of its own, on loopback inside this process, with its own datapath settings
// (compression, cipher, MTU): TCP in, compressed, sealed, over UDP, opened, decompressed, TCP
// out. Nothing leaves the host; the pair's keys are made for the occasion and deleted.
//
// Measured in the lab (bench/results/datapath-2026-12-06.md): an earlier warm-up ran only the
// transport core, in the simulator; V8's compiler threads then still took ~20% of each gateway's
// CPU during the first transfer (recompiling what real sockets and packets reached first or
// differently), and a 256 MiB transfer cost the sending gateway ~5 CPU s/GiB against ~3.8 in a
// 512 MiB one.
//
// It runs twice, through two fresh pairs (§22). The end of a pass (the stream's FIN, the
// connection's and the association's close) writes fields that had held one value since they
// were made; V8 had compiled the hot path on the assumption that they never change, and throws
// that code away (writeStreamFrames, nextChunk, #transmit, the acknowledgement path: `--trace-deopt`,
// "dependent field type constness changed"). With one pass the first real transfer compiled it all
// again (158-160 compilations in the sending gateway during a 256 MiB transfer); the second pass
// compiles it after those changes, and its own end changes nothing more.
//
// The pair's datagrams go through a relay of the warm-up's own (the gateway's UDP link) that drops
// one in LOSS_ONE_IN, so that loss detection, retransmission and their acknowledgements are
// compiled too: on a lossy path (the lab's metro, 0.1%) the first transfer otherwise met them
// first (131-154 compilations in the sending gateway during a 256 MiB transfer, against 94-109).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateStaticKeyPair, writeKeyFiles } from '../crypto/keys.ts';
import type { ConnectionConfig } from '../transport/index.ts';
import { validateConfig, type GatewayConfig } from './config.ts';
import { Gateway } from './gateway.ts';
import { createLogger } from './logger.ts';
import type { Endpoint } from './address.ts';
import { DatagramBatch, UdpLink } from './udp-link.ts';

const WARM_UP_PASSES = 2;
// 0.2% of the datagrams each way, none before the first LOSS_AFTER (the handshake's are not
// retried before a timeout of a second).
const LOSS_ONE_IN = 500;
const LOSS_AFTER = 2000;
const WARM_UP_BYTES = 64 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;
// On loopback 64 MiB takes well under a second; a host too busy for that gets on with starting.
const WARM_UP_TIMEOUT_MS = 15_000;

export interface WarmUpResult {
  ms: number;
  /** Passes completed (WARM_UP_PASSES when ok). */
  passes: number;
  /** Datagrams the relay dropped, all passes (recovered: every byte still arrived when ok). */
  dropped: number;
  /** Every byte arrived, in order (anything else is a bug, or a host without loopback). */
  ok: boolean;
  error?: string;
}

/** Half incompressible, half text-like chunks, so the codec's raw and compressed paths both run. */
function chunks(): Buffer[] {
  const text = Buffer.alloc(CHUNK_BYTES);
  for (let i = 0; i < CHUNK_BYTES; ) i += text.write(`page ${i} dirty round ${i % 97} ok\n`, i);
  return [randomBytes(CHUNK_BYTES), text];
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

function pairConfig(config: GatewayConfig, raw: Record<string, unknown>): GatewayConfig {
  const r = validateConfig({
    wan: '127.0.0.1:0',
    control: false,
    logLevel: 'silent',
    compression: config.compression,
    cipher: config.cipher,
    mtu: config.mtu,
    ...raw,
  });
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}

/** Carries WARM_UP_BYTES through a lossy loopback gateway pair built like `config`, WARM_UP_PASSES times; never throws. */
export async function warmUpDatapath(config: GatewayConfig, transport?: Partial<ConnectionConfig>): Promise<WarmUpResult> {
  const started = performance.now();
  const dropped = { count: 0 };
  for (let pass = 1; pass <= WARM_UP_PASSES; pass++) {
    const error = await carryThroughPair(config, transport, dropped);
    if (error !== null) {
      const ms = performance.now() - started;
      return { ms, passes: pass - 1, dropped: dropped.count, ok: false, error: pass > 1 ? `pass ${pass}: ${error}` : error };
    }
  }
  return { ms: performance.now() - started, passes: WARM_UP_PASSES, dropped: dropped.count, ok: true };
}

interface Relay {
  address: Endpoint;
  close(): Promise<void>;
}

/**
 * Forwards datagrams between the pair's gateways, dropping one in LOSS_ONE_IN after the first
 * LOSS_AFTER. `b` is gateway B's WAN address; A is whoever else sends to the relay.
 */
async function startLossyRelay(b: Endpoint, dropped: { count: number }): Promise<Relay> {
  const link = await UdpLink.bind({ host: '127.0.0.1', port: 0 });
  let a: Endpoint | null = null;
  let seen = 0;
  const toA = new DatagramBatch();
  const toB = new DatagramBatch();
  const flush = (batch: DatagramBatch, to: Endpoint | null): void => {
    if (batch.count > 0 && to !== null) link.sendBatch(batch, to);
    batch.clear();
  };
  link.onDatagrams(
    {
      datagram(data, from) {
        const fromB = from.port === b.port;
        if (!fromB && a === null) a = { host: from.address, port: from.port };
        if (++seen > LOSS_AFTER && seen % LOSS_ONE_IN === 0) {
          dropped.count++;
          return;
        }
        const batch = fromB ? toA : toB;
        if (!batch.fits(data.length)) flush(batch, fromB ? a : b);
        batch.add(data);
      },
      endOfBatch() {
        flush(toB, b);
        flush(toA, a);
      },
    },
    { transient: true },
  );
  return { address: link.address, close: () => link.close() };
}

/** One pass: a fresh pair, WARM_UP_BYTES through it and the relay, the pair stopped. Null, or what went wrong. */
async function carryThroughPair(
  config: GatewayConfig,
  transport: Partial<ConnectionConfig> | undefined,
  dropped: { count: number },
): Promise<string | null> {
  const sink = createServer();
  const gateways: Gateway[] = [];
  let relay: Relay | undefined;
  let dir: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'longhaul-warm-up-'));
    for (const name of ['a', 'b']) {
      const w = writeKeyFiles(dir, name, generateStaticKeyPair());
      if (!w.ok) throw new Error(w.error);
    }
    let received = 0;
    const arrived = new Promise<void>((resolve, reject) => {
      sink.on('connection', (s) => {
        s.on('data', (d: Buffer) => {
          received += d.length;
        });
        s.on('end', () => {
          s.end();
          resolve();
        });
        s.on('error', reject);
      });
    });
    const sinkPort = await listen(sink);
    const logger = createLogger({ level: 'silent' });
    const b = await Gateway.start(
      pairConfig(config, {
        name: 'warm-up-b',
        key: join(dir, 'b.key'),
        peers: [{ name: 'a', publicKey: join(dir, 'a.pub') }],
        allow: ['127.0.0.1/32'],
      }),
      { logger, ...(transport ? { transport } : {}) },
    );
    gateways.push(b);
    relay = await startLossyRelay({ host: '127.0.0.1', port: b.wanAddress.port }, dropped);
    const a = await Gateway.start(
      pairConfig(config, {
        name: 'warm-up-a',
        key: join(dir, 'a.key'),
        peers: [{ name: 'b', address: `127.0.0.1:${relay.address.port}`, publicKey: join(dir, 'b.pub') }],
        tunnels: [{ listen: '127.0.0.1:0', peer: 'b', target: `127.0.0.1:${sinkPort}` }],
      }),
      { logger, ...(transport ? { transport } : {}) },
    );
    gateways.push(a);
    const client = connect({ host: '127.0.0.1', port: a.tunnels[0]!.address.port, noDelay: true });
    const sent = new Promise<void>((resolve, reject) => {
      client.on('error', reject);
      client.on('connect', () => {
        const data = chunks();
        let written = 0;
        const pump = (): void => {
          while (written < WARM_UP_BYTES) {
            const chunk = data[(written / CHUNK_BYTES) % 2]!;
            written += chunk.length;
            if (!client.write(chunk)) {
              client.once('drain', pump);
              return;
            }
          }
          client.end();
          resolve();
        };
        pump();
      });
      client.resume(); // the sink answers nothing; an unread socket must not stall
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not done within ${WARM_UP_TIMEOUT_MS} ms`)), WARM_UP_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all([sent, arrived]), timeout]);
    } finally {
      client.destroy();
    }
    return received === WARM_UP_BYTES ? null : `${received} of ${WARM_UP_BYTES} bytes arrived`;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    clearTimeout(timer);
    for (const g of gateways.reverse()) await g.stop(0, { quiet: true }).catch(() => {});
    await relay?.close().catch(() => {});
    sink.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}
