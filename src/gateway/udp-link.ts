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

export class UdpLink {
  readonly stats: UdpLinkStats = {
    datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, sendErrors: 0, recvBufferBytes: 0, sendBufferBytes: 0,
  };
  #socket: Socket;
  #handler: DatagramHandler = () => {};
  #onSendError = (err: Error | null): void => {
    if (err) this.stats.sendErrors++;
  };

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('message', (data, from) => {
      this.stats.datagramsIn++;
      this.stats.bytesIn += data.length;
      this.#handler(data, from);
    });
  }

  /** Binds the socket; rejects with the OS error (e.g. EADDRINUSE). */
  static async bind(addr: Endpoint): Promise<UdpLink> {
    const type = isIP(addr.host) === 6 ? 'udp6' : 'udp4';
    const socket = createSocket({
      type,
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
    const link = new UdpLink(socket);
    link.stats.recvBufferBytes = socket.getRecvBufferSize();
    link.stats.sendBufferBytes = socket.getSendBufferSize();
    // After binding, socket errors (e.g. ICMP unreachable surfaced as ECONNREFUSED) are not fatal.
    socket.on('error', () => link.stats.sendErrors++);
    return link;
  }

  get address(): Endpoint {
    const a = this.#socket.address();
    return { host: a.address, port: a.port };
  }

  onDatagram(handler: DatagramHandler): void {
    this.#handler = handler;
  }

  /** Fire and forget: UDP loss is the transport's business; errors are only counted. */
  send(data: Uint8Array, port: number, host: string): void {
    this.stats.datagramsOut++;
    this.stats.bytesOut += data.length;
    this.#socket.send(data, port, host, this.#onSendError);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
