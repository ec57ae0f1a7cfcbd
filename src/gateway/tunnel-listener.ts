// The near gateway's half of a tunnel: a TCP listener whose accepted connections become
// streams of the association with the tunnel's peer.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Endpoint } from './address.ts';
import { formatEndpoint } from './address.ts';

export interface TunnelCounters {
  active: number;
  total: number;
  /** Connections closed before a stream carried them (peer unreachable, limits). */
  failed: number;
  bytesFromClients: number;
  bytesToClients: number;
}

export interface TunnelSpec {
  name: string;
  listen: Endpoint;
  peer: string;
  target: Endpoint;
}

export class TunnelListener {
  /** A config reload may re-point the tunnel (peer, target, name): connections accepted after it follow the new spec. */
  spec: TunnelSpec;
  readonly counters: TunnelCounters = { active: 0, total: 0, failed: 0, bytesFromClients: 0, bytesToClients: 0 };
  #server: Server;
  #backlog: number;

  /** Identity across config reloads (the listen address as configured; reload.ts tunnelKey). */
  readonly key: string;

  /**
   * `backlog`: connections the kernel may complete before we accept them. Node's default (511)
   * is overrun by a burst (5000 clients connecting at once: 1648 of them were reset by the
   * kernel before the gateway saw them); the kernel caps it at net.core.somaxconn.
   */
  constructor(
    spec: TunnelSpec,
    onConnection: (socket: Socket, tunnel: TunnelListener) => void,
    key = formatEndpoint(spec.listen),
    backlog = 511,
  ) {
    this.spec = spec;
    this.key = key;
    this.#backlog = backlog;
    // pauseOnConnect: nothing is read until the stream exists; allowHalfOpen: FIN is carried, not answered.
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => onConnection(socket, this));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ port: this.spec.listen.port, host: this.spec.listen.host, backlog: this.#backlog }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** The bound address (resolves port 0). */
  get address(): Endpoint {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') return this.spec.listen;
    return { host: a.address, port: a.port };
  }

  describe(): string {
    return `${formatEndpoint(this.address)} -> ${this.spec.peer} -> ${formatEndpoint(this.spec.target)}`;
  }

  /**
   * Stops accepting at once; open connections carry on (net.Server's close callback would
   * wait for all of them, which the shutdown's grace period handles instead).
   */
  close(): void {
    this.#server.close();
  }
}
