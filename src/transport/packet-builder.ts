// Packet assembly (aioquic's packet_builder.py, quinn's PacketBuilder): what goes into one
// outgoing datagram and the sent-packet record kept for it. The connection decides whether a
// packet may leave and of which kind; the builder writes the header, our HANDSHAKE when due, the
// ACK, the streams' control and data frames, a PING when nothing else asks for an ACK, and the
// padding, then tells the parts that count sent packets (recovery, MTU discovery, the pacer,
// the idle timer, the datagram counters).

import type { ConnectionConfig, Millis } from './types.ts';
import { HEADER_SIZE, writeHeader } from './packet.ts';
import {
  HandshakeKind,
  closeFrameSize,
  handshakeFrameSize,
  writeClose,
  writeHandshake,
  writePadding,
  writePing,
  type TransportParams,
} from './frame.ts';
import { Ctrl } from './sent-packets.ts';
import type { Recovery } from './recovery.ts';
import type { MtuDiscovery } from './mtud.ts';
import { type AckTracker, MAX_ACK_DELAY_MS } from './ack-tracker.ts';
import type { StreamsState } from './streams/state.ts';
import type { SendScheduler } from './send-scheduler.ts';
import type { IdleTimer } from './idle.ts';
import type { DatagramCounters } from './stats.ts';

/** What a packet is for: it decides which frames go in and how it is padded. */
export const PacketKind = {
  /** Whatever is due, up to the size given. */
  data: 0,
  /** Probe timeout: ack-eliciting whatever else is due (a PING if nothing is). */
  ptoProbe: 1,
  /** Path MTU probe: a PING, padded to the size being probed. */
  mtuProbe: 2,
  /** Only an ACK (not in flight). */
  ackOnly: 3,
} as const;
export type PacketKind = (typeof PacketKind)[keyof typeof PacketKind];

const NO_REASON = new Uint8Array(0);

/** The connection's parts that fill a packet or count it once sent. */
export interface PacketParts {
  role: 'client' | 'server';
  config: ConnectionConfig;
  recovery: Recovery;
  acks: AckTracker;
  streams: StreamsState;
  mtud: MtuDiscovery;
  scheduler: SendScheduler;
  idle: IdleTimer;
  counters: DatagramCounters;
}

export class PacketBuilder {
  readonly #role: 'client' | 'server';
  readonly #config: ConnectionConfig;
  readonly #recovery: Recovery;
  readonly #acks: AckTracker;
  readonly #streams: StreamsState;
  readonly #mtud: MtuDiscovery;
  readonly #scheduler: SendScheduler;
  readonly #idle: IdleTimer;
  readonly #counters: DatagramCounters;

  // The header: the connection id (the client's choice) and the next packet number. The id's
  // halves start as -0, a double: see packet.ts newHeader.
  #cidHi = -0;
  #cidLo = -0;
  #nextPn = 0;

  /** Our HANDSHAKE frame (INIT or ACCEPT) goes in the next packet that has room for it. */
  handshakeDue = false;
  /** A PING goes in the next packet that is not ack-only (a keepalive). */
  pingDue = false;

  // Where packets are written: the caller's buffer (pollTransmitInto) or, when null, a new one
  // left in #built (pollTransmit).
  #out: Uint8Array | null = null;
  #at = 0;
  #built: Uint8Array | null = null;

  constructor(parts: PacketParts) {
    this.#role = parts.role;
    this.#config = parts.config;
    this.#recovery = parts.recovery;
    this.#acks = parts.acks;
    this.#streams = parts.streams;
    this.#mtud = parts.mtud;
    this.#scheduler = parts.scheduler;
    this.#idle = parts.idle;
    this.#counters = parts.counters;
  }

  setConnectionId(hi: number, lo: number): void {
    this.#cidHi = hi;
    this.#cidLo = lo;
  }

  isConnectionId(hi: number, lo: number): boolean {
    return hi === this.#cidHi && lo === this.#cidLo;
  }

  /** Connection id as 16 hex digits (for logs and endpoint routing). */
  get connectionId(): string {
    return this.#cidHi.toString(16).padStart(8, '0') + this.#cidLo.toString(16).padStart(8, '0');
  }

  /** Packets are written into `out` at `at` from now on, or with null each into a new buffer (takeBuilt). */
  writeInto(out: Uint8Array | null, at: number): void {
    this.#out = out;
    this.#at = at;
  }

  /** The new buffer the last packet was built in (when there was no `out`). */
  takeBuilt(): Uint8Array {
    const buf = this.#built!;
    this.#built = null;
    return buf;
  }

  /**
   * Builds one packet of `kind`, at most `size` bytes (an MTU probe: exactly), and returns its
   * length (0: nothing to send after all). Stream and control frames go in only once `open`.
   */
  build(now: Millis, size: number, kind: PacketKind, open: boolean): number {
    const pn = this.#nextPn;
    const out = this.#out;
    const base = out === null ? 0 : this.#at;
    const mtuProbe = kind === PacketKind.mtuProbe;
    const ackOnly = kind === PacketKind.ackOnly;
    // Frames are written at absolute positions up to `limit`, the packet's end in `buf`.
    const limit = base + size;
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
    if (!ackOnly && this.handshakeDue) {
      const params = this.#localParams();
      if (pos + handshakeFrameSize(params) <= limit) {
        pos = writeHandshake(buf, pos, this.#role === 'client' ? HandshakeKind.INIT : HandshakeKind.ACCEPT, params);
        sp.ctrl |= Ctrl.HANDSHAKE;
        this.handshakeDue = false;
        ackEliciting = true;
      }
    }
    if (acks.isPending || ackOnly) {
      pos = acks.writeFrame(buf, pos, limit, now, sp);
    }
    if (!ackOnly) {
      if (!mtuProbe && open) {
        pos = this.#streams.writeControlFrames(buf, pos, limit, sp);
        if (sp.ctrl !== 0 || sp.maxStreamDataIds !== null || sp.resetIds !== null) ackEliciting = true;
        const before = sp.streamCount;
        pos = this.#streams.writeStreamFrames(buf, pos, limit, sp);
        if (sp.streamCount > before) ackEliciting = true;
      }
      if (!ackEliciting && (this.pingDue || kind === PacketKind.ptoProbe || mtuProbe)) {
        pos = writePing(buf, pos);
        ackEliciting = true;
      }
      this.pingDue = false;
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
      base + (mtuProbe ? size : (sp.ctrl & Ctrl.HANDSHAKE) !== 0 && this.#role === 'client' ? this.#config.initialPacketSize : 0);
    if (pos < padTo) pos = writePadding(buf, pos, padTo - pos);
    const length = pos - base;

    this.#nextPn = pn + 1;
    sp.pn = pn;
    sp.timeSent = now;
    sp.size = length;
    sp.ackEliciting = ackEliciting;
    sp.inFlight = ackEliciting;
    sp.isMtuProbe = mtuProbe;
    // Ack-only packets are not tracked: nothing in them is retransmitted, and ack-of-ack
    // pruning rides on the ack-eliciting packets that also carry ACK frames.
    if (ackEliciting) recovery.onPacketSent(sp, now);
    else recovery.sent.release(sp);
    if (mtuProbe) this.#mtud.onProbeSent(size);
    if (ackEliciting) this.#scheduler.onSent(length);
    this.#onSent(now, length, ackEliciting, buf);
    return length;
  }

  /** Builds a packet of our CLOSE alone (not tracked: a lost CLOSE is repeated, not retransmitted). */
  buildClose(now: Millis, code: number, reasonBytes: Uint8Array): number {
    // A reason too long for one packet is left out: the code is what matters.
    const reason = HEADER_SIZE + closeFrameSize(code, reasonBytes) > this.#mtud.current ? NO_REASON : reasonBytes;
    const out = this.#out;
    const base = out === null ? 0 : this.#at;
    const buf = out ?? Buffer.allocUnsafe(HEADER_SIZE + closeFrameSize(code, reason));
    let pos = writeHeader(buf, 0, this.#cidHi, this.#cidLo, this.#nextPn++, base);
    pos = writeClose(buf, pos, code, reason);
    const length = pos - base;
    this.#onSent(now, length, false, buf);
    return length;
  }

  #onSent(now: Millis, length: number, ackEliciting: boolean, buf: Uint8Array): void {
    this.#idle.onSent(now, ackEliciting);
    this.#counters.packetsSent++;
    this.#counters.bytesSent += length;
    if (this.#out === null) this.#built = buf;
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
}
