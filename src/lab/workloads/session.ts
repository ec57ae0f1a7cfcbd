// Client side of the workload protocol: one TCP connection to the sink, segments written
// with backpressure, the sink's reports tracked, everything bounded by a deadline.

import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { ChunkSource } from './payload.ts';
import { decodeSinkMessage, segmentHeader, type SinkMessage } from './protocol.ts';

export class DeadlineReached extends Error {
  constructor() {
    super('time cap reached');
  }
}

export class SinkSession {
  readonly startedAt: number;
  readonly #cpuAtStart: NodeJS.CpuUsage;
  readonly #socket: Socket;
  readonly #hash: Hash = createHash('sha256');
  #lineBuffer = '';
  #waiters: Array<{ match: (m: SinkMessage) => boolean; resolve: (m: SinkMessage) => void; reject: (e: Error) => void }> = [];
  #failure: Error | null = null;
  #deadlineTimer: NodeJS.Timeout;
  /** Payload bytes the sink has confirmed (periodic reports; at most ~100 ms stale). */
  ackedBytes = 0;
  sentBytes = 0;
  #segments = 0;
  onProgress: ((ackedBytes: number) => void) | null = null;

  private constructor(socket: Socket, startedAt: number, cpuAtStart: NodeJS.CpuUsage, deadline: number) {
    this.#socket = socket;
    this.startedAt = startedAt;
    this.#cpuAtStart = cpuAtStart;
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => this.#onData(text));
    socket.on('error', (e) => this.#fail(e));
    socket.on('close', () => this.#fail(new Error('connection closed by peer')));
    this.#deadlineTimer = setTimeout(() => this.#fail(new DeadlineReached()), Math.max(0, deadline - performance.now()));
  }

  /** Connect (the run's clock starts before connecting) with a hard deadline for everything. */
  static async open(host: string, port: number, capSeconds: number): Promise<SinkSession> {
    const startedAt = performance.now();
    const cpuAtStart = process.cpuUsage();
    const deadline = startedAt + capSeconds * 1000;
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new DeadlineReached()), capSeconds * 1000);
    try {
      await once(socket, 'connect');
    } finally {
      clearTimeout(timer);
    }
    return new SinkSession(socket, startedAt, cpuAtStart, deadline);
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  /** This process's CPU seconds since the clock started (the run's, not the payload's set-up). */
  get cpuSeconds(): number {
    const u = process.cpuUsage(this.#cpuAtStart);
    return (u.user + u.system) / 1e6;
  }

  get capped(): boolean {
    return this.#failure instanceof DeadlineReached;
  }

  #onData(text: string): void {
    this.#lineBuffer += text;
    let nl: number;
    while ((nl = this.#lineBuffer.indexOf('\n')) >= 0) {
      const line = this.#lineBuffer.slice(0, nl);
      this.#lineBuffer = this.#lineBuffer.slice(nl + 1);
      const m = decodeSinkMessage(line);
      if (m.t === 'invalid') {
        this.#fail(new Error(`sink sent an invalid line: ${m.line.slice(0, 80)}`));
        return;
      }
      if (m.t === 'error') {
        this.#fail(new Error(`sink: ${m.reason}`));
        return;
      }
      if (m.bytes > this.ackedBytes) {
        this.ackedBytes = m.bytes;
        this.onProgress?.(this.ackedBytes);
      }
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.match(m)) return true;
        w.resolve(m);
        return false;
      });
    }
  }

  #fail(e: Error): void {
    if (this.#failure) return;
    this.#failure = e;
    clearTimeout(this.#deadlineTimer);
    for (const w of this.#waiters) w.reject(e);
    this.#waiters = [];
    this.#socket.destroy();
  }

  #waitFor(match: (m: SinkMessage) => boolean): Promise<SinkMessage> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiters.push({ match, resolve, reject }));
  }

  async #write(data: Buffer): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (!this.#socket.write(data)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve();
        };
        // A failure while blocked on drain must not hang: park a waiter that only rejects.
        const waiter = {
          match: () => false,
          resolve: () => {},
          reject: (e: Error) => {
            this.#socket.off('drain', onDrain);
            reject(e);
          },
        };
        this.#waiters.push(waiter);
        this.#socket.once('drain', onDrain);
      });
    }
  }

  /** Send one segment of `source`'s bytes; resolves when the sink confirms its arrival. */
  async sendSegment(source: ChunkSource): Promise<void> {
    if (source.bytes === 0) return; // a zero-length segment would mean end of stream
    const index = this.#segments++;
    const arrived = this.#waitFor((m) => m.t === 'seg' && m.index === index);
    arrived.catch(() => {}); // observed below; avoid an unhandled rejection if writing fails first
    await this.#write(segmentHeader(source.bytes));
    let chunk: Buffer | null;
    while ((chunk = source.next())) {
      this.#hash.update(chunk);
      this.sentBytes += chunk.length;
      await this.#write(chunk);
    }
    await arrived;
  }

  /** End the stream and check the sink's count and hash against what was sent. */
  async finish(): Promise<{ bytes: number; verified: boolean; sinkSha256: string; sha256: string }> {
    const done = this.#waitFor((m) => m.t === 'done');
    done.catch(() => {});
    await this.#write(segmentHeader(0));
    const m = (await done) as Extract<SinkMessage, { t: 'done' }>;
    const sha256 = this.#hash.digest('hex');
    return { bytes: m.bytes, verified: m.bytes === this.sentBytes && m.sha256 === sha256, sinkSha256: m.sha256, sha256 };
  }

  close(): void {
    clearTimeout(this.#deadlineTimer);
    this.#failure ??= new Error('closed');
    this.#socket.destroy();
  }
}
