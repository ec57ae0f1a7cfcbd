// The WAN socket: one node:dgram socket with large kernel buffers. Thin on purpose: it
// hands datagrams up with their source and sends what it is given; batching and timers
// live in the association driver.
import { createSocket } from 'node:dgram';
import type { Socket, RemoteInfo } from 'node:dgram';
import { isIP } from 'node:net';
import type { Endpoint } from './address.ts';

// 16 MiB: ~11k full-size datagrams, i.e. ~130 ms at 1 Gbit/s, so a busy event loop (GC
// pause, a burst of TCP work) does not overflow the kernel queue. The kernel may clamp
// this to net.core.rmem_max; the effective size is reported in status.
export const SOCKET_BUFFER_BYTES = 16 * 1024 * 1024;

export type DatagramHandler = (data: Buffer, from: RemoteInfo) => void;

export interface UdpLinkStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  sendErrors: number;
  recvBufferBytes: number;
  sendBufferBytes: number;
}

// Unconnected sends cost a DNS-lookup callback turn per datagram in node:dgram; a socket
// connected to the peer sends directly (measured ~15% less CPU per datagram). Each association's
// peer gets such a socket, bound to the same WAN address with SO_REUSEPORT: the kernel delivers
// that peer's datagrams to it (exact 4-tuple match wins) and everything else to the main socket.
type FastPath = Socket | 'pending' | 'failed';

export class UdpLink {
  readonly stats: UdpLinkStats = {
    datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, sendErrors: 0, recvBufferBytes: 0, sendBufferBytes: 0,
  };
  #socket: Socket;
  #type: 'udp4' | 'udp6';
  #handler: DatagramHandler = () => {};
  #fast = new Map<Endpoint, FastPath>();
  #closed = false;
  #onMessage = (data: Buffer, from: RemoteInfo): void => {
    this.stats.datagramsIn++;
    this.stats.bytesIn += data.length;
    this.#handler(data, from);
  };
  #onError = (): void => {
    this.stats.sendErrors++;
  };

  private constructor(socket: Socket, type: 'udp4' | 'udp6') {
    this.#socket = socket;
    this.#type = type;
    socket.on('message', this.#onMessage);
  }

  /** Binds the socket; rejects with the OS error (e.g. EADDRINUSE). */
  static async bind(addr: Endpoint): Promise<UdpLink> {
    const type = isIP(addr.host) === 6 ? 'udp6' : 'udp4';
    const socket = createSocket({
      type,
      reusePort: true,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(addr.port, addr.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const link = new UdpLink(socket, type);
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

  onDatagram(handler: DatagramHandler): void {
    this.#handler = handler;
  }

  /**
   * Fire and forget: UDP loss is the transport's business; errors are only counted (no
   * per-datagram callback). For handshake replies and other traffic to unproven sources.
   */
  send(data: Uint8Array, port: number, host: string): void {
    this.stats.datagramsOut++;
    this.stats.bytesOut += data.length;
    this.#socket.send(data, port, host);
  }

  /**
   * Association traffic to an authenticated peer: goes through a socket connected to it once
   * that is set up. `to` must be a long-lived object (one per peer address), it keys the path.
   * Returns true when the kernel has already copied `data`, so the caller may reuse the buffer:
   * a connected socket sends synchronously (node tries uv_udp_try_send first, and libuv refuses
   * that while requests are queued), and a send queue still empty after the call proves no
   * request holds the buffer. Otherwise (unconnected sends wait for an address lookup turn, or
   * the kernel queue was full) the buffer must stay untouched.
   */
  sendTo(data: Uint8Array, to: Endpoint): boolean {
    const fast = this.#fast.get(to);
    if (fast !== undefined && typeof fast !== 'string') {
      this.stats.datagramsOut++;
      this.stats.bytesOut += data.length;
      fast.send(data);
      return fast.getSendQueueCount() === 0;
    }
    if (fast === undefined) this.#openFastPath(to);
    this.send(data, to.port, to.host);
    return false;
  }

  #openFastPath(to: Endpoint): void {
    this.#fast.set(to, 'pending');
    const local = this.#socket.address();
    const s = createSocket({ type: this.#type, reusePort: true, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
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

  /** The peer behind `to` is gone: drop its connected socket. */
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
