// The pure-TypeScript emulator engine: dgram sockets on both sides of the emulator
// namespace, two LinkDirections, and one pump that delivers what is due.
//
// Scheduling: arrivals only enqueue; a single pump per event-loop turn (setImmediate) delivers
// every due packet of both directions, then arms one timer for the next due time. Node's
// timers have 1 ms granularity and fire late, so the timer is armed 1 ms early and the last
// stretch is covered by setImmediate turns (which also poll the sockets), keeping delivery
// times within a fraction of a millisecond without one timer per packet.

import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { LinkDirection } from './emulator-link.ts';
import type { EmulatorConfig } from './emulator-config.ts';
import type { EmulatorReport } from './emulator-stats.ts';

/** Socket buffers: 1 Gbit/s for 30 ms is ~4 MB; the kernel caps at net.core.[rw]mem_max. */
const SOCKET_BUFFER_BYTES = 32 * 1024 * 1024;
const TIMER_EARLY_MS = 1;

export interface EmulatorHandle {
  /** Current counters (the native engine asks its process, hence async). */
  report(): Promise<EmulatorReport>;
  /** Stops relaying, closes the sockets, returns the final report. */
  stop(): Promise<EmulatorReport>;
  /** Resolves if the datapath dies on its own (never for the in-process TS engine). */
  failed: Promise<Error>;
}

interface Peer {
  address: string;
  port: number;
}

/**
 * Peers are always IPv4 literals: answer dgram's per-send address lookup synchronously
 * instead of through dns.lookup (a process.nextTick and a closure per datagram).
 */
const literalLookup = ((address: string, _family: unknown, callback: (err: null, address: string, family: number) => void): void => {
  callback(null, address, 4);
}) as unknown as dgram.SocketOptions['lookup'];

export async function startTsEmulator(config: EmulatorConfig): Promise<EmulatorHandle> {
  const startMs = performance.now();
  const startedAt = new Date().toISOString();
  const aToB = new LinkDirection<Buffer>(config.link, config.seed, startMs);
  const bToA = new LinkDirection<Buffer>(config.link, config.seed ^ 0x5bd1e995, startMs);
  const n = config.ports.length;
  const socketsA: dgram.Socket[] = [];
  const socketsB: dgram.Socket[] = [];
  // Where to send on each side: the default peer until a sender there is seen (so a client
  // with an ephemeral port, e.g. kcptun's, gets its replies).
  const peersA: Peer[] = config.ports.map((port) => ({ address: config.a.peer, port }));
  const peersB: Peer[] = config.ports.map((port) => ({ address: config.b.peer, port }));
  let sendErrors = 0;
  let stopped = false;

  const onSendError = (): void => {
    sendErrors++;
  };

  const deliverToB = (buf: Buffer, tag: number): void => {
    const p = peersB[tag]!;
    socketsB[tag]!.send(buf, p.port, p.address);
  };
  const deliverToA = (buf: Buffer, tag: number): void => {
    const p = peersA[tag]!;
    socketsA[tag]!.send(buf, p.port, p.address);
  };

  let immediate: NodeJS.Immediate | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;

  const pump = (): void => {
    immediate = undefined;
    if (stopped) return;
    const now = performance.now();
    aToB.deliverDue(now, deliverToB);
    bToA.deliverDue(now, deliverToA);
    const next = Math.min(aToB.nextDueAt(), bToA.nextDueAt());
    if (next === Infinity) return;
    if (next - now <= TIMER_EARLY_MS) {
      immediate = setImmediate(pump);
    } else if (next < timerAt) {
      if (timer !== undefined) clearTimeout(timer);
      timerAt = next;
      timer = setTimeout(onTimer, next - now - TIMER_EARLY_MS);
    }
  };
  const onTimer = (): void => {
    timer = undefined;
    timerAt = Infinity;
    if (immediate === undefined) pump();
  };
  const wake = (): void => {
    if (immediate === undefined) immediate = setImmediate(pump);
  };

  const bind = (sock: dgram.Socket, port: number, address: string): Promise<void> =>
    new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ port, address, exclusive: true }, () => {
        sock.off('error', reject);
        sock.on('error', onSendError);
        resolve();
      });
    });

  const options: dgram.SocketOptions = {
    type: 'udp4',
    recvBufferSize: SOCKET_BUFFER_BYTES,
    sendBufferSize: SOCKET_BUFFER_BYTES,
    lookup: literalLookup,
  };
  for (let i = 0; i < n; i++) {
    const tag = i;
    const sa = dgram.createSocket(options);
    const sb = dgram.createSocket(options);
    socketsA.push(sa);
    socketsB.push(sb);
    sa.on('message', (msg, rinfo) => {
      const p = peersA[tag]!;
      if (rinfo.port !== p.port || rinfo.address !== p.address) peersA[tag] = { address: rinfo.address, port: rinfo.port };
      aToB.offer(msg, tag, performance.now());
      wake();
    });
    sb.on('message', (msg, rinfo) => {
      const p = peersB[tag]!;
      if (rinfo.port !== p.port || rinfo.address !== p.address) peersB[tag] = { address: rinfo.address, port: rinfo.port };
      bToA.offer(msg, tag, performance.now());
      wake();
    });
  }
  try {
    for (let i = 0; i < n; i++) {
      await bind(socketsA[i]!, config.ports[i]!, config.a.listen);
      await bind(socketsB[i]!, config.ports[i]!, config.b.listen);
    }
  } catch (err) {
    for (const s of [...socketsA, ...socketsB]) s.close();
    throw err;
  }

  const snapshot = (): EmulatorReport => ({
    engine: 'ts',
    profile: config.profileName,
    link: config.link,
    ports: config.ports,
    pid: process.pid,
    startedAt,
    uptimeMs: Math.round(performance.now() - startMs),
    running: !stopped,
    aToB: { ...aToB.stats },
    bToA: { ...bToA.stats },
    sendErrors,
  });

  const stop = async (): Promise<EmulatorReport> => {
    if (!stopped) {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
      await Promise.all([...socketsA, ...socketsB].map((s) => new Promise<void>((r) => s.close(() => r()))));
    }
    return snapshot();
  };

  const report = async (): Promise<EmulatorReport> => {
    // What is already due goes out first (the pump may wait behind this turn), as in the
    // native engine: a snapshot never shows relayed packets as still in flight.
    if (!stopped) {
      const now = performance.now();
      aToB.deliverDue(now, deliverToB);
      bToA.deliverDue(now, deliverToA);
    }
    return snapshot();
  };

  return { report, stop, failed: new Promise<Error>(() => {}) };
}
