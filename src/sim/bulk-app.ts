// Application drivers for simulated transfers: a bulk sender that writes many streams of
// deterministic, incompressible bytes as fast as the transport accepts them, and a
// receiver that reads everything and hashes each stream, so delivery can be checked
// byte-exact by comparing digests.

import { createHash, type Hash } from 'node:crypto';
import type { ConnectionEvent, TransportConnection } from '../transport/index.ts';
import { Prng } from './prng.ts';

// Stream bytes come from one random pool read at a stream-specific offset modulo a prime,
// so writes are zero-copy subarrays and any misplaced byte range (except a shift by an
// exact multiple of the prime) changes the digest.
const POOL_PRIME = 1_048_573;
const WRITE_CHUNK = 64 * 1024;

export class DataPool {
  readonly bytes: Uint8Array;

  constructor(seed: number) {
    const prng = new Prng(seed);
    this.bytes = new Uint8Array(POOL_PRIME + WRITE_CHUNK);
    const view = new DataView(this.bytes.buffer);
    for (let i = 0; i + 4 <= POOL_PRIME; i += 4) view.setUint32(i, prng.nextU32());
    for (let i = POOL_PRIME & ~3; i < POOL_PRIME; i++) this.bytes[i] = prng.nextU32() & 0xff;
    this.bytes.copyWithin(POOL_PRIME, 0, WRITE_CHUNK);
  }

  /** Up to `max` (<= 64 KiB) bytes of the stream with salt `salt` starting at `offset`. */
  slice(salt: number, offset: number, max: number): Uint8Array {
    const pos = (offset + salt) % POOL_PRIME;
    return this.bytes.subarray(pos, pos + Math.min(max, WRITE_CHUNK));
  }
}

interface SendStream {
  id: number;
  salt: number;
  size: number;
  written: number;
  finished: boolean;
  hash: Hash;
  digest: string;
}

export interface BulkSenderOptions {
  /** Byte count of each stream to send (one entry per stream). */
  streamSizes: readonly number[];
  seed: number;
  pool?: DataPool;
}

export class BulkSender {
  readonly #conn: TransportConnection;
  readonly #pool: DataPool;
  readonly #sizes: readonly number[];
  readonly #salts: number[];
  readonly #streams: SendStream[] = [];
  readonly #byId = new Map<number, SendStream>();
  #pending: SendStream[] = [];
  /** Virtual time the first byte was written (NaN before). */
  startedAt = Number.NaN;
  closed: Extract<ConnectionEvent, { type: 'closed' }> | null = null;
  readonly errors: string[] = [];

  constructor(conn: TransportConnection, opts: BulkSenderOptions) {
    this.#conn = conn;
    this.#pool = opts.pool ?? new DataPool(opts.seed);
    this.#sizes = opts.streamSizes;
    const prng = new Prng(opts.seed ^ 0x5eed);
    this.#salts = opts.streamSizes.map(() => prng.int(POOL_PRIME));
  }

  get bytesTotal(): number {
    return this.#sizes.reduce((a, b) => a + b, 0);
  }

  /** Digest of every stream's bytes, by stream id (complete once all were written). */
  digests(): Map<number, string> {
    return new Map(this.#streams.map((s) => [s.id, s.digest]));
  }

  get allWritten(): boolean {
    return this.#streams.length === this.#sizes.length && this.#streams.every((s) => s.finished);
  }

  onWake = (now: number): void => {
    const conn = this.#conn;
    let e: ConnectionEvent | null;
    while ((e = conn.pollEvent()) !== null) {
      switch (e.type) {
        case 'connected':
          this.#open(now);
          break;
        case 'stream-writable': {
          const s = this.#byId.get(e.streamId);
          if (s && !s.finished && !this.#pending.includes(s)) this.#pending.push(s);
          break;
        }
        case 'stream-reset':
          this.errors.push(`stream ${e.streamId} reset with code ${e.code}`);
          break;
        case 'closed':
          this.closed = e;
          break;
        default:
          break;
      }
    }
    if (this.#pending.length > 0) this.#pump();
  };

  #open(now: number): void {
    if (this.#streams.length > 0) return;
    for (let i = 0; i < this.#sizes.length; i++) {
      const id = this.#conn.openStream();
      if (id < 0) {
        this.errors.push(`openStream refused stream ${i}`);
        continue;
      }
      const s: SendStream = {
        id,
        salt: this.#salts[i]!,
        size: this.#sizes[i]!,
        written: 0,
        finished: false,
        hash: createHash('sha256'),
        digest: '',
      };
      this.#streams.push(s);
      this.#byId.set(id, s);
      this.#pending.push(s);
    }
    this.startedAt = now;
  }

  #pump(): void {
    const conn = this.#conn;
    for (const s of this.#pending) {
      while (s.written < s.size) {
        const chunk = this.#pool.slice(s.salt, s.written, s.size - s.written);
        const n = conn.write(s.id, chunk);
        if (n <= 0) break;
        s.hash.update(n === chunk.length ? chunk : chunk.subarray(0, n));
        s.written += n;
        if (n < chunk.length) break;
      }
      if (s.written >= s.size && !s.finished) {
        conn.finish(s.id);
        s.finished = true;
        s.digest = s.hash.digest('hex');
      }
    }
    // Streams the transport refused wait for their 'stream-writable' event.
    this.#pending = [];
  }
}

interface RecvStream {
  id: number;
  bytes: number;
  hash: Hash;
  digest: string;
  finishedAt: number;
}

export class BulkReceiver {
  readonly #conn: TransportConnection;
  readonly #streams = new Map<number, RecvStream>();
  readonly #readable: number[] = [];
  #finished = 0;
  bytesReceived = 0;
  /** Virtual time the last expected stream finished (NaN before). */
  doneAt = Number.NaN;
  closed: Extract<ConnectionEvent, { type: 'closed' }> | null = null;
  readonly errors: string[] = [];
  readonly #expectedStreams: number;
  /** Called with (now, total bytes) whenever bytes arrive; for time series. */
  onBytes: ((now: number, total: number) => void) | null = null;

  constructor(conn: TransportConnection, expectedStreams: number) {
    this.#conn = conn;
    this.#expectedStreams = expectedStreams;
  }

  get done(): boolean {
    return this.#finished >= this.#expectedStreams;
  }

  digests(): Map<number, string> {
    return new Map([...this.#streams.values()].map((s) => [s.id, s.digest]));
  }

  onWake = (now: number): void => {
    // Reading can itself produce events (the FIN becomes 'stream-finished' once the last
    // byte is read), so poll again until both are quiet.
    for (let i = 0; i < 1000; i++) {
      if (!this.#pollEvents(now) && this.#readable.length === 0) return;
      while (this.#readable.length > 0) this.#drain(this.#readable.pop()!, now);
    }
    throw new Error('BulkReceiver: events keep coming without progress');
  };

  #pollEvents(now: number): boolean {
    const conn = this.#conn;
    let any = false;
    let e: ConnectionEvent | null;
    while ((e = conn.pollEvent()) !== null) {
      any = true;
      switch (e.type) {
        case 'stream-opened':
          this.#stream(e.streamId);
          break;
        case 'stream-readable':
          this.#readable.push(e.streamId);
          break;
        case 'stream-finished': {
          this.#drain(e.streamId, now);
          const s = this.#stream(e.streamId);
          if (Number.isNaN(s.finishedAt)) {
            s.finishedAt = now;
            s.digest = s.hash.digest('hex');
            if (++this.#finished >= this.#expectedStreams) this.doneAt = now;
          }
          break;
        }
        case 'stream-reset':
          this.errors.push(`stream ${e.streamId} reset with code ${e.code}`);
          break;
        case 'closed':
          this.closed = e;
          break;
        default:
          break;
      }
    }
    return any;
  }

  #stream(id: number): RecvStream {
    let s = this.#streams.get(id);
    if (!s) {
      s = { id, bytes: 0, hash: createHash('sha256'), digest: '', finishedAt: Number.NaN };
      this.#streams.set(id, s);
    }
    return s;
  }

  #drain(id: number, now: number): void {
    const s = this.#stream(id);
    if (s.digest !== '') return;
    let chunk: Uint8Array | null;
    let got = 0;
    while ((chunk = this.#conn.read(id)) !== null && chunk.length > 0) {
      s.hash.update(chunk);
      s.bytes += chunk.length;
      got += chunk.length;
    }
    if (got > 0) {
      this.bytesReceived += got;
      this.onBytes?.(now, this.bytesReceived);
    }
  }
}
