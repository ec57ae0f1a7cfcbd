// One association between two gateways: a sans-IO state machine (datagrams, time and
// application calls in; datagrams, events and the next deadline out). See types.ts for the
// driver loop and docs/protocol.md "Transport packets" for the wire format.
//
// The connection runs the handshake, the close and frame dispatch, and decides which packet goes
// next; its parts keep their own state: the streams and flow control (streams/state.ts), what to
// acknowledge (ack-tracker.ts), loss recovery (recovery.ts), when a packet may leave
// (send-scheduler.ts), what goes into it (packet-builder.ts), path MTU discovery (mtud.ts), the
// idle timeout (idle.ts), and the deadlines (timer.ts).

import type { ConnectionConfig, ConnectionEvent, ConnectionStats, Millis, Transmit, TransportConnection } from './types.ts';
import type { RateController } from './congestion/controller.ts';
import { ModelBasedController } from './congestion/model-based.ts';
import { HEADER_SIZE, newHeader, readHeader, type PacketHeader } from './packet.ts';
import { HandshakeKind, decodeFrames, encodeReason, type Frame, type TransportParams } from './frame.ts';
import { Ctrl, type SentPacket } from './sent-packets.ts';
import { Recovery, type RecoveryHandler } from './recovery.ts';
import { MtuDiscovery } from './mtud.ts';
import { AckTracker, ACK_ELICITING_THRESHOLD } from './ack-tracker.ts';
import { StreamsState } from './streams/state.ts';
import { EventQueue } from './events.ts';
import { Timer, TimerTable } from './timer.ts';
import { SendScheduler } from './send-scheduler.ts';
import { admitFrames } from './admission.ts';
import { IdleTimer } from './idle.ts';
import { DatagramCounters, type ExtendedStats } from './stats.ts';
import { PacketBuilder, PacketKind } from './packet-builder.ts';

/** CLOSE codes (docs/protocol.md). Application codes start at 0x100. */
export const CloseCode = {
  NO_ERROR: 0,
  PROTOCOL_VIOLATION: 1,
  FLOW_CONTROL: 2,
  STREAM_LIMIT: 3,
  FINAL_SIZE: 4,
  /** Local only: the peer was silent for the idle timeout (never sent). */
  IDLE_TIMEOUT: 5,
  /** Local only: the handshake did not complete (never sent). */
  HANDSHAKE_TIMEOUT: 6,
  INTERNAL: 7,
  APPLICATION: 0x100,
} as const;

// Probe packets sent when the probe timeout fires (RFC 9002 §6.2.4).
const PTO_PROBES = 2;
// The closing period lasts this many probe timeouts (RFC 9000 §10.2).
const CLOSING_PTOS = 3;

/** Where the association stands. The closing states carry our CLOSE, to send (again). */
type State =
  | { readonly kind: 'handshake' }
  | { readonly kind: 'connected' }
  /** Our CLOSE went out (or is due, closeDue); repeated while the peer keeps sending, until the close timer. */
  | { readonly kind: 'closing'; readonly code: number; readonly reason: string; readonly reasonBytes: Uint8Array; closeDue: boolean }
  /** abort(): one CLOSE is due, and once it is sent the association is closed. */
  | { readonly kind: 'aborting'; readonly code: number; readonly reason: string; readonly reasonBytes: Uint8Array }
  | { readonly kind: 'closed' };
type Closing = Extract<State, { kind: 'closing' | 'aborting' }>;

const HANDSHAKE: State = { kind: 'handshake' };
const CONNECTED: State = { kind: 'connected' };
const CLOSED: State = { kind: 'closed' };

export interface ConnectionOptions {
  role: 'client' | 'server';
  config: ConnectionConfig;
  now: Millis;
}

function defaultRandom(): () => number {
  return () => crypto.getRandomValues(new Uint32Array(1))[0]! / 0x100000000;
}

export class Connection implements TransportConnection, RecoveryHandler {
  readonly role: 'client' | 'server';
  readonly #config: ConnectionConfig;
  #state: State = HANDSHAKE;
  /** The connection id is the builder's (the header's); false until the server has seen the client's. */
  #cidKnown: boolean;

  readonly #controller: RateController;
  readonly #recovery: Recovery;
  readonly #mtud: MtuDiscovery;
  readonly #scheduler: SendScheduler;
  readonly #acks: AckTracker;
  readonly #streams: StreamsState;
  readonly #timers = new TimerTable();
  readonly #events = new EventQueue();
  readonly #counters = new DatagramCounters();
  readonly #rxHeader: PacketHeader = newHeader();
  readonly #idle: IdleTimer;
  readonly #builder: PacketBuilder;

  #probesToSend = 0;
  /** Latest time seen from the driver: deadlines at or before it are not reported again. */
  #lastNow: Millis;

  constructor(opts: ConnectionOptions) {
    const { role, config, now } = opts;
    this.role = role;
    this.#config = config;
    const random = config.random ?? defaultRandom();
    this.#controller = config.rateController ? config.rateController() : new ModelBasedController({ mss: config.maxPacketSize, random });
    this.#recovery = new Recovery(this.#controller, this);
    this.#mtud = new MtuDiscovery(config.initialPacketSize, config.maxPacketSize, now);
    this.#scheduler = new SendScheduler(this.#controller, this.#recovery, this.#mtud, this.#timers, config.initialPacketSize, now);
    this.#acks = new AckTracker(Math.max(1, Math.floor(config.ackFrequency ?? ACK_ELICITING_THRESHOLD)));
    this.#streams = new StreamsState(role, config, this.#events);
    this.#idle = new IdleTimer(config.idleTimeoutMs, config.keepaliveMs, this.#timers, now);
    this.#builder = new PacketBuilder({
      role,
      config,
      recovery: this.#recovery,
      acks: this.#acks,
      streams: this.#streams,
      mtud: this.#mtud,
      scheduler: this.#scheduler,
      idle: this.#idle,
      counters: this.#counters,
    });
    this.#lastNow = now;
    this.#cidKnown = role === 'client';
    if (role === 'client') {
      const hi = (random() * 0x100000000) >>> 0;
      const lo = (random() * 0x100000000) >>> 0;
      this.#builder.setConnectionId(hi, lo);
      this.#builder.handshakeDue = true;
    }
  }

  // ------------------------------------------------------------------ public API

  get isConnected(): boolean {
    return this.#state.kind === 'connected';
  }

  get isClosed(): boolean {
    return this.#state.kind === 'closed';
  }

  /** Connection id as 16 hex digits (for logs and endpoint routing). */
  get connectionId(): string {
    return this.#builder.connectionId;
  }

  openStream(): number {
    return this.isConnected ? this.#streams.open() : -1;
  }

  write(streamId: number, data: Uint8Array): number {
    return this.isConnected ? this.#streams.write(streamId, data) : 0;
  }

  finish(streamId: number): void {
    if (this.isConnected) this.#streams.finish(streamId);
  }

  read(streamId: number, max = Infinity): Uint8Array | null {
    return this.#streams.read(streamId, max, false);
  }

  readView(streamId: number, max = Infinity): Uint8Array | null {
    return this.#streams.read(streamId, max, true);
  }

  release(streamId: number, bytes: number): boolean {
    return this.#streams.release(streamId, bytes);
  }

  resetStream(streamId: number, code: number): void {
    if (this.isConnected) this.#streams.reset(streamId, code);
  }

  close(code: number, reason: string, now: Millis): void {
    const kind = this.#state.kind;
    if (kind === 'closing' || kind === 'aborting' || kind === 'closed') return;
    if (!this.#cidKnown) {
      this.#finishClose(code, reason, false);
      return;
    }
    this.#state = { kind: 'closing', code, reason, reasonBytes: encodeReason(reason), closeDue: true };
    // Only the close timer runs from now on: stay long enough to repeat the CLOSE if the peer
    // keeps sending (RFC 9000 §10.2).
    this.#timers.stopAll();
    this.#timers.set(Timer.close, now + CLOSING_PTOS * this.#recovery.rtt.pto(this.#recovery.peerMaxAckDelay));
    this.#recovery.discardAll();
  }

  /** Sends one CLOSE and is closed as soon as it has been polled (no closing period). */
  abort(code: number, reason: string, now: Millis): void {
    if (this.isClosed) return;
    this.close(code, reason, now);
    // Closing now or before (then with the first close's code): that CLOSE goes out once more.
    const state = this.#state;
    if (state.kind === 'closing') {
      this.#state = { kind: 'aborting', code: state.code, reason: state.reason, reasonBytes: state.reasonBytes };
    }
  }

  pollEvent(): ConnectionEvent | null {
    return this.#events.poll();
  }

  nextTimeout(): Millis | null {
    const kind = this.#state.kind;
    if (kind === 'closed') return null;
    // Events queued after the driver's last pollEvent (read() can queue stream-finished)
    // are due now: a driver that arms its timer here polls them at once, not at keepalive.
    if (this.#events.hasPending) return this.#lastNow;
    if (kind !== 'closing' && kind !== 'aborting') this.#armTimers();
    const t = this.#timers.next();
    return t === Infinity ? null : t;
  }

  handleTimeout(now: Millis): void {
    const state = this.#state;
    if (state.kind === 'closed') return;
    if (now > this.#lastNow) this.#lastNow = now;
    const timers = this.#timers;
    if (state.kind === 'closing' || state.kind === 'aborting') {
      if (timers.isExpired(Timer.close, now)) this.#finishClose(state.code, state.reason, false);
      return;
    }
    this.#armTimers();
    if (timers.isExpired(Timer.idle, now)) {
      const code = state.kind === 'handshake' ? CloseCode.HANDSHAKE_TIMEOUT : CloseCode.IDLE_TIMEOUT;
      this.#finishClose(code, 'idle timeout', false);
      return;
    }
    if (timers.isExpired(Timer.lossDetection, now) && this.#recovery.onTimeout(now)) {
      this.#probesToSend = PTO_PROBES;
      if (this.#handshakeUnconfirmed()) this.#builder.handshakeDue = true;
    }
    if (timers.isExpired(Timer.pacing, now)) timers.stop(Timer.pacing);
    if (timers.isExpired(Timer.keepalive, now)) this.#builder.pingDue = true;
    this.#mtud.maybeRaise(now);
  }

  /**
   * Sets the deadlines that follow from other parts' state to their current values (the idle,
   * pacing and close timers are set where they change).
   */
  #armTimers(): void {
    const timers = this.#timers;
    timers.set(Timer.lossDetection, this.#recovery.deadline(this.#handshakeUnconfirmed()));
    timers.set(Timer.ack, this.#acks.deadline());
    const connected = this.#state.kind === 'connected';
    // Once a keepalive PING is due (it may wait for window), the deadline has done its job.
    timers.set(Timer.keepalive, connected && !this.#builder.pingDue ? this.#idle.keepaliveAt() : Infinity);
    // A probe already due waits in transmit for window; as a deadline it would fire at once, again and again.
    const probeAt = this.#mtud.nextProbeTime();
    timers.set(Timer.mtuProbe, connected && probeAt > this.#lastNow ? probeAt : Infinity);
  }

  stats(): ConnectionStats {
    const c = this.#controller;
    const counters = this.#counters;
    const streams = this.#streams;
    return {
      rttMs: this.#recovery.rtt.smoothed,
      minRttMs: this.#recovery.rtt.hasSample ? this.#recovery.rtt.min : 0,
      bandwidthBps: c.bandwidthEstimateBps(),
      pacingRateBps: c.pacingRateBps(),
      cwndBytes: c.cwndBytes(),
      bytesInFlight: this.#recovery.bytesInFlight,
      packetSize: this.#mtud.current,
      packetsSent: counters.packetsSent,
      packetsReceived: counters.packetsReceived,
      packetsLost: this.#recovery.packetsLost,
      bytesSent: counters.bytesSent,
      bytesReceived: counters.bytesReceived,
      streamBytesSent: streams.bytesSent,
      streamBytesWritten: streams.bytesWritten,
      streamBytesRetransmitted: streams.bytesRetransmitted,
      streamBytesReceived: streams.bytesReceived,
      datagramsDropped: counters.dropped,
      activeStreams: streams.count,
      sendWaits: this.#scheduler.waitTotals(this.#lastNow),
    };
  }

  bufferedBytes(): { send: number; sendAllocated: number; recv: number; recvAllocated: number } {
    return this.#streams.bufferedBytes();
  }

  /** Frees the send and receive rings of streams that hold nothing (call now and then, e.g. once a second). */
  trimBuffers(): void {
    this.#streams.trim();
  }

  /** Counters beyond ConnectionStats (diagnostics, tests). */
  extendedStats(): ExtendedStats {
    const buffered = this.#streams.bufferedBytes();
    return {
      duplicatePackets: this.#counters.duplicates,
      mtuProbesSent: this.#mtud.probesSent,
      mtuProbesLost: this.#mtud.probesLost,
      mtuBlackHoles: this.#mtud.blackHoles,
      ptoCount: this.#recovery.ptoCount,
      bufferedSendBytes: buffered.send,
      bufferedRecvBytes: buffered.recv,
      controller: this.#controller.name,
      spuriousLosses: this.#recovery.spuriousLosses,
      packetThreshold: this.#recovery.packetThreshold,
    };
  }

  // ------------------------------------------------------------------ receive path

  handleDatagram(data: Uint8Array, now: Millis): void {
    const state = this.#state;
    if (state.kind === 'closed') return;
    if (now > this.#lastNow) this.#lastNow = now;
    const counters = this.#counters;
    const hdr = this.#rxHeader;
    if (readHeader(data, hdr) !== null) {
      counters.dropped++;
      return;
    }
    if (this.#cidKnown && !this.#builder.isConnectionId(hdr.cidHi, hdr.cidLo)) {
      counters.dropped++;
      return;
    }
    const pn = hdr.packetNumber;
    if (this.#acks.isDuplicate(pn)) {
      // Duplicate or too old to tell: dropping it is harmless (its frames were applied once).
      counters.duplicates++;
      return;
    }
    const frames = decodeFrames(data, HEADER_SIZE);
    // Checked whole before anything is applied (admission.ts).
    const open = state.kind !== 'handshake';
    if (!Array.isArray(frames) || !admitFrames(frames, this.role, open, this.#cidKnown, this.#streams)) {
      counters.dropped++;
      return;
    }
    if (state.kind === 'closing' || state.kind === 'aborting') {
      // The peer is closing too (both closed at once): it needs nothing more from us, and
      // answering its CLOSE with ours would bounce CLOSEs until the closing period ends.
      for (let i = 0; i < frames.length; i++) {
        if (frames[i]!.type === 'close') {
          this.#finishClose(state.code, state.reason, false);
          return;
        }
      }
      // Repeat the CLOSE for a peer that has not seen it yet.
      if (state.kind === 'closing') state.closeDue = true;
      return;
    }
    if (!this.#cidKnown) {
      this.#builder.setConnectionId(hdr.cidHi, hdr.cidLo);
      this.#cidKnown = true;
    }

    counters.packetsReceived++;
    counters.bytesReceived += data.length;
    this.#acks.onReceived(pn, now);

    let ackEliciting = false;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.type !== 'ack' && f.type !== 'padding' && f.type !== 'close') ackEliciting = true;
      this.#applyFrame(f, now);
      if (this.isClosed) return;
    }
    this.#idle.onReceived(now);
    if (ackEliciting) this.#acks.onAckEliciting(now);
  }

  #applyFrame(f: Frame, now: Millis): void {
    switch (f.type) {
      case 'ack':
        this.#recovery.onAck(f.ranges, f.ackDelayUs / 1000, now);
        break;
      case 'stream':
        this.#streams.onStreamFrame(f.streamId, f.offset, f.data, f.fin);
        break;
      case 'handshake':
        this.#onHandshake(f.kind, f.params);
        break;
      case 'max-data':
        this.#streams.onMaxData(f.max);
        break;
      case 'max-stream-data':
        this.#streams.onMaxStreamData(f.streamId, f.max);
        break;
      case 'max-streams':
        this.#streams.onMaxStreams(f.max);
        break;
      case 'reset-stream':
        this.#streams.onResetStream(f.streamId, f.code, f.finalSize);
        break;
      case 'close':
        this.#finishClose(f.code, f.reason, true);
        break;
      case 'ping':
      case 'padding':
        break;
    }
  }

  #onHandshake(kind: number, params: TransportParams): void {
    if (kind === HandshakeKind.INIT) {
      // Server: a first INIT opens the association; a repeated one means our ACCEPT was lost.
      if (this.#state.kind === 'handshake') {
        this.#applyPeerParams(params);
        this.#state = CONNECTED;
        this.#events.push({ type: 'connected' });
      }
      this.#builder.handshakeDue = true;
      this.#acks.ackImmediately();
    } else if (this.#state.kind === 'handshake') {
      this.#applyPeerParams(params);
      this.#state = CONNECTED;
      this.#builder.handshakeDue = false;
      this.#events.push({ type: 'connected' });
    }
  }

  #applyPeerParams(p: TransportParams): void {
    this.#streams.applyPeerParams(p.maxData, p.maxStreamData, p.maxStreams);
    this.#recovery.peerMaxAckDelay = p.maxAckDelayUs / 1000;
    this.#idle.applyPeerTimeout(p.idleTimeoutMs);
    this.#mtud.setMax(p.maxPacketSize);
  }

  // ------------------------------------------------------------------ recovery callbacks

  onPacketAcked(p: SentPacket, now: Millis): void {
    this.#streams.onPacketAcked(p);
    if (p.ackLargest >= 0) this.#acks.onAckAcked(p.ackLargest);
    if (p.isMtuProbe) this.#mtud.onProbeAcked(p.size, now);
    else this.#mtud.onPacketAcked(p.size, now);
  }

  onPacketLost(p: SentPacket, now: Millis): void {
    this.#streams.onPacketLost(p);
    if (p.ctrl & Ctrl.HANDSHAKE) this.#builder.handshakeDue = this.#handshakeUnconfirmed() || this.role === 'server';
    if (p.isMtuProbe) this.#mtud.onProbeLost(p.size, now);
    else this.#mtud.onPacketLost(p.size, now, this.#recovery.rtt.pto(this.#recovery.peerMaxAckDelay));
  }

  #handshakeUnconfirmed(): boolean {
    return this.#state.kind === 'handshake' && this.role === 'client';
  }

  // ------------------------------------------------------------------ send path

  pollTransmit(now: Millis): Transmit | null {
    this.#builder.writeInto(null, 0);
    const n = this.#transmit(now);
    if (n === 0) return null;
    const buf = this.#builder.takeBuilt();
    return { data: n === buf.length ? buf : buf.subarray(0, n) };
  }

  /** The largest datagram pollTransmit can return: the room pollTransmitInto needs. */
  get maxDatagramSize(): number {
    return Math.max(this.#config.initialPacketSize, this.#config.maxPacketSize);
  }

  pollTransmitInto(now: Millis, out: Uint8Array, at: number): number {
    if (!(at >= 0 && out.length - at >= this.maxDatagramSize)) throw new RangeError('pollTransmitInto: less room than maxDatagramSize');
    this.#builder.writeInto(out, at);
    const n = this.#transmit(now);
    this.#builder.writeInto(null, 0);
    return n;
  }

  /** The next datagram's length (written where the builder was told), 0 when nothing may leave now. */
  #transmit(now: Millis): number {
    const state = this.#state;
    if (state.kind === 'closed') return 0;
    if (state.kind === 'closing') return state.closeDue ? this.#sendClose(state, now) : 0;
    if (state.kind === 'aborting') return this.#sendClose(state, now);
    if (!this.#cidKnown) return 0;
    if (now > this.#lastNow) this.#lastNow = now;
    this.#timers.stop(Timer.pacing);

    const size = this.#mtud.current;
    const ackDue = this.#acks.isDue(now);
    const builder = this.#builder;
    // Stream and control frames, and MTU probes, only once the handshake is done.
    const open = state.kind === 'connected';

    if (this.#probesToSend > 0) {
      // Probe timeout: one ack-eliciting packet regardless of window and pacing (RFC 9002 §6.2.4).
      this.#probesToSend--;
      // Before the handshake completes, every probe is an INIT (a bare PING would be dropped).
      if (this.#handshakeUnconfirmed()) builder.handshakeDue = true;
      return builder.build(now, size, PacketKind.ptoProbe, open);
    }

    const streams = this.#streams;
    const queued = streams.hasQueued();
    const wantsData = queued || builder.handshakeDue || builder.pingDue || streams.hasControlPending();
    const backlog = queued && !builder.handshakeDue ? streams.bytesWritten - streams.bytesSent : 0;
    const scheduler = this.#scheduler;
    const limit = scheduler.admit(now, size, wantsData, backlog, open);
    if (limit > 0) {
      const probe = scheduler.probe;
      const n = probe > 0 ? builder.build(now, probe, PacketKind.mtuProbe, open) : builder.build(now, limit, PacketKind.data, open);
      scheduler.onSending(now);
      if (n !== 0) return n;
    }
    if (ackDue) return builder.build(now, size, PacketKind.ackOnly, open);
    if (!scheduler.blocked && !wantsData) this.#recovery.markAppLimited();
    return 0;
  }

  #sendClose(state: Closing, now: Millis): number {
    if (state.kind === 'closing') state.closeDue = false;
    const n = this.#builder.buildClose(now, state.code, state.reasonBytes);
    if (state.kind === 'aborting') this.#finishClose(state.code, state.reason, false);
    return n;
  }

  #finishClose(code: number, reason: string, byPeer: boolean): void {
    if (this.#state.kind === 'closed') return;
    this.#state = CLOSED;
    this.#recovery.discardAll();
    this.#streams.clear();
    this.#events.push({ type: 'closed', code, reason, byPeer });
  }
}
