// A small client of the QEMU Machine Protocol (JSON lines over a Unix socket): the greeting,
// qmp_capabilities, then one command at a time with an id; asynchronous events are kept.
// https://www.qemu.org/docs/master/interop/qmp-spec.html

import type { Socket } from 'node:net';
import { connectWithRetry } from './unix-socket.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  override name = 'QmpError';
}

const COMMAND_TIMEOUT_MS = 30_000;

export class QmpClient {
  readonly #socket: Socket;
  #buffer = '';
  #nextId = 1;
  readonly #waiting = new Map<string, { done: (v: unknown) => void; fail: (e: Error) => void; timer: NodeJS.Timeout }>();
  #closedError: Error | null = null;
  readonly events: QmpEvent[] = [];

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.#receive(d));
    const closed = (e?: Error) => {
      this.#closedError ??= new QmpError(`QMP connection closed${e ? `: ${e.message}` : ''}`);
      for (const w of this.#waiting.values()) {
        clearTimeout(w.timer);
        w.fail(this.#closedError);
      }
      this.#waiting.clear();
    };
    socket.on('error', closed);
    socket.on('close', () => closed());
  }

  /** Connects (retrying while QEMU creates the socket, up to `timeoutMs`) and leaves capabilities negotiation done. */
  static async connect(path: string, timeoutMs = 15_000): Promise<QmpClient> {
    return connectWithRetry(path, timeoutMs, 'QMP', async (socket, deadline) => {
      const client = new QmpClient(socket);
      try {
        await client.#greeting(deadline - Date.now());
        await client.execute('qmp_capabilities');
      } catch (e) {
        socket.destroy();
        throw e;
      }
      return client;
    });
  }

  #greetingWaiter: ((ok: boolean) => void) | null = null;
  #greeted = false;

  #greeting(timeoutMs: number): Promise<void> {
    if (this.#greeted) return Promise.resolve();
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new QmpError('no QMP greeting')), Math.max(1, timeoutMs));
      this.#greetingWaiter = (ok) => {
        clearTimeout(timer);
        if (ok) done();
        else fail(new QmpError('QMP closed before its greeting'));
      };
      this.#socket.once('close', () => this.#greetingWaiter?.(false));
    });
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line === '') continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ('QMP' in msg) {
        this.#greeted = true;
        this.#greetingWaiter?.(true);
      } else if (typeof msg.event === 'string') {
        this.events.push(msg as unknown as QmpEvent);
      } else if (typeof msg.id === 'string') {
        const w = this.#waiting.get(msg.id);
        if (!w) continue;
        this.#waiting.delete(msg.id);
        clearTimeout(w.timer);
        if ('error' in msg) {
          const err = msg.error as { class?: string; desc?: string };
          w.fail(new QmpError(`${err.class ?? 'Error'}: ${err.desc ?? JSON.stringify(err)}`));
        } else {
          w.done(msg.return);
        }
      }
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = `lh-${this.#nextId++}`;
    return new Promise<T>((done, fail) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        fail(new QmpError(`${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, { done: done as (v: unknown) => void, fail, timer });
      this.#socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
