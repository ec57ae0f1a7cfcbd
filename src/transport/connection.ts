// One association between two gateways: a sans-IO state machine (datagrams, time and
// application calls in; datagrams, events and the next deadline out). See types.ts for the
// driver loop and docs/protocol.md "Transport packets" for the wire format.
//
// The connection runs the handshake, the close, frame dispatch and packet assembly; its parts
// keep their own state: the streams and flow control (streams/state.ts), what to acknowledge
// (ack-tracker.ts), loss recovery (recovery.ts), when a packet may leave (send-scheduler.ts),
// path MTU discovery (mtud.ts), the idle timeout (idle.ts), and the deadlines (timer.ts).

import type { ConnectionConfig, ConnectionEvent, ConnectionStats, Millis, Transmit, TransportConnection } from './types.ts';
import type { RateController } from './congestion/controller.ts';
import { ModelBasedController } from './congestion/model-based.ts';
import { HEADER_SIZE, newHeader, readHeader, writeHeader, type PacketHeader } from './packet.ts';
import {
  HandshakeKind,
  closeFrameSize,
  decodeFrames,
  encodeReason,
  handshakeFrameSize,
  writeClose,
  writeHandshake,
  writePadding,
  writePing,
  type Frame,
  type TransportParams,
} from './frame.ts';
import { Ctrl, type SentPacket } from './sent-packets.ts';
import { Recovery, type RecoveryHandler } from './recovery.ts';
import { MtuDiscovery } from './mtud.ts';
import { AckTracker, ACK_ELICITING_THRESHOLD, MAX_ACK_DELAY_MS } from './ack-tracker.ts';
import { StreamsState } from './streams/state.ts';
import { EventQueue } from './events.ts';
import { Timer, TimerTable } from './timer.ts';
import { SendScheduler } from './send-scheduler.ts';
import { admitFrames } from './admission.ts';
import { IdleTimer } from './idle.ts';
import { DatagramCounters, type ExtendedStats } from './stats.ts';

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
const NO_REASON = new Uint8Array(0);

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
  #cidHi = 0;
  #cidLo = 0;
  #cidKnown: boolean;
  #nextPn = 0;

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

  /** Our HANDSHAKE frame (INIT or ACCEPT) goes in the next packet. */
  #handshakeDue = false;
  #pingDue = false;
  #probesToSend = 0;
  /** Latest time seen from the driver: deadlines at or before it are not reported again. */
  #lastNow: Millis;

  // Where #build() writes: the caller's buffer (pollTransmitInto) or, when null, a new one it
  // leaves in #txBuilt (pollTransmit).
  #txOut: Uint8Array | null = null;
  #txAt = 0;
  #txBuilt: Uint8Array | null = null;

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
    this.#lastNow = now;
    this.#cidKnown = role === 'client';
    if (role === 'client') {
      this.#cidHi = (random() * 0x100000000) >>> 0;
      this.#cidLo = (random() * 0x100000000) >>> 0;
      this.#handshakeDue = true;
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
    return this.#cidHi.toString(16).padStart(8, '0') + this.#cidLo.toString(16).padStart(8, '0');
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
      if (this.#handshakeUnconfirmed()) this.#handshakeDue = true;
    }
    if (timers.isExpired(Timer.pacing, now)) timers.stop(Timer.pacing);
    if (timers.isExpired(Timer.keepalive, now)) this.#pingDue = true;
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
    timers.set(Timer.keepalive, connected && !this.#pingDue ? this.#idle.keepaliveAt() : Infinity);
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
    if (this.#cidKnown && (hdr.cidHi !== this.#cidHi || hdr.cidLo !== this.#cidLo)) {
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
      this.#cidHi = hdr.cidHi;
      this.#cidLo = hdr.cidLo;
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
      this.#handshakeDue = true;
      this.#acks.ackImmediately();
    } else if (this.#state.kind === 'handshake') {
      this.#applyPeerParams(params);
      this.#state = CONNECTED;
      this.#handshakeDue = false;
      this.#events.push({ type: 'connected' });
    }
  }

  #applyPeerParams(p: TransportParams): void {
    this.#streams.applyPeerParams(p.maxData, p.maxStreamData, p.maxStreams);
    this.#recovery.peerMaxAckDelay = p.maxAckDelayUs / 1000;
    this.#idle.applyPeerTimeout(p.idleTimeoutMs);
    this.#mtud.setMax(p.maxPacketSize);
  }

  #localParams(): TransportParams {
    return {
      maxPacketSize: this.#config.maxPacketSize,
      maxData: this.#streams.localMaxData,
      maxStreamData: this.#config.streamReceiveWindow,
      maxStreams: this.#streams.localMaxStreams,
      idleTimeoutMs: this.#config.idleTimeoutMs,
      maxAckDelayUs: MAX_ACK_DELAY_MS * 1000,
    };
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
    if (p.ctrl & Ctrl.HANDSHAKE) this.#handshakeDue = this.#handshakeUnconfirmed() || this.role === 'server';
    if (p.isMtuProbe) this.#mtud.onProbeLost(p.size, now);
    else this.#mtud.onPacketLost(p.size, now, this.#recovery.rtt.pto(this.#recovery.peerMaxAckDelay));
  }

  #handshakeUnconfirmed(): boolean {
    return this.#state.kind === 'handshake' && this.role === 'client';
  }

  // ------------------------------------------------------------------ send path

  pollTransmit(now: Millis): Transmit | null {
    this.#txOut = null;
    const n = this.#transmit(now);
    if (n === 0) return null;
    const buf = this.#txBuilt!;
    this.#txBuilt = null;
    return { data: n === buf.length ? buf : buf.subarray(0, n) };
  }

  /** The largest datagram pollTransmit can return: the room pollTransmitInto needs. */
  get maxDatagramSize(): number {
    return Math.max(this.#config.initialPacketSize, this.#config.maxPacketSize);
  }

  pollTransmitInto(now: Millis, out: Uint8Array, at: number): number {
    if (!(at >= 0 && out.length - at >= this.maxDatagramSize)) throw new RangeError('pollTransmitInto: less room than maxDatagramSize');
    this.#txOut = out;
    this.#txAt = at;
    const n = this.#transmit(now);
    this.#txOut = null;
    return n;
  }

  /** The next datagram's length (written as #build() says), 0 when nothing may leave now. */
  #transmit(now: Millis): number {
    const state = this.#state;
    if (state.kind === 'closed') return 0;
    if (state.kind === 'closing') return state.closeDue ? this.#buildClose(state, now) : 0;
    if (state.kind === 'aborting') return this.#buildClose(state, now);
    if (!this.#cidKnown) return 0;
    if (now > this.#lastNow) this.#lastNow = now;
    this.#timers.stop(Timer.pacing);

    const size = this.#mtud.current;
    const ackDue = this.#acks.isDue(now);

    if (this.#probesToSend > 0) {
      // Probe timeout: one ack-eliciting packet regardless of window and pacing (RFC 9002 §6.2.4).
      this.#probesToSend--;
      // Before the handshake completes, every probe is an INIT (a bare PING would be dropped).
      if (this.#handshakeUnconfirmed()) this.#handshakeDue = true;
      return this.#build(now, size, true, 0);
    }

    const streams = this.#streams;
    const queued = streams.hasQueued();
    const wantsData = queued || this.#handshakeDue || this.#pingDue || streams.hasControlPending();
    const backlog = queued && !this.#handshakeDue ? streams.bytesWritten - streams.bytesSent : 0;
    const scheduler = this.#scheduler;
    const limit = scheduler.admit(now, size, wantsData, backlog, state.kind === 'connected');
    if (limit > 0) {
      const n = this.#build(now, limit, false, scheduler.probe);
      scheduler.onSending(now);
      if (n !== 0) return n;
    }
    if (ackDue) return this.#build(now, size, false, 0, true);
    if (!scheduler.blocked && !wantsData) this.#recovery.markAppLimited();
    return 0;
  }

  /**
   * Builds one packet at txOut[txAt] or, without txOut, into a new buffer left in txBuilt, and
   * returns its length (0: nothing to send after all).
   * `mtuProbe` > 0: PING padded to that size. `ackOnly`: only an ACK (not in flight).
   */
  #build(now: Millis, size: number, isPtoProbe: boolean, mtuProbe: number, ackOnly = false): number {
    const pn = this.#nextPn;
    const out = this.#txOut;
    const base = out === null ? 0 : this.#txAt;
    // Frames are written at absolute positions up to `limit`, the packet's end in `buf`.
    const limit = base + (mtuProbe > 0 ? mtuProbe : size);
    // Written in place into memory the caller will own: the caller's send queue, or Node's pooled
    // allocUnsafe, cheaper than building in a scratch buffer and copying (every byte up to `pos`
    // is written).
    const buf = out ?? Buffer.allocUnsafe(limit);
    let pos = writeHeader(buf, 0, this.#cidHi, this.#cidLo, pn, base);
    const recovery = this.#recovery;
    const acks = this.#acks;
    const sp = recovery.sent.acquire();
    let ackEliciting = false;

    // HANDSHAKE first: the gateway recognises an INIT by the frame right after the header.
    if (!ackOnly && this.#handshakeDue) {
      const params = this.#localParams();
      if (pos + handshakeFrameSize(params) <= limit) {
        pos = writeHandshake(buf, pos, this.role === 'client' ? HandshakeKind.INIT : HandshakeKind.ACCEPT, params);
        sp.ctrl |= Ctrl.HANDSHAKE;
        this.#handshakeDue = false;
        ackEliciting = true;
      }
    }
    if (acks.isPending || ackOnly) {
      pos = acks.writeFrame(buf, pos, limit, now, sp);
    }
    if (!ackOnly) {
      if (mtuProbe === 0 && this.#state.kind === 'connected') {
        pos = this.#streams.writeControlFrames(buf, pos, limit, sp);
        if (sp.ctrl !== 0 || sp.maxStreamDataIds !== null || sp.resetIds !== null) ackEliciting = true;
        const before = sp.streamCount;
        pos = this.#streams.writeStreamFrames(buf, pos, limit, sp);
        if (sp.streamCount > before) ackEliciting = true;
      }
      if (!ackEliciting && (this.#pingDue || isPtoProbe || mtuProbe > 0)) {
        pos = writePing(buf, pos);
        ackEliciting = true;
      }
      this.#pingDue = false;
    }
    if (!ackEliciting) {
      if (sp.ackLargest < 0) {
        recovery.sent.release(sp);
        return 0;
      }
      // Ack-only: every so often ask for an ACK back so the peer can prune.
      if (acks.ackOnlyWantsPing() && pos < limit) {
        pos = writePing(buf, pos);
        ackEliciting = true;
      }
    }
    if (ackEliciting) acks.onAckElicitingSent();
    // Pad the client's INIT (path must carry the base size) and MTU probes.
    const padTo =
      base + (mtuProbe > 0 ? mtuProbe : (sp.ctrl & Ctrl.HANDSHAKE) !== 0 && this.role === 'client' ? this.#config.initialPacketSize : 0);
    if (pos < padTo) pos = writePadding(buf, pos, padTo - pos);
    const length = pos - base;

    this.#nextPn = pn + 1;
    sp.pn = pn;
    sp.timeSent = now;
    sp.size = length;
    sp.ackEliciting = ackEliciting;
    sp.inFlight = ackEliciting;
    sp.isMtuProbe = mtuProbe > 0;
    // Ack-only packets are not tracked: nothing in them is retransmitted, and ack-of-ack
    // pruning rides on the ack-eliciting packets that also carry ACK frames.
    if (ackEliciting) recovery.onPacketSent(sp, now);
    else recovery.sent.release(sp);
    if (mtuProbe > 0) this.#mtud.onProbeSent(mtuProbe);
    if (ackEliciting) this.#scheduler.onSent(length);
    this.#idle.onSent(now, ackEliciting);
    this.#counters.packetsSent++;
    this.#counters.bytesSent += length;
    if (out === null) this.#txBuilt = buf;
    return length;
  }

  #buildClose(state: Closing, now: Millis): number {
    if (state.kind === 'closing') state.closeDue = false;
    const code = state.code;
    // A reason too long for one packet is left out: the code is what matters.
    const reason = HEADER_SIZE + closeFrameSize(code, state.reasonBytes) > this.#mtud.current ? NO_REASON : state.reasonBytes;
    const out = this.#txOut;
    const base = out === null ? 0 : this.#txAt;
    const buf = out ?? Buffer.allocUnsafe(HEADER_SIZE + closeFrameSize(code, reason));
    let pos = writeHeader(buf, 0, this.#cidHi, this.#cidLo, this.#nextPn++, base);
    pos = writeClose(buf, pos, code, reason);
    const length = pos - base;
    this.#counters.packetsSent++;
    this.#counters.bytesSent += length;
    this.#idle.onSent(now, false);
    if (out === null) this.#txBuilt = buf;
    if (state.kind === 'aborting') this.#finishClose(code, state.reason, false);
    return length;
  }

  #finishClose(code: number, reason: string, byPeer: boolean): void {
    if (this.#state.kind === 'closed') return;
    this.#state = CLOSED;
    this.#recovery.discardAll();
    this.#streams.clear();
    this.#events.push({ type: 'closed', code, reason, byPeer });
  }
}
