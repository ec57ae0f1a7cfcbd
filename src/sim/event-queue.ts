// Binary min-heap of simulator events ordered by (time, insertion order), so events at
// the same virtual time run in the order they were scheduled: runs are deterministic.
// Event objects are pooled: the simulator schedules one per packet, and allocating them
// would dominate a 256 MiB run.

export interface SimEvent {
  time: number;
  seq: number;
  /** Handler kind chosen by the owner (e.g. packet arrival, callback). */
  kind: number;
  /** Packet bytes for arrivals. */
  data: Uint8Array | null;
  /** Owner-defined target (a link, a callback). */
  target: unknown;
}

export class EventQueue {
  readonly #heap: SimEvent[] = [];
  readonly #pool: SimEvent[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** Time of the earliest event, Infinity when empty. */
  peekTime(): number {
    return this.#heap.length > 0 ? this.#heap[0]!.time : Infinity;
  }

  push(time: number, kind: number, target: unknown, data: Uint8Array | null): void {
    const e = this.#pool.pop() ?? { time: 0, seq: 0, kind: 0, data: null, target: null };
    e.time = time;
    e.seq = this.#seq++;
    e.kind = kind;
    e.target = target;
    e.data = data;
    const heap = this.#heap;
    let i = heap.length;
    heap.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(e, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = e;
  }

  /** Removes the earliest event; hand it back with `release` once its fields were read. */
  pop(): SimEvent | undefined {
    const heap = this.#heap;
    const n = heap.length;
    if (n === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (n > 1) {
      const size = n - 1;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const r = l + 1;
        const child = r < size && before(heap[r]!, heap[l]!) ? r : l;
        const c = heap[child]!;
        if (!before(c, last)) break;
        heap[i] = c;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  release(e: SimEvent): void {
    e.data = null;
    e.target = null;
    this.#pool.push(e);
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
