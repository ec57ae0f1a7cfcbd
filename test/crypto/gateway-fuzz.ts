// Fuzz at a live gateway pair on loopback: A <-> relay <-> B, where the relay forwards the real
// WAN traffic and keeps a corpus of it (every message type, data packets sampled as they pass),
// while a separate socket throws mutated and random datagrams at both gateways' WAN ports and
// verified tunnel transfers run the whole time. Used by gateway-fuzz.test.ts (smaller count) and
// `npm run fuzz:gateway` (1M datagrams).
import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { FixedRateController } from '../../src/transport/congestion/fixed-rate.ts';
import { byteMutator } from './fuzz-harness.ts';
import { LogCapture, makeKeys, sleep, startA, startB, startVerifyTarget, verifiedExchange } from '../gateway/helpers.ts';

export interface GatewayFuzzOptions {
  datagrams: number;
  maxSeconds: number;
  transferBytes: number; // each direction, per exchange
  seed: number;
  /**
   * Fixed-rate pacing isolates this test from rate control: with the default model-based
   * controller, the event-loop contention of an in-process storm can collapse the pacing rate
   * (seen: ~100 bit/s that never recovers), which is a rate-control finding, not a parsing one.
   */
  fixedRateBps?: number;
}

export interface GatewayFuzzReport {
  seed: number;
  datagramsSent: number;
  seconds: number;
  exchangesCompleted: number;
  exchangesVerified: number;
  /** Datagrams the two gateways received and dropped (the kernel may drop some before that). */
  droppedByGateways: number;
  authFailures: number;
  cookiesSent: number;
  heapStartMB: number;
  heapMaxMB: number;
  rssMaxMB: number;
  corpusSize: number;
  aliveAfter: boolean;
  failures: string[];
  /** Warnings and errors the gateways logged (first 20), for diagnosing failures. */
  warnings: string[];
}

function bind(): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(s)));
}

const BATCH = 256;
const MAX_IN_FLIGHT = 1024;
/** An exchange that makes no progress this long is a failure, not a hang. */
const EXCHANGE_TIMEOUT_MS = 60_000;
const CORPUS_PER_TYPE = 32;

export async function gatewayFuzz(o: GatewayFuzzOptions): Promise<GatewayFuzzReport> {
  const target = await startVerifyTarget();
  const keys = makeKeys();
  const opts = {
    target: `127.0.0.1:${target.port}`,
    allow: ['127.0.0.1'],
    ...(o.fixedRateBps ? { transport: { rateController: () => new FixedRateController({ rateBps: o.fixedRateBps! }) } } : {}),
  };
  const logA = new LogCapture();
  const logB = new LogCapture();
  const b = await startB(opts, keys, logB);
  const relay = await bind();
  const a = await startA(opts, keys, relay.address().port, logA);
  const aWan = a.gateway.wanAddress;
  const bWan = b.gateway.wanAddress;
  const tunnelPort = a.gateway.tunnels[0]!.address.port;

  // Corpus per direction: [towards A, towards B], bucketed by message type.
  const corpus: Uint8Array[][] = [[], []];
  const perType = [new Map<number, number>(), new Map<number, number>()];
  const m = byteMutator(o.seed);
  relay.on('message', (msg, rinfo) => {
    const towardsA = rinfo.port === bWan.port ? 0 : 1;
    relay.send(msg, towardsA === 0 ? aWan.port : bWan.port, '127.0.0.1');
    const list = corpus[towardsA]!;
    const counts = perType[towardsA]!;
    const n = counts.get(msg[0]!) ?? 0;
    if (n < CORPUS_PER_TYPE) {
      counts.set(msg[0]!, n + 1);
      list.push(Uint8Array.from(msg));
    } else if (m.next(64) === 0 && list.length) {
      list[m.next(list.length)] = Uint8Array.from(msg); // keep sampling fresh data packets
    }
  });

  // Transfers run back to back for the whole fuzz run.
  const started = performance.now();
  let fuzzing = true;
  let completed = 0;
  let verified = 0;
  const failures: string[] = [];
  const transfers = (async () => {
    while (fuzzing) {
      try {
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`exchange stalled for ${EXCHANGE_TIMEOUT_MS} ms`)), EXCHANGE_TIMEOUT_MS).unref();
        });
        const r = await Promise.race([verifiedExchange(tunnelPort, o.transferBytes, o.transferBytes), stalled]).finally(() =>
          clearTimeout(timer),
        );
        if (r.uploadOk && r.downloadOk) verified++;
      } catch (err) {
        failures.push(`${((performance.now() - started) / 1000).toFixed(1)} s: ${(err as Error).message}`);
      }
      completed++;
    }
  })();

  const heapStart = process.memoryUsage().heapUsed;
  let heapMax = heapStart;
  let rssMax = process.memoryUsage().rss;
  const fuzzer = await bind();
  const sa0 = a.gateway.status().crypto.endpoint!;
  const sb0 = b.gateway.status().crypto.endpoint!;
  const dropped = (s: typeof sa0) =>
    s.malformed +
    s.unknownIndex +
    s.authFailures +
    s.replays +
    s.tooOld +
    s.invalidMac1 +
    s.expiredKey +
    s.handshakesFailed +
    s.cookiesSent +
    s.rateLimited +
    s.halfOpenRejected;
  const processed = () =>
    dropped(a.gateway.status().crypto.endpoint!) + dropped(b.gateway.status().crypto.endpoint!) - dropped(sa0) - dropped(sb0);
  let sent = 0;
  const fuzzStarted = performance.now();
  const debug = process.env.FUZZ_DEBUG
    ? setInterval(() => {
        const brief = (g: typeof a) => {
          const st = g.gateway.status();
          const c = st.crypto.endpoint!;
          return {
            sealed: c.packetsSealed,
            opened: c.packetsOpened,
            sessions: c.sessions,
            hs: c.handshakesCompleted,
            init: c.handshakeInitiationsSent,
            assoc: JSON.stringify(st.associations).slice(0, 600),
          };
        };
        console.error({ sent, completed, fuzzing }, brief(a), brief(b));
      }, 3000)
    : null;
  while (corpus[0]!.length === 0 || corpus[1]!.length === 0) await sleep(10); // wait for real traffic
  while (sent < o.datagrams && performance.now() - started < o.maxSeconds * 1000) {
    let pending = 0;
    let done!: () => void;
    const batchDone = new Promise<void>((r) => {
      done = r;
    });
    for (let i = 0; i < BATCH && sent < o.datagrams; i++, sent++) {
      const dir = m.next(2);
      const list = corpus[dir]!;
      const d = m.mutate(list[m.next(list.length)]!, list[m.next(list.length)]!);
      pending++;
      fuzzer.send(d, dir === 0 ? aWan.port : bWan.port, '127.0.0.1', () => {
        if (--pending === 0) done();
      });
    }
    await batchDone;
    // Pace to what the gateways absorb: this is a malformed-input test, not a bandwidth flood
    // (a flood beyond socket capacity is loss, which says nothing about parsing).
    const waitUntil = performance.now() + 50;
    do await new Promise((r) => setImmediate(r));
    while (sent - processed() > MAX_IN_FLIGHT && performance.now() < waitUntil);
    if (sent % (BATCH * 64) < BATCH) {
      const mem = process.memoryUsage();
      heapMax = Math.max(heapMax, mem.heapUsed);
      rssMax = Math.max(rssMax, mem.rss);
    }
  }
  const seconds = (performance.now() - fuzzStarted) / 1000;
  fuzzing = false;
  await transfers;
  // The association is still usable after the storm.
  const after = await Promise.race([
    verifiedExchange(tunnelPort, 64 * 1024, 64 * 1024),
    new Promise<{ uploadOk: boolean; downloadOk: boolean }>((r) =>
      setTimeout(r, EXCHANGE_TIMEOUT_MS, { uploadOk: false, downloadOk: false }).unref(),
    ),
  ]).catch(() => ({ uploadOk: false, downloadOk: false }));

  const sa = a.gateway.status().crypto.endpoint!;
  const sb = b.gateway.status().crypto.endpoint!;
  const report: GatewayFuzzReport = {
    seed: o.seed,
    datagramsSent: sent,
    seconds: +seconds.toFixed(2),
    exchangesCompleted: completed,
    exchangesVerified: verified,
    droppedByGateways: processed(),
    authFailures: sa.authFailures + sb.authFailures,
    cookiesSent: sa.cookiesSent + sb.cookiesSent,
    heapStartMB: +(heapStart / 2 ** 20).toFixed(1),
    heapMaxMB: +(heapMax / 2 ** 20).toFixed(1),
    rssMaxMB: +(rssMax / 2 ** 20).toFixed(1),
    corpusSize: corpus[0]!.length + corpus[1]!.length,
    aliveAfter: after.uploadOk && after.downloadOk,
    failures,
    warnings: [...logA.lines.map((l) => ({ ...l, gw: 'a' })), ...logB.lines.map((l) => ({ ...l, gw: 'b' }))]
      .filter((l) => l.level >= 40)
      .slice(0, 20)
      .map((l) => JSON.stringify(l)),
  };
  if (debug) clearInterval(debug);
  fuzzer.close();
  await a.stop(0);
  await b.stop(0);
  relay.close();
  await target.close();
  return report;
}
