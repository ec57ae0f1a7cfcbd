// Application driver for Pair tests: one side opens streams and writes deterministic data
// as fast as the transport accepts it; the other reads everything and keeps it per stream.

import type { Connection } from '../../src/transport/connection.ts';
import type { ConnectionEvent } from '../../src/transport/types.ts';
import { randomBytes, sha256 } from './helpers.ts';

export class Writer {
  readonly payloads = new Map<number, Uint8Array>();
  private readonly offsets = new Map<number, number>();
  private readonly sizes: number[];
  private readonly seed: number;
  private opened = false;
  writesRefused = 0;

  constructor(sizes: number[], seed: number) {
    this.sizes = sizes;
    this.seed = seed;
  }

  /** Call after each service round with the side's event log. */
  pump(conn: Connection, _events: ConnectionEvent[]): void {
    if (!this.opened && conn.isConnected) {
      this.opened = true;
      for (let i = 0; i < this.sizes.length; i++) {
        const id = conn.openStream();
        if (id < 0) throw new Error('openStream refused');
        this.payloads.set(id, randomBytes(this.seed * 1000 + i, this.sizes[i]!));
        this.offsets.set(id, 0);
      }
    }
    for (const [id, data] of this.payloads) {
      let off = this.offsets.get(id)!;
      if (off < 0) continue;
      while (off < data.length) {
        const n = conn.write(id, data.subarray(off, Math.min(data.length, off + 50_000)));
        if (n === 0) {
          this.writesRefused++;
          break;
        }
        off += n;
      }
      if (off >= data.length) {
        conn.finish(id);
        off = -1;
      }
      this.offsets.set(id, off);
    }
  }

  digests(): Map<number, string> {
    return new Map([...this.payloads].map(([id, d]) => [id, sha256([d])]));
  }
}

export class Reader {
  readonly chunks = new Map<number, Uint8Array[]>();
  readonly finished = new Set<number>();
  private seen = 0;
  paused = false;

  pump(conn: Connection, events: ConnectionEvent[]): void {
    for (; this.seen < events.length; this.seen++) {
      const e = events[this.seen]!;
      if (e.type === 'stream-opened' && !this.chunks.has(e.streamId)) this.chunks.set(e.streamId, []);
      if (e.type === 'stream-finished') this.finished.add(e.streamId);
    }
    if (this.paused) return;
    for (const [id, list] of this.chunks) {
      let c: Uint8Array | null;
      while ((c = conn.read(id)) !== null) list.push(c);
    }
    // read() may have emitted stream-finished: picked up on the next pump.
  }

  bytes(): number {
    let n = 0;
    for (const l of this.chunks.values()) for (const c of l) n += c.length;
    return n;
  }

  digests(): Map<number, string> {
    return new Map([...this.chunks].map(([id, l]) => [id, sha256(l)]));
  }
}
