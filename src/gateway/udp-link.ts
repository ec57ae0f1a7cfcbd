// The WAN socket, with large kernel buffers. Thin on purpose: it hands datagrams up with their
// source and sends what it is given; timers and the per-turn flush live in the association driver.
// Two backends with one contract: the lh_udp addon (src/gateway/udp-batch.ts: sendmmsg/recvmmsg,
// one syscall and one JS call per batch) when it is built, else node:dgram (one of each per datagram).
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

/**
 * `data` is the receiver's to keep; `from` may be shared between calls: read it, do not keep it.
 * `now`: performance.now() when the datagram's receive batch was read (one clock read per batch).
 */
export type DatagramHandler = (data: Buffer, from: RemoteInfo, now: number) => void;

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
}

/**
 * Seals, in place and just before they leave, the datagrams queued with this sealer: `count` of
 * them back to back in buf from byte `at`, datagram i being lens[from + i] bytes. False when they
 * cannot be sealed any more (no session): they are dropped. One call per run instead of one per
 * datagram (the packet protection's per-call cost is a third of its work on 1400-byte packets).
 */
export type RunSealer = (buf: Buffer, lens: Int32Array, from: number, count: number, at: number) => boolean;

/** Where a caller writes a datagram in place (UdpLink.sendSpace); valid until commitSend. */
export interface SendSpace {
  buf: Buffer;
  offset: number;
}

/** Kernel buffer sizes to request, in bytes. */
export interface SocketBuffers {
  recv: number;
  send: number;
}

export interface UdpLink {
  readonly backend: UdpBackend;
  readonly stats: UdpLinkStats;
  readonly address: Endpoint;
  /**
   * `transient`: the handler reads each datagram during its call and copies what it keeps; it
   * may then get views of a receive buffer that is reused once the batch's turn is over
   * (microtasks included), saving a copy per datagram. Default: every datagram its own bytes.
   */
  onDatagram(handler: DatagramHandler, options?: { transient?: boolean }): void;
  /**
   * Fire and forget: UDP loss is the transport's business; errors are only counted (no
   * per-datagram callback). For handshake replies and other traffic to unproven sources.
   */
  send(data: Uint8Array, port: number, host: string): void;
  /**
   * Association traffic to an authenticated peer. `to` must be a long-lived object (one per
   * peer address), it keys the path. Returns true when `data` was already copied (the caller
   * may reuse the buffer), false when it must stay untouched.
   */
  sendTo(data: Uint8Array, to: Endpoint): boolean;
  /**
   * Room for one datagram of up to `size` bytes in the send queue to `to` (a peer address as for
   * sendTo), for the caller to write in place at space.buf[space.offset, ...) and then queue with
   * commitSend before any other send. Null when the backend has no such queue (node:dgram) or it
   * is full: use sendTo then.
   */
  sendSpace(to: Endpoint, size: number): SendSpace | null;
  /** Queues what was written into `space`; with `sealer`, it is sealed (with its run) before it leaves. */
  commitSend(space: SendSpace, length: number, sealer?: RunSealer): void;
  /** The peer behind `to` is gone: drop what was set up for it. */
  release(to: Endpoint): void;
  close(): Promise<void>;
}

let fallbackNoted = false;

export const UdpLink = {
  /** Binds the WAN socket; rejects with the OS error (e.g. EADDRINUSE). */
  async bind(addr: Endpoint, opts: UdpLinkOptions = {}): Promise<UdpLink> {
    const buffers = { recv: opts.recvBufferBytes ?? SOCKET_BUFFER_BYTES, send: opts.sendBufferBytes ?? SOCKET_BUFFER_BYTES };
    const env = process.env.LONGHAUL_UDP;
    const wanted = opts.backend ?? (env === 'native' || env === 'dgram' ? env : 'auto');
    if (wanted !== 'dgram') {
      const load = loadAddon<LhUdpAddon>('lh_udp');
      if (load.ok) {
        // The addon takes numeric addresses only; a name resolves as node:dgram's udp4 socket would.
        const host = isIP(addr.host) ? addr.host : (await lookup(addr.host, { family: 4 })).address;
        const segmentation = opts.segmentation ?? process.env.LONGHAUL_UDP_GSO !== '0';
        return new NativeUdpLink(load.addon, { host, port: addr.port }, buffers, segmentation);
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
  readonly stats: UdpLinkStats = {
    datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, sendErrors: 0, sendCalls: 0, recvCalls: 0, recvBufferBytes: 0, sendBufferBytes: 0,
  };
  #socket: Socket;
  #type: 'udp4' | 'udp6';
  #handler: DatagramHandler = () => {};
  #fast = new Map<Endpoint, FastPath>();
  #closed = false;
  #onMessage = (data: Buffer, from: RemoteInfo): void => {
    this.stats.datagramsIn++;
    this.stats.recvCalls++;
    this.stats.bytesIn += data.length;
    this.#handler(data, from, performance.now());
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
  onDatagram(handler: DatagramHandler): void {
    this.#handler = handler;
  }

  send(data: Uint8Array, port: number, host: string): void {
    this.stats.datagramsOut++;
    this.stats.sendCalls++;
    this.stats.bytesOut += data.length;
    this.#socket.send(data, port, host);
  }

  /**
   * Goes through a socket connected to the peer once that is set up. Returns true when the kernel has already copied `data`, so the caller may reuse the buffer:
   * a connected socket sends synchronously (node tries uv_udp_try_send first, and libuv refuses
   * that while requests are queued), and a send queue still empty after the call proves no
   * request holds the buffer. Otherwise (unconnected sends wait for an address lookup turn, or
   * the kernel queue was full) the buffer must stay untouched.
   */
  sendTo(data: Uint8Array, to: Endpoint): boolean {
    const fast = this.#fast.get(to);
    if (fast !== undefined && typeof fast !== 'string') {
      this.stats.datagramsOut++;
      this.stats.sendCalls++;
      this.stats.bytesOut += data.length;
      fast.send(data);
      return fast.getSendQueueCount() === 0;
    }
    if (fast === undefined) this.#openFastPath(to);
    this.send(data, to.port, to.host);
    return false;
  }

  // node:dgram sends each datagram from its own buffer: nothing to write in place.
  sendSpace(): SendSpace | null {
    return null;
  }

  commitSend(): void {
    throw new Error('commitSend: node:dgram gives no send space');
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

  close(): Promise<void> {
    this.#closed = true;
    for (const f of this.#fast.values()) if (typeof f !== 'string') f.close();
    this.#fast.clear();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
