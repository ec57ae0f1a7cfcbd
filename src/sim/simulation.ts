// Deterministic discrete-event network simulator in virtual time. Nodes are sans-IO
// endpoints (anything shaped like TransportConnection); links carry their datagrams.
// Same seed, same nodes, same driver => the same run, event for event.

import { EventQueue } from './event-queue.ts';
import { Link, type LinkOptions } from './link.ts';
import { Prng } from './prng.ts';
import { WIRE_OVERHEAD_BYTES } from '../link/profiles.ts';

/** What the simulator needs from an endpoint (TransportConnection satisfies it). */
export interface SimNode {
  handleDatagram(data: Uint8Array, now: number): void;
  handleTimeout(now: number): void;
  pollTransmit(now: number): { data: Uint8Array } | null;
  nextTimeout(): number | null;
}

export interface NodeOptions {
  /**
   * Application driver: called after every input to the node (datagram, timer, wake) and
   * before its transmits are drained, so it can poll events, read and write.
   */
  onWake?: (now: number) => void;
}

export interface RunOptions {
  /** Stop when virtual time would pass this (ms). */
  until?: number;
  /** Checked after every event; stop when it returns true. Keep it cheap. */
  stopWhen?: () => boolean;
  /** Hard bound on processed events (a run-away guard). */
  maxEvents?: number;
}

export interface RunResult {
  reason: 'stopped' | 'until' | 'idle' | 'max-events';
  now: number;
  events: number;
}

interface NodeSlot {
  node: SimNode;
  onWake: ((now: number) => void) | undefined;
  link: Link | null;
  peer: number;
  deadline: number;
  sameTimeFires: number;
  lastFireAt: number;
  /** The node gets no CPU before this time (a scheduler stall): input waits, timers are late. */
  pausedUntil: number;
}

// Event kinds below 0 are simulator-internal; kinds >= 0 are arrivals for that node index.
const KIND_CALLBACK = -1;
// A timer that keeps firing at the same instant without the node making progress is a
// bug in the node; fail loudly instead of spinning forever.
const MAX_SAME_TIME_FIRES = 100_000;

export class Simulation {
  readonly prng: Prng;
  #now = 0;
  readonly #queue = new EventQueue();
  readonly #nodes: NodeSlot[] = [];
  readonly #links: Link[] = [];
  #events = 0;

  constructor(opts: { seed: number }) {
    this.prng = new Prng(opts.seed);
  }

  get now(): number {
    return this.#now;
  }

  get events(): number {
    return this.#events;
  }

  addNode(node: SimNode, opts: NodeOptions = {}): number {
    this.#nodes.push({
      node,
      onWake: opts.onWake,
      link: null,
      peer: -1,
      deadline: Infinity,
      sameTimeFires: 0,
      lastFireAt: -1,
      pausedUntil: -Infinity,
    });
    return this.#nodes.length - 1;
  }

  /** A link with its own random stream (forked from the simulation's seed). */
  createLink(name: string, opts: LinkOptions): Link {
    const link = new Link(name, opts, this.prng.fork(), this.#scheduleArrival);
    link.sink = this.#deliver;
    this.#links.push(link);
    return link;
  }

  /** Everything `from` transmits goes through `link` to `to`. Links may be shared by several routes. */
  route(from: number, to: number, link: Link): void {
    const slot = this.#nodes[from];
    if (!slot || !this.#nodes[to]) throw new RangeError(`route: unknown node ${from} or ${to}`);
    slot.link = link;
    slot.peer = to;
  }

  /** Runs `fn` at virtual time `time` (e.g. an application action). */
  at(time: number, fn: (now: number) => void): void {
    this.#queue.push(Math.max(time, this.#now), KIND_CALLBACK, fn, null);
  }

  /**
   * The node stalls from now until `untilMs`, as a gateway does when the scheduler gives its
   * core to something else: datagrams for it queue up (in order) and are handled at once when
   * it resumes, its timer fires late, it sends nothing meanwhile. The links keep running.
   */
  pause(index: number, untilMs: number): void {
    const slot = this.#nodes[index];
    if (!slot) throw new RangeError(`pause: unknown node ${index}`);
    if (untilMs > slot.pausedUntil) slot.pausedUntil = untilMs;
  }

  /** Services a node now: its driver hook runs, its transmits leave, its timer is re-armed. */
  wake(index: number): void {
    const slot = this.#nodes[index];
    if (!slot) throw new RangeError(`wake: unknown node ${index}`);
    this.#service(slot);
  }

  run(opts: RunOptions = {}): RunResult {
    const until = opts.until ?? Infinity;
    const maxEvents = opts.maxEvents ?? Infinity;
    const stopWhen = opts.stopWhen;
    const queue = this.#queue;
    const nodes = this.#nodes;
    // First run: let every node send what it has (a client's handshake).
    if (this.#events === 0) for (const slot of nodes) this.#service(slot);
    let processed = 0;
    for (;;) {
      if (stopWhen?.()) return this.#result('stopped');
      if (processed >= maxEvents) return this.#result('max-events');
      let next = queue.peekTime();
      let timerSlot: NodeSlot | null = null;
      for (let i = 0; i < nodes.length; i++) {
        const slot = nodes[i]!;
        const deadline = Math.max(slot.deadline, slot.pausedUntil);
        if (deadline < next) {
          next = deadline;
          timerSlot = slot;
        }
      }
      if (next === Infinity) return this.#result('idle');
      if (next > until) {
        this.#now = Math.max(this.#now, until);
        return this.#result('until');
      }
      if (next > this.#now) this.#now = next;
      processed++;
      this.#events++;
      if (timerSlot !== null) {
        this.#fireTimer(timerSlot);
        continue;
      }
      const e = queue.pop()!;
      const kind = e.kind;
      if (kind === KIND_CALLBACK) {
        const fn = e.target as (now: number) => void;
        queue.release(e);
        fn(this.#now);
      } else {
        const link = e.target as Link;
        const data = e.data!;
        queue.release(e);
        const paused = nodes[kind]?.pausedUntil ?? -Infinity;
        if (paused > this.#now) queue.push(paused, kind, link, data);
        else link.arrive(data, this.#now, kind);
      }
    }
  }

  #result(reason: RunResult['reason']): RunResult {
    return { reason, now: this.#now, events: this.#events };
  }

  #fireTimer(slot: NodeSlot): void {
    const now = this.#now;
    if (slot.lastFireAt === now) {
      if (++slot.sameTimeFires > MAX_SAME_TIME_FIRES) {
        throw new Error(`simulator: node timer fired ${MAX_SAME_TIME_FIRES} times at t=${now} ms without progress`);
      }
    } else {
      slot.lastFireAt = now;
      slot.sameTimeFires = 0;
    }
    slot.deadline = Infinity;
    slot.node.handleTimeout(now);
    this.#service(slot);
  }

  #service(slot: NodeSlot): void {
    const now = this.#now;
    slot.onWake?.(now);
    const node = slot.node;
    const link = slot.link;
    let t: { data: Uint8Array } | null;
    while ((t = node.pollTransmit(now)) !== null) {
      if (link !== null) link.send(t.data, now, slot.peer);
    }
    const d = node.nextTimeout();
    slot.deadline = d === null ? Infinity : d;
  }

  readonly #scheduleArrival = (time: number, link: Link, data: Uint8Array, tag: number): void => {
    this.#queue.push(time, tag, link, data);
  };

  readonly #deliver = (data: Uint8Array, now: number, tag: number): void => {
    const slot = this.#nodes[tag];
    if (!slot) return;
    slot.node.handleDatagram(data, now);
    this.#service(slot);
  };
}

/**
 * Link options for one direction of a profile (rate, half the RTT, loss, jitter, queue),
 * accounted as the lab emulator does: each datagram occupies the link for its UDP payload
 * plus the IPv4 + UDP headers, so simulated and emulated goodput compare directly.
 */
export function linkOptionsFromProfile(p: {
  rateBps: number;
  rttMs: number;
  lossRate: number;
  jitterMs: number;
  queueMs: number;
}): LinkOptions {
  return {
    rateBps: p.rateBps,
    delayMs: p.rttMs / 2,
    jitterMs: p.jitterMs,
    lossRate: p.lossRate,
    queueBytes: Math.round((p.rateBps / 8) * (p.queueMs / 1000)),
    overheadBytes: WIRE_OVERHEAD_BYTES,
  };
}
