// One association between two gateways: a sans-IO state machine (datagrams, time and
// application calls in; datagrams, events and the next deadline out). See types.ts for the
// driver loop and docs/protocol.md "Transport packets" for the wire format.

import type { ConnectionConfig, ConnectionEvent, ConnectionStats, Millis, Transmit, TransportConnection } from './types.ts';
import type { RateController } from './congestion/controller.ts';
import { ModelBasedController } from './congestion/model-based.ts';
import { HEADER_SIZE, newHeader, readHeader, writeHeader, type PacketHeader } from './packet.ts';
import {
  HandshakeKind,
  ackFrameMaxSize,
  closeFrameSize,
  decodeFrames,
  encodeReason,
  handshakeFrameSize,
  writeAck,
  writeClose,
  writeHandshake,
  writeMaxData,
  writeMaxStreamData,
  writeMaxStreams,
  writePadding,
  writePing,
  writeResetStream,
  writeStreamHeader,
  type Frame,
  type TransportParams,
} from './frame.ts';
import { varintSize } from './varint.ts';
import { RangeSet } from './range-set.ts';
import { Ctrl, type SentPacket } from './sent-packets.ts';
import { Recovery, type RecoveryHandler } from './recovery.ts';
import { Pacer } from './pacing.ts';
import { MtuDiscovery } from './mtud.ts';
import { SendStream } from './streams/send.ts';
import { CREDIT_REFRESH_FRACTION, RecvStream } from './streams/recv.ts';
import { SendWait, SendWaits } from './send-waits.ts';

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

// Acknowledge every second ack-eliciting packet (RFC 9000 §13.2.2) ...
const ACK_ELICITING_THRESHOLD = 2;
// ... or after this delay. Small against any WAN RTT, above the 1 ms timer granularity.
const MAX_ACK_DELAY_MS = 5;
// ACK frames report the newest ranges only; older holes are either recovered or long lost.
const MAX_ACK_RANGES_SENT = 32;
const MAX_RECEIVED_RANGES = 64;
// Ack-only packets are not acknowledged; make every Nth one ack-eliciting so the peer's
// ACK of it lets us prune our received-ranges state (RFC 9000 §13.2.4).
const ACK_ONLY_BEFORE_PING = 16;
// Probe packets sent when the probe timeout fires (RFC 9002 §6.2.4).
const PTO_PROBES = 2;
// A STREAM frame is not started with less room than this (header + a few bytes).
const MIN_STREAM_FRAME_ROOM = 24;

type State = 'handshake' | 'connected' | 'closing' | 'closed';

class Stream {
  readonly id: number;
  readonly send: SendStream;
  readonly recv: RecvStream;
  readonly peerInitiated: boolean;
  queued = false;
  connBlocked = false;
  /** Reset code once reset by either side, else -1. */
  resetCode = -1;
  /** Final size we announce in our RESET_STREAM. */
  resetFinalSize = 0;
  resetAcked = false;

  constructor(id: number, send: SendStream, recv: RecvStream, peerInitiated: boolean) {
    this.id = id;
    this.send = send;
    this.recv = recv;
    this.peerInitiated = peerInitiated;
  }
}

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
  private readonly config: ConnectionConfig;
  private state: State = 'handshake';
  private readonly random: () => number;
  private cidHi = 0;
  private cidLo = 0;
  private cidKnown: boolean;
  private nextPn = 0;

  private readonly controller: RateController;
  private readonly recovery: Recovery;
  private readonly pacer: Pacer;
  private readonly mtud: MtuDiscovery;
  private readonly rxHeader: PacketHeader = newHeader();

  // Receive side: packet numbers to acknowledge.
  private readonly received = new RangeSet();
  private receivedFloor = 0; // packet numbers below are treated as already seen
  private largestReceived = -1;
  private largestReceivedAt: Millis = 0;
  private ackElicitingSinceAck = 0;
  private ackPending = false; // an ack-eliciting packet arrived since our last ACK
  private ackImmediately = false;
  private ackDeadline: Millis = Infinity;
  private ackOnlySinceEliciting = 0;
  private readonly ackThreshold: number;

  // Flow control, association level.
  private peerMaxData = 0; // credit the peer gave us
  private connSent = 0; // new stream bytes we sent
  private localMaxData: number; // credit we advertised
  private connReceived = 0; // sum of per-stream highest offsets received
  private connConsumed = 0; // bytes read by the app or discarded
  private pendingMaxData = false;

  // Streams.
  private readonly streams = new Map<number, Stream>();
  private sendQueue: Stream[] = [];
  private sendQueueHead = 0;
  private connBlockedStreams: Stream[] = [];
  private nextLocalIndex = 0;
  private peerMaxStreams = 0; // how many streams we may open (cumulative)
  private nextPeerIndex = 0; // next peer stream index not yet opened
  private localMaxStreams: number; // how many streams the peer may open (cumulative)
  private pendingMaxStreams = false;
  private peerStreamWindow = 0; // initial per-stream credit from the peer
  private readonly pendingMaxStreamData = new Set<number>();
  private readonly pendingResets = new Set<number>();

  // Handshake, lifetime.
  private pendingHandshake = false;
  private idleTimeoutMs: number;
  private idleDeadline: Millis;
  private elicitingSentSinceReceive = false;
  private lastSentAt: Millis;
  private pingPending = false;
  private probesToSend = 0;
  private pacerWakeup: Millis = Infinity;
  private readonly sendWaits = new SendWaits();
  private closeCode = 0;
  private closeReason = '';
  private closeReasonBytes: Uint8Array = new Uint8Array(0);
  private pendingClose = false;
  private abortAfterClose = false;
  private closeDeadline: Millis = Infinity;
  /** Latest time seen from the driver: deadlines at or before it are not reported again. */
  private lastNow: Millis;

  private readonly events: ConnectionEvent[] = [];
  private eventsHead = 0;

  // Stats counted where things happen.
  private packetsSent = 0;
  private packetsReceived = 0;
  private bytesSent = 0;
  private bytesReceived = 0;
  private streamBytesSent = 0;
  // New stream bytes accepted by write() (minus those abandoned by resets); with
  // streamBytesSent it tells the pacer how much is waiting, so the tail goes out at once.
  private streamBytesWritten = 0;
  private streamBytesRetransmitted = 0;
  private streamBytesReceived = 0;
  private datagramsDropped = 0;
  private duplicatePackets = 0;

  constructor(opts: ConnectionOptions) {
    const { role, config, now } = opts;
    this.role = role;
    this.config = config;
    this.random = config.random ?? defaultRandom();
    this.controller = config.rateController
      ? config.rateController()
      : new ModelBasedController({ mss: config.maxPacketSize, random: this.random });
    this.recovery = new Recovery(this.controller, this);
    this.pacer = new Pacer(now, config.initialPacketSize);
    this.mtud = new MtuDiscovery(config.initialPacketSize, config.maxPacketSize, now);
    this.ackThreshold = Math.max(1, Math.floor(config.ackFrequency ?? ACK_ELICITING_THRESHOLD));
    this.localMaxData = config.connectionReceiveWindow;
    this.localMaxStreams = config.maxStreams;
    this.idleTimeoutMs = config.idleTimeoutMs;
    this.idleDeadline = config.idleTimeoutMs > 0 ? now + config.idleTimeoutMs : Infinity;
    this.lastSentAt = now;
    this.lastNow = now;
    this.cidKnown = role === 'client';
    if (role === 'client') {
      this.cidHi = (this.random() * 0x100000000) >>> 0;
      this.cidLo = (this.random() * 0x100000000) >>> 0;
      this.pendingHandshake = true;
    }
  }

  // ------------------------------------------------------------------ public API

  get isConnected(): boolean {
    return this.state === 'connected';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Connection id as 16 hex digits (for logs and endpoint routing). */
  get connectionId(): string {
    return this.cidHi.toString(16).padStart(8, '0') + this.cidLo.toString(16).padStart(8, '0');
  }

  openStream(): number {
    if (this.state !== 'connected' || this.nextLocalIndex >= this.peerMaxStreams) return -1;
    const id = this.nextLocalIndex * 2 + (this.role === 'client' ? 0 : 1);
    this.nextLocalIndex++;
    this.createStream(id, false);
    return id;
  }

  write(streamId: number, data: Uint8Array): number {
    const s = this.streams.get(streamId);
    if (s === undefined || this.state !== 'connected') return 0;
    const n = s.send.write(data);
    if (n > 0) {
      this.streamBytesWritten += n;
      this.enqueue(s);
    }
    return n;
  }

  finish(streamId: number): void {
    const s = this.streams.get(streamId);
    if (s === undefined || this.state !== 'connected') return;
    s.send.finish();
    this.enqueue(s);
  }

  read(streamId: number, max = Infinity): Uint8Array | null {
    return this.readFrom(streamId, max, false);
  }

  readView(streamId: number, max = Infinity): Uint8Array | null {
    return this.readFrom(streamId, max, true);
  }

  release(streamId: number, bytes: number): boolean {
    const s = this.streams.get(streamId);
    if (s === undefined) return false; // freed: nothing more to credit
    s.recv.release(bytes);
    if (s.recv.creditUpdate() < 0) return false;
    this.pendingMaxStreamData.add(streamId);
    return true;
  }

  private readFrom(streamId: number, max: number, view: boolean): Uint8Array | null {
    const s = this.streams.get(streamId);
    if (s === undefined) return null;
    const recv = s.recv;
    const out = view ? recv.readView(max) : recv.read(max);
    if (out !== null) {
      // The association's credit follows what is read; the stream's what is released.
      this.connConsumed += out.length;
      if (recv.creditUpdate() >= 0) this.pendingMaxStreamData.add(streamId);
      this.maybeConnCredit();
    }
    if (recv.isFinished() && !recv.finishedSignaled && s.resetCode < 0) {
      recv.finishedSignaled = true;
      this.emit({ type: 'stream-finished', streamId });
      this.tryFree(s);
    }
    return out;
  }

  resetStream(streamId: number, code: number): void {
    const s = this.streams.get(streamId);
    if (s === undefined || s.resetCode >= 0 || this.state !== 'connected') return;
    s.resetCode = code;
    this.resetSendSide(s);
    this.connConsumed += s.recv.abandon();
    this.maybeConnCredit();
    this.tryFree(s);
  }

  close(code: number, reason: string, now: Millis): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (!this.cidKnown) {
      this.finishClose(code, reason, false);
      return;
    }
    this.closeCode = code;
    this.closeReason = reason;
    this.closeReasonBytes = encodeReason(reason);
    this.pendingClose = true;
    this.state = 'closing';
    // Stay long enough to repeat the CLOSE if the peer keeps sending (RFC 9000 §10.2).
    this.closeDeadline = now + 3 * this.recovery.rtt.pto(this.recovery.peerMaxAckDelay);
    this.recovery.discardAll();
  }

  /** Sends one CLOSE and is closed as soon as it has been polled (no closing period). */
  abort(code: number, reason: string, now: Millis): void {
    if (this.state === 'closed') return;
    this.close(code, reason, now);
    this.abortAfterClose = true;
    this.pendingClose = this.cidKnown;
    if (!this.cidKnown && !this.isClosed) this.finishClose(code, reason, false);
  }

  pollEvent(): ConnectionEvent | null {
    if (this.eventsHead >= this.events.length) {
      if (this.events.length > 0) {
        this.events.length = 0;
        this.eventsHead = 0;
      }
      return null;
    }
    const e = this.events[this.eventsHead]!;
    this.events[this.eventsHead++] = undefined as unknown as ConnectionEvent;
    return e;
  }

  nextTimeout(): Millis | null {
    if (this.state === 'closed') return null;
    // Events queued after the driver's last pollEvent (read() can queue stream-finished)
    // are due now: a driver that arms its timer here polls them at once, not at keepalive.
    if (this.eventsHead < this.events.length) return this.lastNow;
    if (this.state === 'closing') return this.closeDeadline;
    let t = this.idleDeadline;
    const r = this.recovery.deadline(this.handshakeUnconfirmed());
    if (r !== null && r < t) t = r;
    if (this.ackPending && this.ackDeadline < t) t = this.ackDeadline;
    if (this.pacerWakeup < t) t = this.pacerWakeup;
    if (this.state === 'connected') {
      // Once a keepalive PING is pending (it may wait for window), the deadline has done its job.
      const ka = this.lastSentAt + this.config.keepaliveMs;
      if (this.config.keepaliveMs > 0 && !this.pingPending && ka < t) t = ka;
      const probeAt = this.mtud.nextProbeTime();
      if (probeAt > this.lastNow && probeAt < t) t = probeAt;
    }
    return t === Infinity ? null : t;
  }

  handleTimeout(now: Millis): void {
    if (this.state === 'closed') return;
    if (now > this.lastNow) this.lastNow = now;
    if (this.state === 'closing') {
      if (now >= this.closeDeadline) this.finishClose(this.closeCode, this.closeReason, false);
      return;
    }
    if (this.idleTimeoutMs > 0 && now >= this.idleDeadline) {
      const code = this.state === 'handshake' ? CloseCode.HANDSHAKE_TIMEOUT : CloseCode.IDLE_TIMEOUT;
      this.finishClose(code, 'idle timeout', false);
      return;
    }
    const r = this.recovery.deadline(this.handshakeUnconfirmed());
    if (r !== null && now >= r) {
      if (this.recovery.onTimeout(now)) {
        this.probesToSend = PTO_PROBES;
        if (this.handshakeUnconfirmed()) this.pendingHandshake = true;
      }
    }
    if (this.pacerWakeup <= now) this.pacerWakeup = Infinity;
    // Same expression as nextTimeout(), so the timer firing always triggers the keepalive.
    if (this.state === 'connected' && this.config.keepaliveMs > 0 && now >= this.lastSentAt + this.config.keepaliveMs) {
      this.pingPending = true;
    }
    this.mtud.maybeRaise(now);
  }

  stats(): ConnectionStats {
    const c = this.controller;
    return {
      rttMs: this.recovery.rtt.smoothed,
      minRttMs: this.recovery.rtt.hasSample ? this.recovery.rtt.min : 0,
      bandwidthBps: c.bandwidthEstimateBps(),
      pacingRateBps: c.pacingRateBps(),
      cwndBytes: c.cwndBytes(),
      bytesInFlight: this.recovery.bytesInFlight,
      packetSize: this.mtud.current,
      packetsSent: this.packetsSent,
      packetsReceived: this.packetsReceived,
      packetsLost: this.recovery.packetsLost,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      streamBytesSent: this.streamBytesSent,
      streamBytesWritten: this.streamBytesWritten,
      streamBytesRetransmitted: this.streamBytesRetransmitted,
      streamBytesReceived: this.streamBytesReceived,
      datagramsDropped: this.datagramsDropped,
      activeStreams: this.streams.size,
      sendWaits: this.sendWaits.totals(this.lastNow),
    };
  }

  bufferedBytes(): { send: number; sendAllocated: number; recv: number; recvAllocated: number } {
    const b = { send: 0, sendAllocated: 0, recv: 0, recvAllocated: 0 };
    for (const s of this.streams.values()) {
      b.send += s.send.bufferedBytes();
      b.sendAllocated += s.send.allocatedBytes();
      b.recv += s.recv.highestOffset - s.recv.releasedOffset;
      b.recvAllocated += s.recv.allocatedBytes();
    }
    return b;
  }

  /** Frees the send and receive rings of streams that hold nothing (call now and then, e.g. once a second). */
  trimBuffers(): void {
    for (const s of this.streams.values()) {
      s.send.trim();
      s.recv.trim();
    }
  }

  /** Counters beyond ConnectionStats (diagnostics, tests). */
  extendedStats(): {
    duplicatePackets: number;
    mtuProbesSent: number;
    mtuProbesLost: number;
    mtuBlackHoles: number;
    ptoCount: number;
    bufferedSendBytes: number;
    bufferedRecvBytes: number;
    controller: string;
    spuriousLosses: number;
    packetThreshold: number;
  } {
    let sendBuf = 0;
    let recvBuf = 0;
    for (const s of this.streams.values()) {
      sendBuf += s.send.bufferedBytes();
      recvBuf += s.recv.highestOffset - s.recv.releasedOffset;
    }
    return {
      duplicatePackets: this.duplicatePackets,
      mtuProbesSent: this.mtud.probesSent,
      mtuProbesLost: this.mtud.probesLost,
      mtuBlackHoles: this.mtud.blackHoles,
      ptoCount: this.recovery.ptoCount,
      bufferedSendBytes: sendBuf,
      bufferedRecvBytes: recvBuf,
      controller: this.controller.name,
      spuriousLosses: this.recovery.spuriousLosses,
      packetThreshold: this.recovery.packetThreshold,
    };
  }

  // ------------------------------------------------------------------ receive path

  handleDatagram(data: Uint8Array, now: Millis): void {
    if (this.state === 'closed') return;
    if (now > this.lastNow) this.lastNow = now;
    const hdr = this.rxHeader;
    if (readHeader(data, hdr) !== null) {
      this.datagramsDropped++;
      return;
    }
    if (this.cidKnown && (hdr.cidHi !== this.cidHi || hdr.cidLo !== this.cidLo)) {
      this.datagramsDropped++;
      return;
    }
    const pn = hdr.packetNumber;
    if (pn < this.receivedFloor || this.received.contains(pn)) {
      // Duplicate or too old to tell: dropping it is harmless (its frames were applied once).
      this.duplicatePackets++;
      return;
    }
    const frames = decodeFrames(data, HEADER_SIZE);
    if (!Array.isArray(frames) || !this.validate(frames)) {
      this.datagramsDropped++;
      return;
    }
    if (this.state === 'closing') {
      // The peer is closing too (both closed at once): it needs nothing more from us, and
      // answering its CLOSE with ours would bounce CLOSEs until the closing period ends.
      for (let i = 0; i < frames.length; i++) {
        if (frames[i]!.type === 'close') {
          this.finishClose(this.closeCode, this.closeReason, false);
          return;
        }
      }
      // Repeat the CLOSE for a peer that has not seen it yet.
      this.pendingClose = true;
      return;
    }
    if (!this.cidKnown) {
      this.cidHi = hdr.cidHi;
      this.cidLo = hdr.cidLo;
      this.cidKnown = true;
    }

    this.packetsReceived++;
    this.bytesReceived += data.length;
    if (this.received.isEmpty() || pn > this.largestReceived) {
      if (pn !== this.largestReceived + 1 && this.largestReceived >= 0) this.ackImmediately = true;
      this.largestReceived = pn;
      this.largestReceivedAt = now;
    } else {
      // Fills a hole: acknowledge promptly so the peer stops treating it as lost.
      this.ackImmediately = true;
    }
    this.received.insert(pn, pn + 1);
    if (this.received.count > MAX_RECEIVED_RANGES) {
      this.received.truncateLow(MAX_RECEIVED_RANGES);
      this.receivedFloor = Math.max(this.receivedFloor, this.received.min()!);
    }

    let ackEliciting = false;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.type !== 'ack' && f.type !== 'padding' && f.type !== 'close') ackEliciting = true;
      this.applyFrame(f, now);
      if (this.isClosed) return;
    }
    if (this.idleTimeoutMs > 0) this.idleDeadline = now + this.idleTimeoutMs;
    this.elicitingSentSinceReceive = false;
    if (ackEliciting) {
      this.ackPending = true;
      this.ackElicitingSinceAck++;
      if (this.ackDeadline === Infinity) this.ackDeadline = now + MAX_ACK_DELAY_MS;
    }
  }

  /**
   * Checks every frame against the current state before anything is applied, so a packet
   * is either applied whole or dropped whole (hostile input leaves the state as it was).
   */
  private validate(frames: Frame[]): boolean {
    let handshakeDone = this.state === 'connected' || this.state === 'closing';
    let growth = 0;
    let scratch: Map<number, number> | null = null;
    let sawInit = false;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      switch (f.type) {
        case 'handshake':
          if (f.kind === HandshakeKind.INIT) {
            if (this.role !== 'server') return false;
            sawInit = true;
          } else if (this.role !== 'client') {
            return false;
          }
          // Frames after the handshake frame in the same packet see the association open.
          handshakeDone = true;
          break;
        case 'padding':
        case 'ping':
        case 'close':
          break;
        case 'ack':
          if (!this.cidKnown) return false;
          break;
        case 'max-data':
        case 'max-streams':
          if (!handshakeDone) return false;
          break;
        case 'max-stream-data':
          if (!handshakeDone || !this.validStreamId(f.streamId)) return false;
          break;
        case 'stream':
        case 'reset-stream': {
          if (!handshakeDone || !this.validStreamId(f.streamId)) return false;
          const s = this.streams.get(f.streamId);
          const isNewPeer = s === undefined && this.isPeerStream(f.streamId) && f.streamId >>> 1 >= this.nextPeerIndex;
          if (s === undefined && !isNewPeer) break; // closed stream: ignored when applied
          const end = f.type === 'stream' ? f.offset + f.data.length : f.finalSize;
          let highest = s !== undefined ? s.recv.highestOffset : 0;
          if (scratch?.has(f.streamId)) highest = scratch.get(f.streamId)!;
          if (s !== undefined) {
            const err = f.type === 'stream' ? s.recv.check(f.offset, f.data.length, f.fin) : s.recv.checkFinalSize(f.finalSize);
            if (err !== null) return false;
          } else if (end > this.config.streamReceiveWindow) {
            return false;
          }
          if (end > highest) {
            growth += end - highest;
            (scratch ??= new Map()).set(f.streamId, end);
          }
          break;
        }
      }
    }
    if (!this.cidKnown && !sawInit) return false;
    return this.connReceived + growth <= this.localMaxData;
  }

  private isPeerStream(id: number): boolean {
    return (id & 1) === (this.role === 'client' ? 1 : 0);
  }

  /** Within what either side may have opened (stream limits). */
  private validStreamId(id: number): boolean {
    const index = id >>> 1;
    return this.isPeerStream(id) ? index < this.localMaxStreams : index < this.nextLocalIndex;
  }

  private applyFrame(f: Frame, now: Millis): void {
    switch (f.type) {
      case 'ack':
        this.recovery.onAck(f.ranges, f.ackDelayUs / 1000, now);
        break;
      case 'stream':
        this.onStreamFrame(f.streamId, f.offset, f.data, f.fin);
        break;
      case 'handshake':
        this.onHandshake(f.kind, f.params);
        break;
      case 'max-data':
        if (f.max > this.peerMaxData) {
          this.peerMaxData = f.max;
          this.requeueConnBlocked();
        }
        break;
      case 'max-stream-data': {
        const s = this.streams.get(f.streamId);
        if (s !== undefined && f.max > s.send.maxData) {
          s.send.maxData = f.max;
          this.enqueue(s);
        }
        break;
      }
      case 'max-streams':
        if (f.max > this.peerMaxStreams) this.peerMaxStreams = f.max;
        break;
      case 'reset-stream':
        this.onResetStream(f.streamId, f.code, f.finalSize);
        break;
      case 'close':
        this.finishClose(f.code, f.reason, true);
        break;
      case 'ping':
      case 'padding':
        break;
    }
  }

  private onHandshake(kind: number, params: TransportParams): void {
    if (kind === HandshakeKind.INIT) {
      // Server: a first INIT opens the association; a repeated one means our ACCEPT was lost.
      if (this.state === 'handshake') {
        this.applyPeerParams(params);
        this.state = 'connected';
        this.emit({ type: 'connected' });
      }
      this.pendingHandshake = true;
      this.ackImmediately = true;
    } else if (this.state === 'handshake') {
      this.applyPeerParams(params);
      this.state = 'connected';
      this.pendingHandshake = false;
      this.emit({ type: 'connected' });
    }
  }

  private applyPeerParams(p: TransportParams): void {
    this.peerMaxData = p.maxData;
    this.peerStreamWindow = p.maxStreamData;
    this.peerMaxStreams = p.maxStreams;
    this.recovery.peerMaxAckDelay = p.maxAckDelayUs / 1000;
    // The shorter of the two idle timeouts applies (0 = none); re-armed by the caller.
    if (p.idleTimeoutMs > 0 && (this.idleTimeoutMs === 0 || p.idleTimeoutMs < this.idleTimeoutMs)) {
      this.idleTimeoutMs = p.idleTimeoutMs;
    }
    this.mtud.setMax(p.maxPacketSize);
  }

  private localParams(): TransportParams {
    return {
      maxPacketSize: this.config.maxPacketSize,
      maxData: this.localMaxData,
      maxStreamData: this.config.streamReceiveWindow,
      maxStreams: this.localMaxStreams,
      idleTimeoutMs: this.config.idleTimeoutMs,
      maxAckDelayUs: MAX_ACK_DELAY_MS * 1000,
    };
  }

  private createStream(id: number, peerInitiated: boolean): Stream {
    const s = new Stream(
      id,
      new SendStream(this.peerStreamWindow, this.config.streamSendBuffer),
      new RecvStream(this.config.streamReceiveWindow),
      peerInitiated,
    );
    this.streams.set(id, s);
    return s;
  }

  /** Existing stream, or a newly opened peer stream (opening lower ids too), or undefined if closed. */
  private streamForFrame(id: number): Stream | undefined {
    const s = this.streams.get(id);
    if (s !== undefined || !this.isPeerStream(id)) return s;
    const index = id >>> 1;
    if (index < this.nextPeerIndex) return undefined;
    // validate() bounded index by localMaxStreams, so this loop is bounded by our own limit.
    const parity = this.role === 'client' ? 1 : 0;
    let opened: Stream | undefined;
    for (; this.nextPeerIndex <= index; this.nextPeerIndex++) {
      const sid = this.nextPeerIndex * 2 + parity;
      opened = this.createStream(sid, true);
      this.emit({ type: 'stream-opened', streamId: sid });
    }
    return opened;
  }

  private onStreamFrame(id: number, offset: number, data: Uint8Array, fin: boolean): void {
    const s = this.streamForFrame(id);
    if (s === undefined) return;
    const recv = s.recv;
    const before = recv.contiguousEnd;
    const grew = recv.insert(offset, data, fin);
    this.connReceived += grew;
    if (recv.reset) {
      // Discarded data returns its credit at once.
      this.connConsumed += grew;
      recv.skipToHighest();
      this.maybeConnCredit();
      this.tryFree(s);
      return;
    }
    this.streamBytesReceived += recv.contiguousEnd - before;
    if (recv.hasReadable() && !recv.readableSignaled) {
      recv.readableSignaled = true;
      this.emit({ type: 'stream-readable', streamId: id });
    } else if (recv.isFinished() && !recv.finishedSignaled) {
      recv.finishedSignaled = true;
      this.emit({ type: 'stream-finished', streamId: id });
      this.tryFree(s);
    }
  }

  private onResetStream(id: number, code: number, finalSize: number): void {
    const s = this.streamForFrame(id);
    if (s === undefined) return;
    const recv = s.recv;
    const growth = Math.max(0, finalSize - recv.highestOffset);
    this.connReceived += growth;
    recv.highestOffset += growth;
    recv.finalSize = finalSize;
    // Bytes never read (or never received) up to the final size return their credit.
    if (!recv.reset) {
      this.connConsumed += recv.abandon();
    } else {
      this.connConsumed += growth;
      recv.skipToHighest();
    }
    this.maybeConnCredit();
    if (s.resetCode < 0) {
      s.resetCode = code;
      this.emit({ type: 'stream-reset', streamId: id, code });
      this.resetSendSide(s);
    }
    this.tryFree(s);
  }

  /** Stops sending on `s`; tells the peer our final size unless it already has everything. */
  private resetSendSide(s: Stream): void {
    const send = s.send;
    if (send.isComplete()) {
      s.resetAcked = true;
    } else {
      s.resetFinalSize = send.sentOffset;
      this.streamBytesWritten -= send.writeOffset - send.sentOffset;
      send.abandon();
      this.pendingResets.add(s.id);
    }
    this.pendingMaxStreamData.delete(s.id);
  }

  private sendSideDone(s: Stream): boolean {
    return s.resetCode >= 0 ? s.resetAcked : s.send.isComplete();
  }

  private recvSideDone(s: Stream): boolean {
    return s.resetCode >= 0 ? s.recv.finalSize >= 0 : s.recv.finishedSignaled;
  }

  /** Frees a stream whose both halves are done; returns a stream slot to the peer. */
  private tryFree(s: Stream): void {
    if (!this.sendSideDone(s) || !this.recvSideDone(s)) return;
    if (!this.streams.delete(s.id)) return;
    this.pendingMaxStreamData.delete(s.id);
    this.pendingResets.delete(s.id);
    if (s.resetCode < 0) this.emit({ type: 'stream-closed', streamId: s.id });
    if (s.peerInitiated) {
      this.localMaxStreams++;
      this.pendingMaxStreams = true;
    }
  }

  private maybeConnCredit(): void {
    const window = this.config.connectionReceiveWindow;
    if (this.localMaxData - this.connConsumed <= window * (1 - CREDIT_REFRESH_FRACTION)) {
      this.localMaxData = this.connConsumed + window;
      this.pendingMaxData = true;
    }
  }

  // ------------------------------------------------------------------ recovery callbacks

  onPacketAcked(p: SentPacket, now: Millis): void {
    for (let i = 0; i < p.streamCount; i++) {
      const s = this.streams.get(p.streamIds[i]!);
      if (s === undefined) continue;
      const freed = s.send.onAcked(p.streamOffsets[i]!, p.streamLengths[i]!, p.streamFins[i]!);
      if (freed && s.send.writeBlocked && s.resetCode < 0 && s.send.writableAgain) {
        s.send.writeBlocked = false;
        this.emit({ type: 'stream-writable', streamId: s.id });
      }
      // Not only when the FIN's packet is acked: under loss the FIN is often acked before an
      // earlier range's retransmission, and the stream completes with that later ack.
      if (s.send.isComplete()) this.tryFree(s);
    }
    if (p.resetIds !== null) {
      for (const id of p.resetIds) {
        const s = this.streams.get(id);
        if (s !== undefined) {
          s.resetAcked = true;
          this.tryFree(s);
        }
      }
    }
    if (p.ackLargest >= 0 && p.ackLargest + 1 > this.receivedFloor) {
      // The peer has our ACK up to ackLargest: stop reporting those (RFC 9000 §13.2.4).
      // Packets below it that never arrived are given up on; their data is retransmitted.
      this.receivedFloor = p.ackLargest + 1;
      this.received.removeBelow(this.receivedFloor);
    }
    if (p.isMtuProbe) this.mtud.onProbeAcked(p.size, now);
    else this.mtud.onPacketAcked(p.size, now);
  }

  onPacketLost(p: SentPacket, now: Millis): void {
    for (let i = 0; i < p.streamCount; i++) {
      const s = this.streams.get(p.streamIds[i]!);
      if (s === undefined) continue;
      s.send.onLost(p.streamOffsets[i]!, p.streamLengths[i]!, p.streamFins[i]!);
      this.enqueue(s);
    }
    const ctrl = p.ctrl;
    if (ctrl !== 0) {
      if (ctrl & Ctrl.HANDSHAKE) this.pendingHandshake = this.handshakeUnconfirmed() || this.role === 'server';
      if (ctrl & Ctrl.MAX_DATA) this.pendingMaxData = true;
      if (ctrl & Ctrl.MAX_STREAMS) this.pendingMaxStreams = true;
    }
    if (p.maxStreamDataIds !== null) {
      for (const id of p.maxStreamDataIds) if (this.streams.has(id)) this.pendingMaxStreamData.add(id);
    }
    if (p.resetIds !== null) {
      for (const id of p.resetIds) {
        const s = this.streams.get(id);
        if (s !== undefined && !s.resetAcked) this.pendingResets.add(id);
      }
    }
    if (p.isMtuProbe) this.mtud.onProbeLost(p.size, now);
    else this.mtud.onPacketLost(p.size, now, this.recovery.rtt.pto(this.recovery.peerMaxAckDelay));
  }

  private handshakeUnconfirmed(): boolean {
    return this.state === 'handshake' && this.role === 'client';
  }

  // ------------------------------------------------------------------ send path

  private enqueue(s: Stream): void {
    if (s.queued || s.resetCode >= 0) return;
    if (!s.send.hasSendable(this.peerMaxData - this.connSent)) {
      if (s.send.blockedOnlyByConnection() && !s.connBlocked) {
        s.connBlocked = true;
        this.connBlockedStreams.push(s);
      }
      return;
    }
    s.queued = true;
    this.sendQueue.push(s);
  }

  private requeueConnBlocked(): void {
    const blocked = this.connBlockedStreams;
    if (blocked.length === 0) return;
    this.connBlockedStreams = [];
    for (const s of blocked) {
      s.connBlocked = false;
      this.enqueue(s);
    }
  }

  private hasQueuedStreams(): boolean {
    return this.sendQueueHead < this.sendQueue.length;
  }

  private hasControlPending(): boolean {
    return (
      this.pendingHandshake ||
      this.pendingMaxData ||
      this.pendingMaxStreams ||
      this.pingPending ||
      this.pendingMaxStreamData.size > 0 ||
      this.pendingResets.size > 0
    );
  }

  pollTransmit(now: Millis): Transmit | null {
    this.txOut = null;
    const n = this.transmit(now);
    if (n === 0) return null;
    const buf = this.txBuilt!;
    this.txBuilt = null;
    return { data: n === buf.length ? buf : buf.subarray(0, n) };
  }

  /** The largest datagram pollTransmit can return: the room pollTransmitInto needs. */
  get maxDatagramSize(): number {
    return Math.max(this.config.initialPacketSize, this.config.maxPacketSize);
  }

  pollTransmitInto(now: Millis, out: Uint8Array, at: number): number {
    if (!(at >= 0 && out.length - at >= this.maxDatagramSize)) throw new RangeError('pollTransmitInto: less room than maxDatagramSize');
    this.txOut = out;
    this.txAt = at;
    const n = this.transmit(now);
    this.txOut = null;
    return n;
  }

  // Where build() writes: the caller's buffer (pollTransmitInto) or, when null, a new one it
  // leaves in txBuilt (pollTransmit).
  private txOut: Uint8Array | null = null;
  private txAt = 0;
  private txBuilt: Uint8Array | null = null;

  /** The next datagram's length (written as build() says), 0 when nothing may leave now. */
  private transmit(now: Millis): number {
    const state = this.state;
    if (state === 'closed') return 0;
    if (state === 'closing') return this.pendingClose ? this.buildClose(now) : 0;
    if (!this.cidKnown) return 0;
    if (now > this.lastNow) this.lastNow = now;
    this.pacerWakeup = Infinity;

    const size = this.mtud.current;
    const ackDue = this.ackPending && (this.ackImmediately || this.ackElicitingSinceAck >= this.ackThreshold || now >= this.ackDeadline);

    if (this.probesToSend > 0) {
      // Probe timeout: one ack-eliciting packet regardless of window and pacing (RFC 9002 §6.2.4).
      this.probesToSend--;
      // Before the handshake completes, every probe is an INIT (a bare PING would be dropped).
      if (this.handshakeUnconfirmed()) this.pendingHandshake = true;
      return this.build(now, size, true, 0);
    }

    const queued = this.hasQueuedStreams();
    const wantsData = queued || this.hasControlPending();
    const inFlight = this.recovery.bytesInFlight;
    const room = this.controller.cwndBytes() - inFlight;
    // Path MTU probes interleave with data (one outstanding at a time). A probe that does
    // not fit the window waits for room; data and credit updates never wait behind it.
    let probe = state === 'connected' ? this.mtud.probeSize(now) : 0;
    if (probe > room && !(inFlight === 0 && !wantsData)) probe = 0;
    let blocked = false;
    let wait: SendWait = SendWait.none;
    if (wantsData || probe > 0) {
      const limit = probe > 0 ? probe : this.packetLimit(size, room, inFlight);
      if (limit === 0) {
        blocked = true;
        wait = SendWait.window;
        // Waiting for acks now, not for tokens: the pacer owes no catch-up for this spell.
        this.pacer.forgetWait();
      } else {
        this.pacer.setRate(this.controller.pacingRateBps(), size);
        // Bulk data leaves in quanta; control, handshake and retransmit-only packets and the
        // tail of application-limited data wait only for their own tokens.
        const backlog = queued && !this.pendingHandshake ? this.streamBytesWritten - this.streamBytesSent : 0;
        const at = this.pacer.releaseTime(now, limit, Math.max(backlog, limit));
        if (at > now) {
          this.pacerWakeup = at;
          blocked = true;
          wait = SendWait.pacing;
        } else {
          const n = this.build(now, limit, false, probe);
          if (n !== 0) {
            this.sendWaits.note(SendWait.none, now);
            return n;
          }
        }
      }
    } else {
      wait = SendWait.data;
    }
    this.sendWaits.note(wait, now);
    if (ackDue) return this.build(now, size, false, 0, true);
    if (!blocked && !wantsData) this.recovery.markAppLimited();
    return 0;
  }

  /**
   * Size of the next data/control packet the window allows, 0 to wait for acks. Full-size
   * packets while the window holds one. With nothing in flight no ack will ever free room,
   * so a window smaller than one packet (a controller floor set for smaller packets than MTU
   * discovery reached) still sends a packet of what it holds, credit updates included.
   * (Packets cut to an arbitrary small remainder are not built: writeStreamFrames assumes
   * room for a chunk once MIN_STREAM_FRAME_ROOM is left.)
   */
  private packetLimit(size: number, room: number, inFlight: number): number {
    if (room >= size) return size;
    // Whole bytes: controllers compute windows in fractional bytes, and a fractional limit
    // overran the packet buffer (allocUnsafe truncates its size) by the fraction.
    if (inFlight === 0) return Math.min(size, Math.max(Math.floor(room), this.config.initialPacketSize));
    return 0;
  }

  /**
   * Builds one packet at txOut[txAt] or, without txOut, into a new buffer left in txBuilt, and
   * returns its length (0: nothing to send after all).
   * `mtuProbe` > 0: PING padded to that size. `ackOnly`: only an ACK (not in flight).
   */
  private build(now: Millis, size: number, isPtoProbe: boolean, mtuProbe: number, ackOnly = false): number {
    const pn = this.nextPn;
    const out = this.txOut;
    const base = out === null ? 0 : this.txAt;
    // Frames are written at absolute positions up to `limit`, the packet's end in `buf`.
    const limit = base + (mtuProbe > 0 ? mtuProbe : size);
    // Written in place into memory the caller will own: the caller's send queue, or Node's pooled
    // allocUnsafe, cheaper than building in a scratch buffer and copying (every byte up to `pos`
    // is written).
    const buf = out ?? Buffer.allocUnsafe(limit);
    let pos = writeHeader(buf, 0, this.cidHi, this.cidLo, pn, base);
    const sp = this.recovery.sent.acquire();
    let ackEliciting = false;

    // HANDSHAKE first: the gateway recognises an INIT by the frame right after the header.
    if (!ackOnly && this.pendingHandshake) {
      const params = this.localParams();
      if (pos + handshakeFrameSize(params) <= limit) {
        pos = writeHandshake(buf, pos, this.role === 'client' ? HandshakeKind.INIT : HandshakeKind.ACCEPT, params);
        sp.ctrl |= Ctrl.HANDSHAKE;
        this.pendingHandshake = false;
        ackEliciting = true;
      }
    }
    if (this.ackPending || ackOnly) {
      pos = this.writeAckFrame(buf, pos, limit, now, sp);
    }
    if (!ackOnly) {
      if (mtuProbe === 0 && this.state === 'connected') {
        pos = this.writeControlFrames(buf, pos, limit, sp);
        if (sp.ctrl !== 0 || sp.maxStreamDataIds !== null || sp.resetIds !== null) ackEliciting = true;
        const before = sp.streamCount;
        pos = this.writeStreamFrames(buf, pos, limit, sp);
        if (sp.streamCount > before) ackEliciting = true;
      }
      if (!ackEliciting && (this.pingPending || isPtoProbe || mtuProbe > 0)) {
        pos = writePing(buf, pos);
        ackEliciting = true;
      }
      this.pingPending = false;
    }
    if (!ackEliciting) {
      if (sp.ackLargest < 0) {
        this.recovery.sent.release(sp);
        return 0;
      }
      // Ack-only: every so often ask for an ACK back so the peer can prune (see constant).
      if (++this.ackOnlySinceEliciting >= ACK_ONLY_BEFORE_PING && pos < limit) {
        pos = writePing(buf, pos);
        ackEliciting = true;
      }
    }
    if (ackEliciting) this.ackOnlySinceEliciting = 0;
    // Pad the client's INIT (path must carry the base size) and MTU probes.
    const padTo =
      base + (mtuProbe > 0 ? mtuProbe : (sp.ctrl & Ctrl.HANDSHAKE) !== 0 && this.role === 'client' ? this.config.initialPacketSize : 0);
    if (pos < padTo) pos = writePadding(buf, pos, padTo - pos);
    const length = pos - base;

    this.nextPn = pn + 1;
    sp.pn = pn;
    sp.timeSent = now;
    sp.size = length;
    sp.ackEliciting = ackEliciting;
    sp.inFlight = ackEliciting;
    sp.isMtuProbe = mtuProbe > 0;
    // Ack-only packets are not tracked: nothing in them is retransmitted, and ack-of-ack
    // pruning rides on the ack-eliciting packets that also carry ACK frames.
    if (ackEliciting) this.recovery.onPacketSent(sp, now);
    else this.recovery.sent.release(sp);
    if (mtuProbe > 0) this.mtud.onProbeSent(mtuProbe);
    if (ackEliciting) {
      this.pacer.onSent(length);
      if (!this.elicitingSentSinceReceive) {
        this.elicitingSentSinceReceive = true;
        this.idleDeadline = Math.max(this.idleDeadline, now + this.idleTimeoutMs);
      }
    }
    this.lastSentAt = now;
    this.packetsSent++;
    this.bytesSent += length;
    if (out === null) this.txBuilt = buf;
    return length;
  }

  private writeAckFrame(buf: Uint8Array, pos: number, limit: number, now: Millis, sp: SentPacket): number {
    const received = this.received;
    if (received.isEmpty()) return pos;
    const room = limit - pos;
    if (room < ackFrameMaxSize(0)) return pos; // the first range always fits
    const delayUs = Math.max(0, Math.round((now - this.largestReceivedAt) * 1000));
    pos = writeAck(buf, pos, received.starts, received.ends, received.count, delayUs, MAX_ACK_RANGES_SENT, room);
    sp.ackLargest = received.maxEnd()! - 1;
    this.ackPending = false;
    this.ackImmediately = false;
    this.ackElicitingSinceAck = 0;
    this.ackDeadline = Infinity;
    return pos;
  }

  private writeControlFrames(buf: Uint8Array, pos: number, limit: number, sp: SentPacket): number {
    if (this.pendingMaxData && pos + 9 <= limit) {
      pos = writeMaxData(buf, pos, this.localMaxData);
      sp.ctrl |= Ctrl.MAX_DATA;
      this.pendingMaxData = false;
    }
    if (this.pendingMaxStreams && pos + 9 <= limit) {
      pos = writeMaxStreams(buf, pos, this.localMaxStreams);
      sp.ctrl |= Ctrl.MAX_STREAMS;
      this.pendingMaxStreams = false;
    }
    if (this.pendingMaxStreamData.size > 0) {
      for (const id of this.pendingMaxStreamData) {
        if (pos + 17 > limit) break;
        this.pendingMaxStreamData.delete(id);
        const s = this.streams.get(id);
        if (s === undefined || s.recv.reset) continue;
        pos = writeMaxStreamData(buf, pos, id, s.recv.maxData);
        (sp.maxStreamDataIds ??= []).push(id);
      }
    }
    if (this.pendingResets.size > 0) {
      for (const id of this.pendingResets) {
        if (pos + 25 > limit) break;
        this.pendingResets.delete(id);
        const s = this.streams.get(id);
        if (s === undefined || s.resetAcked) continue;
        pos = writeResetStream(buf, pos, id, s.resetCode, s.resetFinalSize);
        (sp.resetIds ??= []).push(id);
      }
    }
    return pos;
  }

  /** Fills the packet with stream chunks, round-robin across streams (no head-of-line blocking). */
  private writeStreamFrames(buf: Uint8Array, pos: number, limit: number, sp: SentPacket): number {
    const queue = this.sendQueue;
    while (limit - pos >= MIN_STREAM_FRAME_ROOM && this.sendQueueHead < queue.length) {
      const s = queue[this.sendQueueHead]!;
      const send = s.send;
      const connCredit = this.peerMaxData - this.connSent;
      // Header sized for the largest offset this stream can carry; the length fits 2 bytes.
      const hdr = 1 + varintSize(s.id) + varintSize(send.writeOffset) + varintSize(limit - pos);
      const room = limit - pos - hdr;
      if (s.resetCode >= 0 || !send.nextChunk(room, connCredit)) {
        this.dequeueHead(s);
        // Not re-queued unless sendable; parks it on the association-credit list if that is what blocks it.
        this.enqueue(s);
        continue;
      }
      const off = send.chunkOffset;
      const len = send.chunkLength;
      pos = writeStreamHeader(buf, pos, s.id, off, len, send.chunkFin);
      if (len > 0) send.copyOut(off, len, buf, pos);
      pos += len;
      sp.addStream(s.id, off, len, send.chunkFin);
      if (send.chunkIsNew) {
        this.connSent += len;
        this.streamBytesSent += len;
      } else {
        this.streamBytesRetransmitted += len;
      }
      this.dequeueHead(s);
      // Still has data: back of the queue, so streams take turns packet by packet.
      this.enqueue(s);
    }
    if (this.sendQueueHead > 256 && this.sendQueueHead * 2 > queue.length) {
      queue.splice(0, this.sendQueueHead);
      this.sendQueueHead = 0;
    } else if (this.sendQueueHead === queue.length) {
      queue.length = 0;
      this.sendQueueHead = 0;
    }
    return pos;
  }

  private dequeueHead(s: Stream): void {
    this.sendQueue[this.sendQueueHead++] = undefined as unknown as Stream;
    s.queued = false;
  }

  private buildClose(now: Millis): number {
    this.pendingClose = false;
    if (HEADER_SIZE + closeFrameSize(this.closeCode, this.closeReasonBytes) > this.mtud.current) this.closeReasonBytes = new Uint8Array(0);
    const out = this.txOut;
    const base = out === null ? 0 : this.txAt;
    const buf = out ?? Buffer.allocUnsafe(HEADER_SIZE + closeFrameSize(this.closeCode, this.closeReasonBytes));
    let pos = writeHeader(buf, 0, this.cidHi, this.cidLo, this.nextPn++, base);
    pos = writeClose(buf, pos, this.closeCode, this.closeReasonBytes);
    const length = pos - base;
    this.packetsSent++;
    this.bytesSent += length;
    this.lastSentAt = now;
    if (out === null) this.txBuilt = buf;
    if (this.abortAfterClose) this.finishClose(this.closeCode, this.closeReason, false);
    return length;
  }

  private finishClose(code: number, reason: string, byPeer: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.recovery.discardAll();
    this.sendQueue = [];
    this.sendQueueHead = 0;
    this.connBlockedStreams = [];
    this.streams.clear();
    this.emit({ type: 'closed', code, reason, byPeer });
  }

  private emit(e: ConnectionEvent): void {
    this.events.push(e);
  }
}
