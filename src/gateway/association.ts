// Drives one sans-IO TransportConnection over real I/O: datagrams in, one flush per
// event-loop turn (all datagrams that arrived in that turn are handled before the core is
// polled), and ONE timer armed at the core's nextTimeout (which includes the pacer's next
// release), never a timer per packet.
//
// The datapath, in the order it runs (one thread: Node's event loop; its phases in brackets):
//
// Outbound flow
//   1. [poll] TCP bytes arrive on a tunnel's socket: the bridge (bridge.ts) frames them as
//      compression blocks and writes them into the stream (Association.write), which schedules
//      a flush (setImmediate).
//   2. [check, or timers when the pacer or a deadline woke us] Association.#flush: due
//      timeouts first, then the security layer's transmitter (wan-security.ts) polls the core
//      for datagrams (Connection.pollTransmitInto), each written straight into the peer's
//      DatagramBatch with room left for the packet-protection header and tag.
//   3. Same call: the batch is sealed in one AEAD call (SecureEndpoint.sealRun) and handed to
//      the link finished (UdpLink.sendBatch): one sendmmsg, runs of equal sizes as UDP GSO
//      messages. What the kernel refuses waits in the link's backlog for writability [poll];
//      the link never calls back into the layers above.
//   4. Events the core queued (stream writable, readable...) go to the bridges, which may write
//      or read more (their schedule() meanwhile asks for another round, not another flush); the
//      flush alternates a few rounds, then arms the one timer.
//
// Inbound flow
//   1. [poll, or the coalescing timer in poll] lh_udp reads up to 64 datagrams per recvmmsg,
//      each with the kernel's arrival time; while datagrams come fast (4 or more per pause
//      length) the socket is left unread for the coalescing pause after a batch (udp-link.ts
//      RECV_COALESCING_US, longer for a peer whose data comes slowly over a long path:
//      pathCoalescingUs) so the next read takes a full batch; slower ones (a sender's acks)
//      are read as they arrive. One JavaScript call per batch.
//   2. Same call: the security layer checks each datagram's keys and replay window and queues
//      data messages; at the batch's end it opens them in runs (one AEAD call per run) and
//      routes each plaintext by connection id to its association (Association.input), which
//      hands it to the core with its arrival time and schedules a flush.
//   3. [check] The flush of outbound step 2: ACKs for the batch, and data the freed window
//      lets out; readable stream data goes to the bridge, decoded and written to the TCP
//      socket corked (one writev per turn).
import { performance } from 'node:perf_hooks';
import { type BlockEncoder, PathMemory } from '../codec/index.ts';
import type { ConnectionEvent, ConnectionStats, TransportConnection } from '../transport/index.ts';
import type { Endpoint } from './address.ts';
import type { LivenessWatch } from './liveness.ts';
import type { OutageWatch } from './outage.ts';
import type { SwitchableRateController } from './rate-switch.ts';

/** What a stream's owner (a tunnel bridge, or a far-side open in progress) hears. */
export interface StreamListener {
  onReadable(): void;
  onWritable(): void;
  onFinished(): void;
  onReset(code: number): void;
  onClosed(): void;
  /** The association died; the stream is gone without any more events. */
  onAssociationClosed(reason: string): void;
}

/** What the gateway hears from an association; each call names the association it is about. */
export interface AssociationHooks {
  /**
   * Moves up to `max` of the connection's datagrams out (polled into a batch, sealed, sent):
   * how many left, 0 when nothing may leave now. `now`: the flush's clock reading.
   */
  transmit(assoc: Association, conn: TransportConnection, now: number, max: number): number;
  onConnected(assoc: Association): void;
  onStreamOpened(assoc: Association, streamId: number): void;
  onClosed(assoc: Association, code: number, reason: string, byPeer: boolean): void;
}

/**
 * Bytes seen at the TCP side (raw) and received at the UDP side (wire) of one association; the
 * wire bytes sent are the transport's own count (ConnectionStats.bytesSent).
 */
export interface TrafficCounters {
  rawOut: number;
  rawIn: number;
  wireIn: number;
  /** Times a connection stopped reading TCP for the rest of an event-loop turn (bridge.ts's read budget). */
  readYields: number;
}

/** Who the association is with, and the gateway's watches over it: fixed for its life. */
export interface AssociationSetup {
  peerName: string;
  role: 'client' | 'server';
  /** The peer's configured (client) or first-seen (server) address. */
  remote: Endpoint;
  /** Restart detection (associations we opened only: the answering side cannot re-handshake). */
  watch: LivenessWatch | null;
  /** WAN outage detection (both sides). */
  outage: OutageWatch;
  /** The transport's rate controller, behind a forwarder a reload can re-point (rate-switch.ts). */
  rate: SwitchableRateController;
}

// A TCP read is at most this long (Node reads 64 KiB at a time).
const READ_AHEAD_BYTES = 64 * 1024;
// A flush sends at most this many datagrams before yielding to the event loop, so a
// large paced burst cannot starve receive processing (acks) or TCP reads.
const MAX_TRANSMITS_PER_FLUSH = 512;
// Only deadlines already due are served by setImmediate; anything later (the pacer's next
// quantum included) sleeps on a timer of >= 1 ms. The pacer's bucket holds 2 ms of rate, so
// waking late loses no rate, and each wake-up sends a whole quantum in one batch instead of
// spinning the event loop for one or two packets at a time.
// A timer already armed within this much of a new deadline is kept (timers have ~1 ms
// granularity; re-arming on every ack-driven flush would cost more than it gains).
const TIMER_SLACK_MS = 0.5;
// The gateway stops reading its TCP sockets while more than this many bytes were written
// to the core but not yet sent once; together with the congestion window (unacked bytes)
// and the receive window it bounds association memory regardless of stream count.
export const DEFAULT_SEND_BACKLOG_BYTES = 8 * 1024 * 1024;

export class Association {
  // The core, reached only through this class: every call that may produce packets schedules a flush.
  readonly #conn: TransportConnection;
  readonly peerName: string;
  readonly role: 'client' | 'server';
  readonly remote: Endpoint;
  readonly watch: LivenessWatch | null;
  readonly outage: OutageWatch;
  readonly rate: SwitchableRateController;
  readonly createdAt = Date.now();
  readonly traffic: TrafficCounters = { rawOut: 0, rawIn: 0, wireIn: 0, readYields: 0 };
  /** Sampled once a second (the gateway's sampler) for the measured send/receive rates. */
  lastSample = { at: performance.now(), wireOut: 0, wireIn: 0, rawOut: 0, rawIn: 0, packetsIn: 0 };
  rates = { wireOutBps: 0, wireInBps: 0, rawOutBps: 0, rawInBps: 0 };
  /** The compressors of this association's streams: they follow its bandwidth estimate. */
  readonly encoders = new Set<BlockEncoder>();
  /** What those compressors learned about this path, for the next streams to start from. */
  readonly pathMemory = new PathMemory();
  /** New connections waiting to learn whether a suspect association is alive. */
  readonly verdictWaiters: Array<() => void> = [];
  /** When the last authenticated datagram arrived (performance.now()); restart detection reads it. */
  lastInputAt = performance.now();
  /** Per-stream owners; events for unknown streams are dropped. */
  readonly streams = new Map<number, StreamListener>();
  #hooks: AssociationHooks;
  #flushScheduled = false;
  // Inside #flush, and whether something asked for one meanwhile (schedule()).
  #flushing = false;
  #flushAgain = false;
  #timer: NodeJS.Timeout | null = null;
  #timerDeadline = -1;
  #closedNotified = false;
  #connectedWaiters: Array<(ok: boolean) => void> = [];
  #sendBacklogLimit: number;
  /** Bytes handed to write(); compared with stats.streamBytesSent for the backlog. */
  #bytesWritten = 0;
  #backlogBlocked = new Set<() => void>();
  #lastStats: ConnectionStats | null = null;
  /** Driver counters: flushes run, timer wake-ups, datagrams sent (per-flush batching = sent / flushes). */
  readonly driver = { flushes: 0, timerWakeups: 0, transmits: 0 };
  /** The receive coalescing pause the gateway last set for this peer's datagrams (µs; 0 until set). */
  recvCoalescingUs = 0;

  constructor(conn: TransportConnection, setup: AssociationSetup, hooks: AssociationHooks, sendBacklogLimit = DEFAULT_SEND_BACKLOG_BYTES) {
    this.#conn = conn;
    this.peerName = setup.peerName;
    this.role = setup.role;
    this.remote = setup.remote;
    this.watch = setup.watch;
    this.outage = setup.outage;
    this.rate = setup.rate;
    this.#hooks = hooks;
    this.#sendBacklogLimit = sendBacklogLimit;
  }

  get isClosed(): boolean {
    return this.#closedNotified || this.#conn.isClosed;
  }

  /** A datagram from the peer, received at `now` (performance.now()). */
  input(data: Uint8Array, now = performance.now()): void {
    if (this.#closedNotified) return;
    this.lastInputAt = now;
    this.#conn.handleDatagram(data, now);
    this.schedule();
  }

  /** Ask for a flush at the end of this event-loop turn (coalesced). */
  schedule(): void {
    // Asked from within a flush (a bridge writing or reading while it hears an event): the flush
    // takes another round for it instead of a flush of its own in the next turn.
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    if (this.#flushScheduled || this.#closedNotified) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  /** Resolves true once connected, false if the association closes or `timeoutMs` passes. */
  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.#conn.isConnected) return Promise.resolve(true);
    if (this.isClosed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        const i = this.#connectedWaiters.indexOf(done);
        if (i >= 0) this.#connectedWaiters.splice(i, 1);
        resolve(ok);
      };
      this.#connectedWaiters.push(done);
    });
  }

  get isConnected(): boolean {
    return this.#conn.isConnected;
  }

  /** A new locally opened stream, or -1 at the peer's stream limit. */
  openStream(): number {
    return this.#conn.openStream();
  }

  /** In-order bytes copied out (the credit they return is announced). */
  read(streamId: number, max: number): Uint8Array | null {
    const data = this.#conn.read(streamId, max);
    if (data !== null) this.schedule();
    return data;
  }

  finish(streamId: number): void {
    this.#conn.finish(streamId);
    this.schedule();
  }

  resetStream(streamId: number, code: number): void {
    if (this.isClosed) return;
    this.#conn.resetStream(streamId, code);
    this.schedule();
  }

  /** Frees the rings of streams that hold nothing (once a second). */
  trimBuffers(): void {
    this.#conn.trimBuffers();
  }

  bufferedBytes(): ReturnType<TransportConnection['bufferedBytes']> {
    return this.#conn.bufferedBytes();
  }

  /** In-order bytes as a view of the stream's receive ring: release() them once they are written. */
  readView(streamId: number, max: number): Uint8Array | null {
    return this.#conn.readView(streamId, max);
  }

  release(streamId: number, bytes: number): void {
    if (this.#conn.release(streamId, bytes)) this.schedule();
  }

  write(streamId: number, data: Uint8Array): number {
    const n = this.#conn.write(streamId, data);
    this.#bytesWritten += n;
    if (n > 0) this.schedule();
    return n;
  }

  /** True when TCP readers should pause; `resume` is called once the backlog drains. */
  sendBacklogFull(resume: () => void): boolean {
    const stats = this.#lastStats;
    if (!stats || this.#bytesWritten - stats.streamBytesSent < this.#sendBacklogLimit) return false;
    this.#backlogBlocked.add(resume);
    // Every other socket still reading would read a chunk it cannot write: stop them all now.
    if (this.#readers.size > 0) {
      const readers = [...this.#readers];
      this.#readers.clear();
      for (const stop of readers) stop();
    }
    return true;
  }

  /** TCP sockets reading for this association: each stops (and waits its turn) once the backlog is full. */
  readonly #readers = new Set<() => void>();

  /** `stop` is called when the backlog fills while this socket reads. */
  reading(stop: () => void, on: boolean): void {
    if (on) this.#readers.add(stop);
    else this.#readers.delete(stop);
  }

  cancelBacklogWait(resume: () => void): void {
    this.#backlogBlocked.delete(resume);
  }

  /**
   * Bytes the bridges read from TCP and hold unwritten (gathered into compression blocks, or
   * refused by a full backlog), which the backlog does not count. Thousands of connections
   * gathering at once held up to 256 KiB each, 700 MiB in all.
   */
  heldBytes = 0;

  /**
   * True while the bridges hold an eighth of a send backlog (4 MiB at the default budget): no more
   * gathering. A bulk transfer gathers one block (256 KiB) at a time; 5000 connections gathering
   * up to a whole backlog held 34 MB of reads that compressed nothing (random data).
   */
  gatherFull(): boolean {
    return this.heldBytes >= this.#sendBacklogLimit / 8;
  }

  stats(): ConnectionStats {
    return this.#conn.stats();
  }

  /** Bytes written but not yet sent once, and how many TCP readers wait for that to drain. */
  backlog(): { bytes: number; blockedReaders: number } {
    const sent = this.#lastStats ? this.#lastStats.streamBytesSent : 0;
    return { bytes: this.#bytesWritten - sent, blockedReaders: this.#backlogBlocked.size };
  }

  close(code: number, reason: string): void {
    if (this.#conn.isClosed) return;
    this.#conn.close(code, reason, performance.now());
    this.schedule();
  }

  /**
   * The peer no longer has this association (it restarted): nothing can be sent to it any
   * more, not even CLOSE. Streams and their owners are told at once with `reason`.
   */
  abandon(reason: string): void {
    this.#notifyClosed(0, reason, true);
  }

  #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#closedNotified) return;
    this.driver.flushes++;
    const conn = this.#conn;
    const now = performance.now();
    const deadline = conn.nextTimeout();
    if (deadline !== null && deadline <= now) conn.handleTimeout(now);
    let sent = 0;
    // Events may cause writes/reads, which produce more to send (credit returned by a read, data
    // written): alternate a few rounds. A bridge's schedule() meanwhile asks for another round
    // (#flushAgain); one that came in the last round gets a flush of its own below.
    this.#flushing = true;
    try {
      for (let round = 0; round < 4; round++) {
        if (sent < MAX_TRANSMITS_PER_FLUSH) sent += this.#hooks.transmit(this, conn, now, MAX_TRANSMITS_PER_FLUSH - sent);
        this.#flushAgain = false;
        let any = false;
        let ev: ConnectionEvent | null;
        while ((ev = conn.pollEvent()) !== null) {
          any = true;
          this.#dispatch(ev);
          if (this.#closedNotified) return;
        }
        if (!any && !this.#flushAgain) break;
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#flushAgain) this.schedule();
    this.driver.transmits += sent;
    this.#lastStats = conn.stats();
    // Re-sync with the core, which subtracts what stream resets dropped unsent: counting only
    // our own writes would keep reset connections' bytes as backlog and stall new ones.
    this.#bytesWritten = this.#lastStats.streamBytesWritten;
    const backlog = this.#bytesWritten - this.#lastStats.streamBytesSent;
    if (this.#backlogBlocked.size > 0 && backlog < this.#sendBacklogLimit / 2) {
      // Only as many readers as the room takes (each reads up to a TCP read, 64 KiB, before it
      // hears the backlog is full again): waking thousands at once had each read a chunk it could
      // not write, and those chunks waited in memory (5000 connections: hundreds of MiB).
      let room = this.#sendBacklogLimit - backlog;
      for (const resume of this.#backlogBlocked) {
        if (room <= 0) break;
        this.#backlogBlocked.delete(resume);
        room -= READ_AHEAD_BYTES;
        resume();
      }
    }
    if (conn.isClosed) {
      this.#notifyClosed(0, 'connection closed', false);
      return;
    }
    if (sent >= MAX_TRANSMITS_PER_FLUSH) {
      this.schedule();
      return;
    }
    this.#armTimer(now);
  };

  #armTimer(now: number): void {
    const deadline = this.#conn.nextTimeout();
    if (deadline === null) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      this.#timerDeadline = -1;
      return;
    }
    if (deadline <= now) {
      this.schedule();
      return;
    }
    if (this.#timer && Math.abs(this.#timerDeadline - deadline) <= TIMER_SLACK_MS) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerDeadline = deadline;
    this.#timer = setTimeout(this.#onTimer, Math.max(1, Math.ceil(deadline - now)));
  }

  #onTimer = (): void => {
    this.driver.timerWakeups++;
    this.#timer = null;
    this.#timerDeadline = -1;
    this.#flushScheduled = true;
    this.#flush();
  };

  #dispatch(ev: ConnectionEvent): void {
    switch (ev.type) {
      case 'connected':
        for (const w of [...this.#connectedWaiters]) w(true);
        this.#hooks.onConnected(this);
        break;
      case 'stream-opened':
        this.#hooks.onStreamOpened(this, ev.streamId);
        break;
      case 'stream-readable':
        this.streams.get(ev.streamId)?.onReadable();
        break;
      case 'stream-writable':
        this.streams.get(ev.streamId)?.onWritable();
        break;
      case 'stream-finished':
        this.streams.get(ev.streamId)?.onFinished();
        break;
      case 'stream-reset':
        this.streams.get(ev.streamId)?.onReset(ev.code);
        break;
      case 'stream-closed':
        this.streams.get(ev.streamId)?.onClosed();
        break;
      case 'closed':
        this.#notifyClosed(ev.code, ev.reason, ev.byPeer);
        break;
    }
  }

  #notifyClosed(code: number, reason: string, byPeer: boolean): void {
    if (this.#closedNotified) return;
    this.#closedNotified = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const w of [...this.#connectedWaiters]) w(false);
    const why = reason || `association closed (code ${code})`;
    for (const l of [...this.streams.values()]) l.onAssociationClosed(why);
    this.streams.clear();
    for (const resume of this.#backlogBlocked) resume();
    this.#backlogBlocked.clear();
    this.#hooks.onClosed(this, code, reason, byPeer);
  }
}
