// The host's end of the guest's control line: the second serial port of a QEMU guest, exposed
// as a Unix socket chardev. lh-guestload writes one line per message ("ready ...", "hb ...",
// "verified ...", "error ..."), words of key=value after a type; the host writes commands.

import type { Socket } from 'node:net';
import { connectWithRetry } from './unix-socket.ts';

export interface GuestMessage {
  type: string;
  fields: Record<string, string>;
  /** When the host read it (performance.now()). */
  at: number;
}

export function parseGuestLine(line: string): GuestMessage | null {
  const words = line.trim().split(/\s+/);
  const type = words[0];
  if (type === undefined || !/^[a-z]+$/.test(type)) return null;
  const fields: Record<string, string> = {};
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) fields[w.slice(0, eq)] = w.slice(eq + 1);
  }
  return { type, fields, at: performance.now() };
}

export class GuestChannel {
  readonly #socket: Socket;
  #buffer = '';
  readonly messages: GuestMessage[] = [];
  #listeners: Array<() => void> = [];
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.#receive(d));
    socket.on('error', () => {
      this.#closed = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  static connect(path: string, timeoutMs = 15_000): Promise<GuestChannel> {
    return connectWithRetry(path, timeoutMs, 'guest control socket', (socket) => new GuestChannel(socket));
  }

  #wake(): void {
    const l = this.#listeners;
    this.#listeners = [];
    for (const f of l) f();
  }

  #receive(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const m = parseGuestLine(this.#buffer.slice(0, nl));
      this.#buffer = this.#buffer.slice(nl + 1);
      if (m) this.messages.push(m);
    }
    // A line that never ends is noise (or a guest gone mad): keep the buffer bounded.
    if (this.#buffer.length > 4096) this.#buffer = '';
    this.#wake();
  }

  /** The first message from index `from` on that matches, waiting up to `timeoutMs`. */
  async waitFor(match: (m: GuestMessage) => boolean, timeoutMs: number, from = 0): Promise<GuestMessage> {
    const deadline = performance.now() + timeoutMs;
    let index = from;
    for (;;) {
      for (; index < this.messages.length; index++) {
        const m = this.messages[index]!;
        if (m.type === 'error') throw new Error(`guest: ${m.type} ${JSON.stringify(m.fields)}`);
        if (match(m)) return m;
      }
      const left = deadline - performance.now();
      if (left <= 0)
        throw new Error(`guest: no matching message within ${timeoutMs} ms (last: ${JSON.stringify(this.messages.at(-1) ?? null)})`);
      if (this.#closed) throw new Error('guest control socket closed');
      await new Promise<void>((done) => {
        const timer = setTimeout(done, left);
        this.#listeners.push(() => {
          clearTimeout(timer);
          done();
        });
      });
    }
  }

  send(command: string): void {
    this.#socket.write(`${command}\n`);
  }

  lastHeartbeat(): GuestMessage | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) if (this.messages[i]!.type === 'hb') return this.messages[i];
    return undefined;
  }

  close(): void {
    this.#socket.destroy();
  }
}
