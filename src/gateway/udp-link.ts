// The WAN socket, with large kernel buffers. Thin on purpose: it hands received datagrams up in
// batches with their source and arrival time, and sends the finished batches it is given; it never
// calls back into the layers above to build or seal anything. Two backends with one contract: the
// lh_udp addon (src/gateway/udp-batch.ts: sendmmsg/recvmmsg, one syscall and one JS call per
// batch) when it is built, else node:dgram (one of each per datagram).
import { newUdpLinkStats } from './udp-link-stats.ts';
import { createSocket } from 'node:dgram';
import type { Socket, RemoteInfo } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { loadAddon } from '../native/load.ts';
import type { Endpoint } from './address.ts';
import { NativeUdpLink } from './udp-batch.ts';
import type { LhUdpAddon } from './udp-batch.ts';

// 16 MiB: ~11k full-size datagrams, i.e. ~130 ms at 1 Gbit/s, so a busy event loop (GC
// pause, a burst of TCP work) does not overflow the kernel queue. The kernel may clamp
// this to net.core.rmem_max; the effective size is reported in status.
export const SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;

// Receive coalescing (native backend): after each receive batch the socket is left unread this
// long, then everything that arrived meanwhile is taken in one batch. Datagrams from a paced
// sender (or a WAN emulator) arrive one by one, ~12 us apart at 1 Gbit/s; read as they come,
// every wake-up, recvmmsg and JavaScript call carries one or two of them, and on this project's
// virtual machines a system call costs ~1.2 us and a wake-up ~15 us of CPU. Measured in the lab
// (bench/results/datapath-2026-12-05.md): the kernel's receive cost per datagram falls from
// 3.5 us (read as they come) to 1.2 us with 250 us pauses and 0.65-0.91 us with 1 ms; a gateway pair
// moving 1 GiB at 1 Gbit/s used ~20% less CPU at 1 ms than at 250 us. Arrival times stay exact
// (the kernel's timestamps), so the transport's RTT and rate samples do not see the pause; acks
// leave up to this much later, which the rate controller's ack-aggregation allowance covers.
// Only datagrams that come fast are held back (lh_udp.c COALESCE_MIN_DATAGRAMS: 4 per pause
// length): a sender's acks, a few hundred a second, are read as they arrive.
export const RECV_COALESCING_US = 1000;
/** The addon's upper bound for the pause (100 ms): anything longer is taken as that. */
const MAX_RECV_COALESCING_US = 100_000;

// A peer whose datagrams come slowly (a 100 Mbit/s path: ~8 per millisecond) is coalesced for
// longer, so that a batch holds ~32 of them: as long as that takes, at most an eighth of the
// path's minimum RTT and at most 3 ms. The pause is also how often the receiver acknowledges (one
// ack per batch), so the sender still hears from it 8 times per round trip, which its rate
// estimate needs (draft-ietf-quic-ack-frequency: no less often than every RTT/4). What it saves:
// each ack is a system call whose cost on the lab's VMs includes waking the process that receives
// it, and so is each batch read and each write of what it delivered. At 1 Gbit/s a 1 ms batch
// holds ~80 datagrams already, and a longer pause only delays acks: a first version that held
// every peer for RTT/8 (1.5 ms on metro, data and acks alike) lost ~4% of goodput there.
// Measured in bench/results/datapath-2026-12-06.md §14.
const PATH_COALESCING_RTT_SHARE = 1 / 8;
const PATH_COALESCING_BATCH_DATAGRAMS = 32;
const MAX_PATH_COALESCING_US = 3000;
// Only a steady stream of data is held longer: 4 or more datagrams per configured pause (lh_udp.c's
// own bar for pausing at all). A sender's acks, a few hundred a second, are read as they come, and
// an idle peer keeps the configured pause: its next transfer may start at 1 Gbit/s.
const PATH_COALESCING_MIN_DATAGRAMS = 4;

/**
 * The receive coalescing pause for one peer's datagrams, in microseconds: `baseUs` (the link's
 * configured pause; 0 turns coalescing off), or longer while the peer's datagrams arrive too slowly
 * (`datagramsPerSecond`, over the last second) to fill a batch in it: up to an eighth of `minRttMs`
 * and MAX_PATH_COALESCING_US. A peer sending fewer than PATH_COALESCING_MIN_DATAGRAMS per `baseUs`
 * (acks, or idle: the next transfer may start at any rate) and an RTT not measured yet (0) get
 * `baseUs`.
 */
export function pathCoalescingUs(baseUs: number, minRttMs: number, datagramsPerSecond: number): number {
  if (baseUs <= 0 || !(minRttMs > 0) || !Number.isFinite(minRttMs)) return baseUs;
  if (!(datagramsPerSecond * baseUs >= PATH_COALESCING_MIN_DATAGRAMS * 1e6)) return baseUs;
  const fillUs = (PATH_COALESCING_BATCH_DATAGRAMS * 1e6) / datagramsPerSecond;
  const wanted = Math.min(fillUs, minRttMs * 1000 * PATH_COALESCING_RTT_SHARE, MAX_PATH_COALESCING_US);
  return Math.max(baseUs, Math.round(wanted));
}

/**
 * Where received datagrams go. `datagram` is called for each datagram of a receive batch, then
 * `endOfBatch` once: a consumer that defers work (opening a run of data messages in one call)
 * does it there. `arrival` is when the datagram arrived, on performance.now()'s clock: the
 * kernel's timestamp on the native backend, the moment node:dgram handed it over on the fallback.
 * `from` may be shared between calls: read it, do not keep it.
 */
export interface DatagramSink {
  datagram(data: Buffer, from: RemoteInfo, arrival: number): void;
  endOfBatch(): void;
}

export interface UdpLinkStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  sendErrors: number;
  /** Send and receive system calls (node:dgram: one per datagram); datagrams per call = batching. */
  sendCalls: number;
  recvCalls: number;
  recvBufferBytes: number;
  sendBufferBytes: number;
}

export type UdpBackend = 'native' | 'dgram';

export interface UdpLinkOptions {
  /** Default: LONGHAUL_UDP from the environment ('native' | 'dgram'), else native when built. */
  backend?: UdpBackend | 'auto';
  /** Kernel buffer requests (default SOCKET_BUFFER_BYTES each). */
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** Native backend: UDP GSO sends and GRO receives. Default: on unless LONGHAUL_UDP_GSO=0. */
  segmentation?: boolean;
  /** Native backend: receive coalescing pause in microseconds (0: off). Default RECV_COALESCING_US, or LONGHAUL_UDP_COALESCE_US. */
  recvCoalescingUs?: number;
  /**
   * Share the address with other sockets that ask for SO_REUSEPORT (config `wanReusePort`).
   * Default false: binding fails with EADDRINUSE when anything holds the address already.
   */
  reusePort?: boolean;
}

/** Kernel buffer sizes to request, in bytes. */
export interface SocketBuffers {
  recv: number;
  send: number;
}

// A batch holds one flush's worth of full-size datagrams several times over (the association
// sends at most 512 per flush, in rounds); a full batch is sent and reused within the flush.
const BATCH_BYTES = 512 * 1024;
const BATCH_DATAGRAMS = 1024;

/**
 * Datagrams back to back in `buf`, datagram i being lens[i] bytes: what one UdpLink.sendBatch
 * hands the kernel (sendmmsg, runs of equal sizes as one GSO message). The security layer writes
 * and seals datagrams in place here; the link only sends the bytes.
 */
export class DatagramBatch {
  readonly buf: Buffer;
  readonly lens: Int32Array;
  count = 0;
  /** Bytes used: the next datagram starts here. */
  end = 0;

  constructor(bytes = BATCH_BYTES, datagrams = BATCH_DATAGRAMS) {
    this.buf = Buffer.allocUnsafeSlow(bytes);
    this.lens = new Int32Array(datagrams);
  }

  /** Room for one more datagram of up to `size` bytes. */
  fits(size: number): boolean {
    return this.count < this.lens.length && this.end + size <= this.buf.length;
  }

  /** The datagram written at `end` is `length` bytes long. */
  push(length: number): void {
    this.lens[this.count++] = length;
    this.end += length;
  }

  /** Copies a datagram in (fits() must hold). */
  add(data: Uint8Array): void {
    this.buf.set(data, this.end);
    this.push(data.length);
  }

  clear(): void {
    this.count = 0;
    this.end = 0;
  }
}

export interface UdpLink {
  readonly backend: UdpBackend;
  readonly stats: UdpLinkStats;
  readonly address: Endpoint;
  /**
   * Where received datagrams go. `transient`: the sink reads each datagram before endOfBatch
   * returns and copies what it keeps, so it may get views of a receive buffer that the next batch
   * reuses (no copy per datagram). Default: every datagram its own bytes.
   */
  onDatagrams(sink: DatagramSink, options?: { transient?: boolean }): void;
  /**
   * One datagram to an address, fire and forget (UDP loss is the transport's business; errors are
   * only counted). For handshake replies and other traffic to unproven sources.
   */
  send(data: Uint8Array, port: number, host: string): void;
  /**
   * Sends the batch's datagrams to an authenticated peer and empties the batch. `to` must be a
   * long-lived object (one per peer address): it keys the path. What the kernel cannot take now
   * (a full socket buffer) is copied aside and sent, in order, once the socket is writable again;
   * beyond a bound it is dropped and counted, as a full buffer would.
   */
  sendBatch(batch: DatagramBatch, to: Endpoint): void;
  /** The peer behind `to` is gone: drop what was set up for it. */
  release(to: Endpoint): void;
  /** The configured receive coalescing pause in microseconds (0: off, and always on node:dgram). */
  readonly recvCoalescingUs: number;
  /**
   * The receive coalescing pause for datagrams from `to` (see pathCoalescingUs); a no-op until the
   * link has sent to `to` (its socket is opened then) and on node:dgram.
   */
  setRecvCoalescing(to: Endpoint, us: number): void;
  close(): Promise<void>;
}

let fallbackNoted = false;

/**
 * The link's sockets all set SO_REUSEPORT, because each peer gets a socket connected to it on the
 * same address (its datagrams then reach that socket). The kernel would let any other process of
 * the same user join that address as well and take a share of the peer's datagrams: a second
 * gateway started by mistake on the same --wan would run and split the traffic. So, unless sharing
 * is asked for, the address is first bound once without SO_REUSEPORT, which fails with EADDRINUSE
 * when any socket holds it (with or without SO_REUSEPORT), and released just before the real bind.
 * A process binding in the microseconds between the two is not caught; a later one is (if it is a
 * gateway, or anything else binding without SO_REUSEPORT).
 */
async function checkAddressFree(addr: Endpoint): Promise<void> {
  if (addr.port === 0) return;
  const probe = createSocket({ type: isIP(addr.host) === 6 ? 'udp6' : 'udp4' });
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind({ port: addr.port, address: addr.host, exclusive: true }, () => {
      probe.off('error', reject);
      resolve();
    });
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

export const UdpLink = {
  /** Binds the WAN socket; rejects with the OS error (e.g. EADDRINUSE, also when another socket holds the address and `reusePort` is off). */
  async bind(addr: Endpoint, opts: UdpLinkOptions = {}): Promise<UdpLink> {
    if (!opts.reusePort) await checkAddressFree(addr);
    const buffers = { recv: opts.recvBufferBytes ?? SOCKET_BUFFER_BYTES, send: opts.sendBufferBytes ?? SOCKET_BUFFER_BYTES };
    const env = process.env.LONGHAUL_UDP;
    const wanted = opts.backend ?? (env === 'native' || env === 'dgram' ? env : 'auto');
    if (wanted !== 'dgram') {
      const load = loadAddon<LhUdpAddon>('lh_udp');
      if (load.ok) {
        // The addon takes numeric addresses only; a name resolves as node:dgram's udp4 socket would.
        const host = isIP(addr.host) ? addr.host : (await lookup(addr.host, { family: 4 })).address;
        const segmentation = opts.segmentation ?? process.env.LONGHAUL_UDP_GSO !== '0';
        const envCoalescing = Number(process.env.LONGHAUL_UDP_COALESCE_US);
        const wantedUs =
          opts.recvCoalescingUs ?? (process.env.LONGHAUL_UDP_COALESCE_US && envCoalescing >= 0 ? envCoalescing : RECV_COALESCING_US);
        const coalescingUs = Math.min(MAX_RECV_COALESCING_US, Math.max(0, Math.round(wantedUs)));
        return new NativeUdpLink(load.addon, { host, port: addr.port }, buffers, { segmentation, coalescingUs });
      }
      if (wanted === 'native') throw new Error(load.error);
      if (!fallbackNoted) {
        fallbackNoted = true;
        process.emitWarning(`${load.error}; the WAN socket uses node:dgram (one syscall per datagram)`, { code: 'LONGHAUL_UDP_FALLBACK' });
      }
    }
    return DgramUdpLink.bind(addr, buffers);
  },
};

// Unconnected sends cost a DNS-lookup callback turn per datagram in node:dgram; a socket
// connected to the peer sends directly (measured ~15% less CPU per datagram). Each association's
// peer gets such a socket, bound to the same WAN address with SO_REUSEPORT: the kernel delivers
// that peer's datagrams to it (exact 4-tuple match wins) and everything else to the main socket.
type FastPath = Socket | 'pending' | 'failed';

class DgramUdpLink implements UdpLink {
  readonly backend = 'dgram';
  readonly stats: UdpLinkStats = newUdpLinkStats();
  #socket: Socket;
  #type: 'udp4' | 'udp6';
  #sink: DatagramSink = { datagram: () => {}, endOfBatch: () => {} };
  #fast = new Map<Endpoint, FastPath>();
  #closed = false;
  // One datagram per message: each is a batch of its own.
  #onMessage = (data: Buffer, from: RemoteInfo): void => {
    this.stats.datagramsIn++;
    this.stats.recvCalls++;
    this.stats.bytesIn += data.length;
    this.#sink.datagram(data, from, performance.now());
    this.#sink.endOfBatch();
  };
  #onError = (): void => {
    this.stats.sendErrors++;
  };

  #buffers: SocketBuffers;

  private constructor(socket: Socket, type: 'udp4' | 'udp6', buffers: SocketBuffers) {
    this.#socket = socket;
    this.#type = type;
    this.#buffers = buffers;
    socket.on('message', this.#onMessage);
  }

  static async bind(addr: Endpoint, buffers: SocketBuffers): Promise<DgramUdpLink> {
    const type = isIP(addr.host) === 6 ? 'udp6' : 'udp4';
    const socket = createSocket({ type, reusePort: true, recvBufferSize: buffers.recv, sendBufferSize: buffers.send });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(addr.port, addr.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const link = new DgramUdpLink(socket, type, buffers);
    link.stats.recvBufferBytes = socket.getRecvBufferSize();
    link.stats.sendBufferBytes = socket.getSendBufferSize();
    // After binding, socket errors (e.g. ICMP unreachable surfaced as ECONNREFUSED) are not fatal.
    socket.on('error', link.#onError);
    return link;
  }

  get address(): Endpoint {
    const a = this.#socket.address();
    return { host: a.address, port: a.port };
  }

  // node:dgram gives every message its own buffer: transient or not, nothing to save.
  onDatagrams(sink: DatagramSink): void {
    this.#sink = sink;
  }

  send(data: Uint8Array, port: number, host: string): void {
    this.stats.datagramsOut++;
    this.stats.sendCalls++;
    this.stats.bytesOut += data.length;
    this.#socket.send(data, port, host);
  }

  /**
   * Each datagram is copied (node:dgram holds a buffer until its send completes, and the batch is
   * reused at once) and sent through a socket connected to the peer once that is set up.
   */
  sendBatch(batch: DatagramBatch, to: Endpoint): void {
    const fast = this.#fast.get(to);
    if (fast === undefined) this.#openFastPath(to);
    const socket = fast !== undefined && typeof fast !== 'string' ? fast : null;
    let at = 0;
    for (let i = 0; i < batch.count; i++) {
      const len = batch.lens[i]!;
      const data = Buffer.from(batch.buf.subarray(at, at + len));
      at += len;
      if (socket === null) {
        this.send(data, to.port, to.host);
        continue;
      }
      this.stats.datagramsOut++;
      this.stats.sendCalls++;
      this.stats.bytesOut += len;
      socket.send(data);
    }
    batch.clear();
  }

  #openFastPath(to: Endpoint): void {
    this.#fast.set(to, 'pending');
    const local = this.#socket.address();
    const s = createSocket({ type: this.#type, reusePort: true, recvBufferSize: this.#buffers.recv, sendBufferSize: this.#buffers.send });
    const fail = (): void => {
      if (this.#fast.get(to) === 'pending') this.#fast.set(to, 'failed');
      s.close();
    };
    s.once('error', fail);
    s.bind(local.port, local.address, () => {
      s.connect(to.port, to.host, () => {
        s.off('error', fail);
        if (this.#closed) {
          s.close();
          return;
        }
        s.on('error', this.#onError);
        s.on('message', this.#onMessage);
        this.#fast.set(to, s);
      });
    });
  }

  release(to: Endpoint): void {
    const fast = this.#fast.get(to);
    this.#fast.delete(to);
    if (fast !== undefined && typeof fast !== 'string') fast.close();
  }

  // node:dgram hands over each datagram as it comes: there is no pause to set.
  readonly recvCoalescingUs = 0;
  setRecvCoalescing(): void {}

  close(): Promise<void> {
    this.#closed = true;
    for (const f of this.#fast.values()) if (typeof f !== 'string') f.close();
    this.#fast.clear();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
