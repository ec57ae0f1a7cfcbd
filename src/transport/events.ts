// The connection's outgoing events, in the order they happened: the connection and its streams
// push, the driver polls (pollEvent). A plain array with a read head, so polling does not shift.

import type { ConnectionEvent } from './types.ts';

export class EventQueue {
  readonly #events: ConnectionEvent[] = [];
  #head = 0;

  push(e: ConnectionEvent): void {
    this.#events.push(e);
  }

  /** Something pushed and not yet polled. */
  get hasPending(): boolean {
    return this.#head < this.#events.length;
  }

  poll(): ConnectionEvent | null {
    const events = this.#events;
    if (this.#head >= events.length) {
      if (events.length > 0) {
        events.length = 0;
        this.#head = 0;
      }
      return null;
    }
    const e = events[this.#head]!;
    events[this.#head++] = undefined as unknown as ConnectionEvent;
    return e;
  }
}
