// The association's streams (quinn's StreamsState): opening and freeing them within the stream
// limits, flow control, the round-robin send queue, their frames on the way in and out, and what
// happens to their data when a packet is acknowledged or lost. Events go to the connection's queue.

import type { ConnectionConfig } from '../types.ts';
import type { EventQueue } from '../events.ts';
import { varintSize } from '../varint.ts';
import { writeMaxStreamData, writeMaxStreams, writeResetStream, writeStreamHeader, type Frame } from '../frame.ts';
import { Ctrl, type SentPacket } from '../sent-packets.ts';
import { ConnectionFlowControl } from './flow-control.ts';
import { RecvStream } from './recv.ts';
import { SendStream } from './send.ts';

// A STREAM frame is not started with less room than this (header + a few bytes).
const MIN_STREAM_FRAME_ROOM = 24;
// Largest sizes of the control frames (type byte, varints of at most 8 bytes).
const MAX_STREAMS_FRAME_SIZE = 9;
const MAX_STREAM_DATA_FRAME_SIZE = 17;
const RESET_STREAM_FRAME_SIZE = 25;
// The send queue's consumed head is cut off once it is this long and half the array.
const SEND_QUEUE_COMPACT_AT = 256;

type StreamDataFrame = Extract<Frame, { type: 'stream' | 'reset-stream' }>;

export class Stream {
  readonly id: number;
  readonly send: SendStream;
  readonly recv: RecvStream;
  readonly peerInitiated: boolean;
  /** In the send queue. */
  queued = false;
  /** Parked until the association's credit grows (MAX_DATA). */
  connBlocked = false;

  constructor(id: number, send: SendStream, recv: RecvStream, peerInitiated: boolean) {
    this.id = id;
    this.send = send;
    this.recv = recv;
    this.peerInitiated = peerInitiated;
  }

  /** Reset by either side (a reset stops both halves). */
  get isReset(): boolean {
    return this.send.isReset;
  }

  /** Both halves done: the stream's state can go. */
  isDone(): boolean {
    const sendDone = this.send.state.kind === 'reset-acked' || this.send.isComplete();
    const recv = this.recv.state.kind;
    return sendDone && (recv === 'data-read' || recv === 'reset');
  }
}

export class StreamsState {
  readonly #streams = new Map<number, Stream>();
  readonly #events: EventQueue;
  readonly #flow: ConnectionFlowControl;
  readonly #config: ConnectionConfig;
  /** Parity of the stream ids the peer opens. */
  readonly #peerParity: number;

  #sendQueue: Stream[] = [];
  #sendQueueHead = 0;
  #connBlocked: Stream[] = [];

  #nextLocalIndex = 0;
  /** How many streams we may open (cumulative). */
  #peerMaxStreams = 0;
  /** Next peer stream index not yet opened. */
  #nextPeerIndex = 0;
  /** How many streams the peer may open (cumulative). */
  #localMaxStreams: number;
  /** Initial per-stream credit from the peer. */
  #peerStreamWindow = 0;
  #maxStreamsDue = false;
  readonly #maxStreamDataDue = new Set<number>();
  readonly #resetsDue = new Set<number>();

  // A packet's frames are checked together before any is applied (see admit()): the highest
  // end admitted per stream. Most packets carry one stream's data, kept without the Map.
  #admitGrowth = 0;
  #admitFirstId = -1;
  #admitFirstEnd = 0;
  readonly #admitOthers = new Map<number, number>();

  // Counted where things happen, read by the connection's stats().
  #bytesWritten = 0;
  #bytesSent = 0;
  #bytesRetransmitted = 0;
  #bytesReceived = 0;

  constructor(role: 'client' | 'server', config: ConnectionConfig, events: EventQueue) {
    this.#config = config;
    this.#events = events;
    this.#peerParity = role === 'client' ? 1 : 0;
    this.#flow = new ConnectionFlowControl(config.connectionReceiveWindow);
    this.#localMaxStreams = config.maxStreams;
  }

  /** New stream bytes accepted by write() (minus those abandoned by resets). */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }
  /** First transmissions of stream bytes. */
  get bytesSent(): number {
    return this.#bytesSent;
  }
  get bytesRetransmitted(): number {
    return this.#bytesRetransmitted;
  }
  /** Unique stream bytes delivered in order. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }
  get count(): number {
    return this.#streams.size;
  }
  get localMaxData(): number {
    return this.#flow.localMaxData;
  }
  get localMaxStreams(): number {
    return this.#localMaxStreams;
  }

  /** The peer's transport parameters. */
  applyPeerParams(maxData: number, maxStreamData: number, maxStreams: number): void {
    this.#flow.setPeerMaxData(maxData);
    this.#peerStreamWindow = maxStreamData;
    this.#peerMaxStreams = maxStreams;
  }

  hasQueued(): boolean {
    return this.#sendQueueHead < this.#sendQueue.length;
  }

  hasControlPending(): boolean {
    return this.#flow.maxDataDue || this.#maxStreamsDue || this.#maxStreamDataDue.size > 0 || this.#resetsDue.size > 0;
  }

  // ------------------------------------------------------------------ application calls

  /** Opens a local stream: its id, or -1 when the peer's stream limit is reached. */
  open(): number {
    if (this.#nextLocalIndex >= this.#peerMaxStreams) return -1;
    const id = this.#nextLocalIndex * 2 + (this.#peerParity ^ 1);
    this.#nextLocalIndex++;
    this.#create(id, false);
    return id;
  }

  write(id: number, data: Uint8Array): number {
    const s = this.#streams.get(id);
    if (s === undefined) return 0;
    const n = s.send.write(data);
    if (n > 0) {
      this.#bytesWritten += n;
      this.#enqueue(s);
    }
    return n;
  }

  finish(id: number): void {
    const s = this.#streams.get(id);
    if (s === undefined) return;
    s.send.finish();
    this.#enqueue(s);
  }

  read(id: number, max: number, view: boolean): Uint8Array | null {
    const s = this.#streams.get(id);
    if (s === undefined) return null;
    const recv = s.recv;
    const out = view ? recv.readView(max) : recv.read(max);
    if (out !== null) {
      // The association's credit follows what is read; the stream's what is released.
      if (recv.refreshCredit()) this.#maxStreamDataDue.add(id);
      this.#flow.onConsumed(out.length);
    }
    if (recv.signalFinished()) {
      this.#events.push({ type: 'stream-finished', streamId: id });
      this.#tryFree(s);
    }
    return out;
  }

  release(id: number, bytes: number): boolean {
    const s = this.#streams.get(id);
    if (s === undefined) return false; // freed: nothing more to credit
    s.recv.release(bytes);
    if (!s.recv.refreshCredit()) return false;
    this.#maxStreamDataDue.add(id);
    return true;
  }

  /** Resets both halves, telling the peer `code`. */
  reset(id: number, code: number): void {
    const s = this.#streams.get(id);
    if (s === undefined || s.isReset) return;
    this.#resetSendSide(s, code);
    this.#flow.onConsumed(s.recv.abandon());
    this.#tryFree(s);
  }

  // ------------------------------------------------------------------ frames in

  #isPeerStream(id: number): boolean {
    return (id & 1) === this.#peerParity;
  }

  /** Within what either side may have opened (stream limits). */
  isValidId(id: number): boolean {
    const index = id >>> 1;
    return this.#isPeerStream(id) ? index < this.#localMaxStreams : index < this.#nextLocalIndex;
  }

  /** Starts checking a packet's frames: admit() each STREAM and RESET_STREAM, then admitsAll(). */
  beginAdmission(): void {
    this.#admitGrowth = 0;
    this.#admitFirstId = -1;
    if (this.#admitOthers.size > 0) this.#admitOthers.clear();
  }

  /** Checks a STREAM or RESET_STREAM frame against its stream's credit and final size. */
  admit(f: StreamDataFrame): boolean {
    const id = f.streamId;
    if (!this.isValidId(id)) return false;
    const s = this.#streams.get(id);
    const isNewPeer = s === undefined && this.#isPeerStream(id) && id >>> 1 >= this.#nextPeerIndex;
    if (s === undefined && !isNewPeer) return true; // closed stream: ignored when applied
    const end = f.type === 'stream' ? f.offset + f.data.length : f.finalSize;
    let highest = s !== undefined ? s.recv.highestOffset : 0;
    if (id === this.#admitFirstId) highest = this.#admitFirstEnd;
    else if (this.#admitOthers.size > 0 && this.#admitOthers.has(id)) highest = this.#admitOthers.get(id)!;
    if (s !== undefined) {
      const err = f.type === 'stream' ? s.recv.check(f.offset, f.data.length, f.fin) : s.recv.checkFinalSize(f.finalSize);
      if (err !== null) return false;
    } else if (end > this.#config.streamReceiveWindow) {
      return false;
    }
    if (end > highest) {
      this.#admitGrowth += end - highest;
      if (this.#admitFirstId < 0 || id === this.#admitFirstId) {
        this.#admitFirstId = id;
        this.#admitFirstEnd = end;
      } else {
        this.#admitOthers.set(id, end);
      }
    }
    return true;
  }

  /** The admitted frames together stay within the association's credit. */
  admitsAll(): boolean {
    return this.#flow.allowsReceive(this.#admitGrowth);
  }

  /** Existing stream, or a newly opened peer stream (opening lower ids too), or undefined if closed. */
  #streamForFrame(id: number): Stream | undefined {
    const s = this.#streams.get(id);
    if (s !== undefined || !this.#isPeerStream(id)) return s;
    const index = id >>> 1;
    if (index < this.#nextPeerIndex) return undefined;
    // admit() bounded index by localMaxStreams, so this loop is bounded by our own limit.
    let opened: Stream | undefined;
    for (; this.#nextPeerIndex <= index; this.#nextPeerIndex++) {
      const sid = this.#nextPeerIndex * 2 + this.#peerParity;
      opened = this.#create(sid, true);
      this.#events.push({ type: 'stream-opened', streamId: sid });
    }
    return opened;
  }

  #create(id: number, peerInitiated: boolean): Stream {
    const s = new Stream(
      id,
      new SendStream(this.#peerStreamWindow, this.#config.streamSendBuffer),
      new RecvStream(this.#config.streamReceiveWindow),
      peerInitiated,
    );
    this.#streams.set(id, s);
    return s;
  }

  onStreamFrame(id: number, offset: number, data: Uint8Array, fin: boolean): void {
    const s = this.#streamForFrame(id);
    if (s === undefined) return;
    const recv = s.recv;
    const before = recv.contiguousEnd;
    const grew = recv.insert(offset, data, fin);
    this.#flow.onReceived(grew);
    if (recv.isReset) {
      // Discarded data returns its credit at once.
      recv.skipToHighest();
      this.#flow.onConsumed(grew);
      this.#tryFree(s);
      return;
    }
    this.#bytesReceived += recv.contiguousEnd - before;
    if (recv.signalReadable()) {
      this.#events.push({ type: 'stream-readable', streamId: id });
    } else if (recv.signalFinished()) {
      this.#events.push({ type: 'stream-finished', streamId: id });
      this.#tryFree(s);
    }
  }

  onResetStream(id: number, code: number, finalSize: number): void {
    const s = this.#streamForFrame(id);
    if (s === undefined) return;
    const recv = s.recv;
    const highest = recv.highestOffset;
    // Bytes never read (or never received) up to the final size return their credit.
    const consumed = recv.onReset(finalSize);
    this.#flow.onReceived(recv.highestOffset - highest);
    this.#flow.onConsumed(consumed);
    if (!s.isReset) {
      this.#events.push({ type: 'stream-reset', streamId: id, code });
      this.#resetSendSide(s, code);
    }
    this.#tryFree(s);
  }

  onMaxData(max: number): void {
    if (this.#flow.raisePeerMaxData(max)) this.#requeueConnBlocked();
  }

  onMaxStreamData(id: number, max: number): void {
    const s = this.#streams.get(id);
    if (s?.send.raiseMaxData(max)) this.#enqueue(s);
  }

  onMaxStreams(max: number): void {
    if (max > this.#peerMaxStreams) this.#peerMaxStreams = max;
  }

  /** Stops sending on `s`; tells the peer our final size unless it already has everything. */
  #resetSendSide(s: Stream, code: number): void {
    this.#bytesWritten -= s.send.unsentBytes();
    if (s.send.reset(code)) this.#resetsDue.add(s.id);
    this.#maxStreamDataDue.delete(s.id);
  }

  /** Frees a stream whose both halves are done; returns a stream slot to the peer. */
  #tryFree(s: Stream): void {
    if (!s.isDone()) return;
    if (!this.#streams.delete(s.id)) return;
    this.#maxStreamDataDue.delete(s.id);
    this.#resetsDue.delete(s.id);
    if (!s.isReset) this.#events.push({ type: 'stream-closed', streamId: s.id });
    if (s.peerInitiated) {
      this.#localMaxStreams++;
      this.#maxStreamsDue = true;
    }
  }

  // ------------------------------------------------------------------ frames out

  #enqueue(s: Stream): void {
    if (s.queued || s.isReset) return;
    if (!s.send.hasSendable(this.#flow.sendCredit())) {
      if (s.send.blockedOnlyByConnection() && !s.connBlocked) {
        s.connBlocked = true;
        this.#connBlocked.push(s);
      }
      return;
    }
    s.queued = true;
    this.#sendQueue.push(s);
  }

  #requeueConnBlocked(): void {
    const blocked = this.#connBlocked;
    if (blocked.length === 0) return;
    this.#connBlocked = [];
    for (const s of blocked) {
      s.connBlocked = false;
      this.#enqueue(s);
    }
  }

  writeControlFrames(buf: Uint8Array, pos: number, limit: number, sp: SentPacket): number {
    pos = this.#flow.writeMaxData(buf, pos, limit, sp);
    if (this.#maxStreamsDue && pos + MAX_STREAMS_FRAME_SIZE <= limit) {
      pos = writeMaxStreams(buf, pos, this.#localMaxStreams);
      sp.ctrl |= Ctrl.MAX_STREAMS;
      this.#maxStreamsDue = false;
    }
    if (this.#maxStreamDataDue.size > 0) {
      for (const id of this.#maxStreamDataDue) {
        if (pos + MAX_STREAM_DATA_FRAME_SIZE > limit) break;
        this.#maxStreamDataDue.delete(id);
        const s = this.#streams.get(id);
        if (s === undefined || s.recv.isReset) continue;
        pos = writeMaxStreamData(buf, pos, id, s.recv.maxData);
        (sp.maxStreamDataIds ??= []).push(id);
      }
    }
    if (this.#resetsDue.size > 0) {
      for (const id of this.#resetsDue) {
        if (pos + RESET_STREAM_FRAME_SIZE > limit) break;
        this.#resetsDue.delete(id);
        const state = this.#streams.get(id)?.send.state;
        if (state?.kind !== 'reset-sent') continue;
        pos = writeResetStream(buf, pos, id, state.code, state.finalSize);
        (sp.resetIds ??= []).push(id);
      }
    }
    return pos;
  }

  /** Fills the packet with stream chunks, round-robin across streams (no head-of-line blocking). */
  writeStreamFrames(buf: Uint8Array, pos: number, limit: number, sp: SentPacket): number {
    const queue = this.#sendQueue;
    const flow = this.#flow;
    while (limit - pos >= MIN_STREAM_FRAME_ROOM && this.#sendQueueHead < queue.length) {
      const s = queue[this.#sendQueueHead]!;
      const send = s.send;
      // Header sized for the largest offset this stream can carry; the length fits 2 bytes.
      const hdr = 1 + varintSize(s.id) + varintSize(send.writeOffset) + varintSize(limit - pos);
      const room = limit - pos - hdr;
      if (s.isReset || !send.nextChunk(room, flow.sendCredit())) {
        this.#dequeueHead(s);
        // Not re-queued unless sendable; parks it on the association-credit list if that is what blocks it.
        this.#enqueue(s);
        continue;
      }
      const off = send.chunkOffset;
      const len = send.chunkLength;
      const fin = send.chunkFin;
      pos = writeStreamHeader(buf, pos, s.id, off, len, fin);
      if (len > 0) send.copyOut(off, len, buf, pos);
      pos += len;
      sp.addStream(s.id, off, len, fin);
      if (send.chunkIsNew) {
        flow.onSent(len);
        this.#bytesSent += len;
      } else {
        this.#bytesRetransmitted += len;
      }
      this.#dequeueHead(s);
      // Still has data: back of the queue, so streams take turns packet by packet.
      this.#enqueue(s);
    }
    if (this.#sendQueueHead > SEND_QUEUE_COMPACT_AT && this.#sendQueueHead * 2 > queue.length) {
      queue.splice(0, this.#sendQueueHead);
      this.#sendQueueHead = 0;
    } else if (this.#sendQueueHead === queue.length) {
      queue.length = 0;
      this.#sendQueueHead = 0;
    }
    return pos;
  }

  #dequeueHead(s: Stream): void {
    this.#sendQueue[this.#sendQueueHead++] = undefined as unknown as Stream;
    s.queued = false;
  }

  // ------------------------------------------------------------------ acknowledgements and losses

  onPacketAcked(p: SentPacket): void {
    for (let i = 0; i < p.streamCount; i++) {
      const s = this.#streams.get(p.streamIds[i]!);
      if (s === undefined) continue;
      const freed = s.send.onAcked(p.streamOffsets[i]!, p.streamLengths[i]!, p.streamFins[i]!);
      if (freed && s.send.wakeWriter()) this.#events.push({ type: 'stream-writable', streamId: s.id });
      // Not only when the FIN's packet is acked: under loss the FIN is often acked before an
      // earlier range's retransmission, and the stream completes with that later ack.
      if (s.send.isComplete()) this.#tryFree(s);
    }
    if (p.resetIds !== null) {
      for (const id of p.resetIds) {
        const s = this.#streams.get(id);
        if (s !== undefined) {
          s.send.onResetAcked();
          this.#tryFree(s);
        }
      }
    }
  }

  onPacketLost(p: SentPacket): void {
    for (let i = 0; i < p.streamCount; i++) {
      const s = this.#streams.get(p.streamIds[i]!);
      if (s === undefined) continue;
      s.send.onLost(p.streamOffsets[i]!, p.streamLengths[i]!, p.streamFins[i]!);
      this.#enqueue(s);
    }
    if (p.ctrl & Ctrl.MAX_DATA) this.#flow.onMaxDataLost();
    if (p.ctrl & Ctrl.MAX_STREAMS) this.#maxStreamsDue = true;
    if (p.maxStreamDataIds !== null) {
      for (const id of p.maxStreamDataIds) if (this.#streams.has(id)) this.#maxStreamDataDue.add(id);
    }
    if (p.resetIds !== null) {
      for (const id of p.resetIds) {
        if (this.#streams.get(id)?.send.state.kind === 'reset-sent') this.#resetsDue.add(id);
      }
    }
  }

  // ------------------------------------------------------------------ memory

  bufferedBytes(): { send: number; sendAllocated: number; recv: number; recvAllocated: number } {
    const b = { send: 0, sendAllocated: 0, recv: 0, recvAllocated: 0 };
    for (const s of this.#streams.values()) {
      b.send += s.send.bufferedBytes();
      b.sendAllocated += s.send.allocatedBytes();
      b.recv += s.recv.bufferedBytes();
      b.recvAllocated += s.recv.allocatedBytes();
    }
    return b;
  }

  /** Idle receive rings go back to the pool (send chunks go back as they are acknowledged). */
  trim(): void {
    for (const s of this.#streams.values()) s.recv.trim();
  }

  /** Forgets every stream (the connection closed). */
  clear(): void {
    this.#sendQueue = [];
    this.#sendQueueHead = 0;
    this.#connBlocked = [];
    this.#streams.clear();
  }
}
