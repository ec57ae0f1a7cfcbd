// The gateway's intercept listener: the kernel diverts connections bound for the remote sites to
// it (iptables TPROXY or REDIRECT, rules from rules.ts) and it learns where each was going.
//
//   tproxy:   the listening socket has IP_TRANSPARENT; an accepted socket's local address is the
//             destination the client dialled (the kernel never rewrote the packets).
//   redirect: the packets were NATed to the listener; SO_ORIGINAL_DST gives the destination.
//
// A connection that reaches the listener directly (someone dialled the gateway's own port) has
// itself as destination; no intercept rule serves that, so the gateway resets it.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Endpoint } from '../address.ts';
import type { InterceptMethod } from './config.ts';
import { listenFd, natOriginalDestination } from './socket-options.ts';

export interface InterceptListenerOptions {
  listen: Endpoint;
  method: InterceptMethod;
  backlog: number;
  /** `destination` null: it could not be read (the client left before, or no NAT entry under redirect). */
  onConnection(socket: Socket, destination: Endpoint | null): void;
}

export class InterceptListener {
  readonly method: InterceptMethod;
  #o: InterceptListenerOptions;
  #server: Server;

  constructor(o: InterceptListenerOptions) {
    this.#o = o;
    this.method = o.method;
    // As the tunnel listeners: nothing is read until the stream exists; FIN is carried, not answered.
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) =>
      o.onConnection(socket, this.#destination(socket)),
    );
  }

  #destination(socket: Socket): Endpoint | null {
    if (this.#o.method === 'redirect') {
      try {
        return natOriginalDestination(socket);
      } catch {
        return null;
      }
    }
    const host = socket.localAddress;
    const port = socket.localPort;
    if (host === undefined || port === undefined) return null;
    return { host: host.startsWith('::ffff:') ? host.slice(7) : host, port };
  }

  /** Binds natively (IP_TRANSPARENT for tproxy) and hands the descriptor to net.Server. */
  listen(): Promise<void> {
    let fd: number;
    try {
      fd = listenFd(this.#o.listen, this.#o.backlog, this.#o.method === 'tproxy');
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ fd, backlog: this.#o.backlog }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  get address(): Endpoint {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') return this.#o.listen;
    return { host: a.address, port: a.port };
  }

  /** Stops accepting; open connections carry on (the gateway's shutdown grace handles them). */
  close(): void {
    this.#server.close();
  }
}
