// What interception counts where it happens (per rule, the connections it could not place, the
// open connections and their original destinations); status(), /metrics and `longhaul status`
// read the snapshot.
import { formatEndpoint } from '../address.ts';
import type { Endpoint } from '../address.ts';
import type { TunnelCounters } from '../tunnel-listener.ts';
import { formatPortRange, interceptRuleName } from './config.ts';
import type { InterceptMethod, InterceptRule } from './config.ts';

/** Open intercepted connections listed one by one in status; beyond this only counted. */
const MAX_LISTED_CONNECTIONS = 256;

interface OpenConnection {
  client: string;
  originalDst: string;
  rule: string;
  peer: string;
  stream: number;
  openedAt: number;
}

export interface InterceptStatus {
  listen: string;
  method: InterceptMethod;
  rules: Array<{ name: string; peer: string; subnets: string[]; ports: string[] | 'all' } & TunnelCounters>;
  /** Diverted connections whose destination no rule serves (reset): a rule set installed for another config. */
  unserved: number;
  /** Diverted connections whose original destination could not be read (reset). */
  unreadable: number;
  /** Open intercepted connections, oldest first, at most MAX_LISTED_CONNECTIONS. */
  connections: Array<{ client: string; originalDst: string; rule: string; peer: string; stream: number; ageSec: number }>;
  connectionsNotListed: number;
}

export class InterceptFigures {
  unserved = 0;
  unreadable = 0;
  #counters = new Map<string, TunnelCounters>();
  #open = new Set<OpenConnection>();

  countersFor(rule: string): TunnelCounters {
    let c = this.#counters.get(rule);
    if (!c) {
      c = { active: 0, total: 0, failed: 0, bytesFromClients: 0, bytesToClients: 0 };
      this.#counters.set(rule, c);
    }
    return c;
  }

  /** Records an open connection; the returned function forgets it. */
  opened(c: { client: string; originalDst: Endpoint; rule: string; peer: string; stream: number }): () => void {
    const entry: OpenConnection = { ...c, originalDst: formatEndpoint(c.originalDst), openedAt: Date.now() };
    this.#open.add(entry);
    return () => {
      this.#open.delete(entry);
    };
  }

  snapshot(rules: readonly InterceptRule[], listen: Endpoint, method: InterceptMethod): InterceptStatus {
    const now = Date.now();
    const connections: InterceptStatus['connections'] = [];
    for (const o of this.#open) {
      if (connections.length >= MAX_LISTED_CONNECTIONS) break;
      connections.push({
        client: o.client,
        originalDst: o.originalDst,
        rule: o.rule,
        peer: o.peer,
        stream: o.stream,
        ageSec: Math.round((now - o.openedAt) / 1000),
      });
    }
    return {
      listen: formatEndpoint(listen),
      method,
      rules: rules.map((r, i) => {
        const name = interceptRuleName(r, i);
        return {
          name,
          peer: r.peer,
          subnets: r.subnets.map((s) => s.text),
          ports: r.ports ? r.ports.map(formatPortRange) : 'all',
          ...this.countersFor(name),
        };
      }),
      unserved: this.unserved,
      unreadable: this.unreadable,
      connections,
      connectionsNotListed: this.#open.size - connections.length,
    };
  }
}
