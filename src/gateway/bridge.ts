// One TCP connection spliced onto one transport stream, after setup. Symmetric: the same
// code runs at the client's gateway and at the target's gateway.
//
// Backpressure: TCP -> stream pauses the socket when the stream (or the association's
// send backlog) refuses bytes and resumes on 'stream-writable'; stream -> TCP stops
// calling read() when socket.write() returns false (the unread bytes hold back the peer's
// flow-control credit) and resumes on 'drain'.
import { BLOCK_BUFFER_BYTES, giveBlockBuffer, takeBlockBuffer } from './block-buffers.ts';
import type { Socket } from 'node:net';
import type { Association, StreamListener, TrafficCounters } from './association.ts';
import { ResetCode, describeReset } from './open-header.ts';
import { describeBlockError, isPooledPart, releaseEncodedPart } from '../codec/index.ts';
import type { BlockDecoder, BlockEncoder } from '../codec/index.ts';
import { isSharedReadBuffer, readIntoSharedBuffer } from './tcp-read.ts';
import { turnElapsedMs } from './turn-budget.ts';

// One read from the core per socket.write: large enough to amortise calls, small enough
// that a paused socket holds little (plus at most one decoded block).
const READ_CHUNK = 64 * 1024;
// While the association holds this much unsent data, TCP reads (up to 64 KiB each) are gathered
// into blocks of up to 256 KiB before compressing: bigger blocks compress better (the lab's VM
// image: 0.342 of its size at 256 KiB against 0.3445 at 64 KiB with zstd 7, measured), and with
// that much queued (17 ms even at 1 Gbit/s) the wait costs the link nothing. A timer bounds the
// wait when reads stop; below the backlog threshold every read is compressed at once.
const GATHER_ABOVE_BACKLOG_BYTES = 2 * 1024 * 1024;
const GATHER_BLOCK_BYTES = BLOCK_BUFFER_BYTES;
const GATHER_MAX_WAIT_MS = 5;
// Node reads a TCP socket up to 64 KiB at a time.
const TCP_READ_MAX = 64 * 1024;
// While compressing behind a backlog of GATHER_ABOVE_BACKLOG_BYTES or more, a socket stops reading
// for the rest of an event-loop turn that has run this long, and reads on in the next. libuv reads
// a readable socket up to 32 times per callback, and with compression each read costs ~0.2-1 ms: a
// turn of reading held the transport's pacing timers and acknowledgements for several ms, and the
// link idled. In the lab (sonet, the VM-like payload) a sending gateway with a 12-15 MiB backlog
// put 400-700 Mbit/s on a 1 Gbit/s link while compressing and 850-950 while its arbiter tried raw.
// With the budget, in alternating runs: sonet +7% by medians (17 against 16 runs), metro +9%,
// baseline +7%, llmetro no difference (bench/results/datapath-2026-12-06.md §21).
const READ_TURN_BUDGET_MS = 1;
const EMPTY = new Uint8Array(0);

export type BridgeEnd = 'closed' | 'reset-local' | 'reset-remote' | 'association-lost' | 'protocol-error' | 'shutdown';

export interface BridgeSummary {
  streamId: number;
  /** Bytes read from the TCP socket (sent towards the peer). */
  bytesFromSocket: number;
  /** Bytes written to the TCP socket (received from the peer). */
  bytesToSocket: number;
  durationMs: number;
  end: BridgeEnd;
  detail: string;
}

/** The association's counters a bridge adds to. */
export type BridgeTraffic = Pick<TrafficCounters, 'rawOut' | 'rawIn' | 'readYields'>;

export interface BridgeOptions {
  assoc: Association;
  streamId: number;
  socket: Socket;
  encoder: BlockEncoder;
  decoder: BlockDecoder;
  /** Bytes already read from the stream before the bridge took over (after the open header). */
  initial?: Uint8Array | undefined;
  /** Association-wide counters this bridge adds to. */
  traffic: BridgeTraffic;
  onDone(summary: BridgeSummary): void;
}

export class StreamBridge implements StreamListener {
  readonly streamId: number;
  readonly startedAt = performance.now();
  bytesFromSocket = 0;
  bytesToSocket = 0;
  #assoc: Association;
  #socket: Socket;
  #encoder: BlockEncoder;
  #decoder: BlockDecoder;
  #onDone: (s: BridgeSummary) => void;
  #traffic: BridgeTraffic;
  /** Encoded bytes the stream has not accepted yet (socket paused meanwhile). */
  #pending: Uint8Array[] = [];
  /** TCP reads gathered into one larger block (see GATHER_ABOVE_BACKLOG_BYTES), in a pooled buffer. */
  #gather: Buffer | null = null;
  #gatheredBytes = 0;
  #gatherTimer: NodeJS.Timeout | null = null;
  /** What this bridge adds to the association's heldBytes. */
  #held = 0;
  #socketEnded = false; // TCP FIN from our socket
  #streamFinishedLocal = false; // we called finish()
  #remoteFinished = false; // peer's FIN delivered, socket.end() called
  #socketWriteBlocked = false;
  #streamDone = false; // stream-closed / reset / association gone
  #socketClosed = false;
  #done = false;
  #end: BridgeEnd = 'closed';
  #detail = '';

  constructor(o: BridgeOptions) {
    this.#assoc = o.assoc;
    this.streamId = o.streamId;
    this.#socket = o.socket;
    this.#encoder = o.encoder;
    this.#decoder = o.decoder;
    this.#onDone = o.onDone;
    this.#traffic = o.traffic;
    o.assoc.streams.set(o.streamId, this);
    const s = o.socket;
    s.setNoDelay(true);
    if (!readIntoSharedBuffer(s, this.#onSharedRead)) s.on('data', this.#onDataEvent);
    s.on('end', this.#onSocketEnd);
    s.on('drain', this.#onSocketDrain);
    s.on('error', this.#onSocketError);
    s.on('close', this.#onSocketClose);
    if (o.initial?.length) this.#deliver(o.initial);
    // Behind a full backlog a new connection waits its turn before its first read (thousands
    // opened at once each read a chunk they could not write).
    if (!o.assoc.sendBacklogFull(this.#resumeFromBacklog)) this.#resumeReading();
    this.onReadable();
  }

  /** Bytes read from the socket that the stream has not taken yet (memory accounting). */
  get pendingBytes(): number {
    let n = this.#gatheredBytes;
    for (const p of this.#pending) n += p.length;
    return n;
  }

  #syncHeld(): void {
    const now = this.pendingBytes;
    this.#assoc.heldBytes += now - this.#held;
    this.#held = now;
  }

  /** Bytes written to the socket that the kernel has not taken yet. */
  get socketWriteQueueBytes(): number {
    return this.#socket.writableLength;
  }

  // ---- TCP -> stream ----

  /** A read in the shared buffer (tcp-read.ts): whatever the stream does not take now is copied. */
  #onSharedRead = (view: Buffer): boolean => {
    this.#onSocketData(view);
    const pending = this.#pending;
    for (let i = 0; i < pending.length; i++) {
      const part = pending[i]!;
      if (isSharedReadBuffer(part)) pending[i] = Uint8Array.prototype.slice.call(part); // a copy (Buffer#slice is a view)
    }
    this.#syncHeld();
    this.#yieldIfTurnSpent();
    return true; // a refusal has paused the socket already (which stops reading at once)
  };

  #onDataEvent = (chunk: Buffer): void => {
    this.#onSocketData(chunk);
    this.#yieldIfTurnSpent();
  };

  /** Reading stopped for the rest of this event-loop turn (READ_TURN_BUDGET_MS). */
  #yielded = false;

  #yieldIfTurnSpent(): void {
    // Raw reads cost little each; yielding for them only cut the batches (random data, 4 pairs:
    // 788 against 817 Mbit/s by medians with the budget on every connection).
    if (this.#yielded || !this.#encoder.compressing || this.#socket.isPaused() || turnElapsedMs() < READ_TURN_BUDGET_MS) return;
    if (this.#assoc.backlog().bytes < GATHER_ABOVE_BACKLOG_BYTES) return; // the link needs the data soon
    this.#yielded = true;
    this.#traffic.readYields++;
    this.#socket.pause();
    setImmediate(this.#readOnAfterYield);
  }

  // The next turn: read on unless something else keeps the socket paused meanwhile.
  #readOnAfterYield = (): void => {
    this.#yielded = false;
    if (this.#streamDone || this.#socketClosed || this.#socketEnded || this.#pending.length > 0) return;
    if (!this.#assoc.sendBacklogFull(this.#resumeFromBacklog)) this.#resumeReading();
  };

  #onSocketData = (chunk: Buffer): void => {
    this.bytesFromSocket += chunk.length;
    this.#traffic.rawOut += chunk.length;
    // Uncompressed blocks gain nothing from being larger: no gathering (and no copy) unless the
    // encoder is compressing right now (not sending raw by choice or backing off).
    const assoc = this.#assoc;
    if (
      chunk.length <= TCP_READ_MAX &&
      (this.#gatheredBytes > 0 || (this.#encoder.compressing && !assoc.gatherFull() && assoc.backlog().bytes >= GATHER_ABOVE_BACKLOG_BYTES))
    ) {
      this.#gather ??= takeBlockBuffer();
      this.#gather.set(chunk, this.#gatheredBytes);
      this.#gatheredBytes += chunk.length;
      // Stop while one more read still fits the block (and the association's gathering its bound).
      if (this.#gatheredBytes <= GATHER_BLOCK_BYTES - TCP_READ_MAX && !assoc.gatherFull()) {
        this.#gatherTimer ??= setTimeout(this.#encodeGathered, GATHER_MAX_WAIT_MS);
        return;
      }
      this.#encodeGathered();
      return;
    }
    // Parts, not one framed copy: raw blocks go from the read buffer straight into the stream.
    for (const part of this.#encoder.encodeParts(chunk)) this.#pending.push(part);
    this.#drainPending();
  };

  #encodeGathered = (): void => {
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = null;
    const gather = this.#gather;
    if (gather === null || this.#gatheredBytes === 0 || this.#streamDone) return;
    const data = gather.subarray(0, this.#gatheredBytes);
    this.#gather = null;
    this.#gatheredBytes = 0;
    for (const part of this.#encoder.encodeParts(data)) this.#pending.push(part);
    this.#drainPending();
    // A raw block the stream has not taken yet is a view of the buffer: the buffer stays with it.
    if (!this.#pending.some((part) => part.buffer === gather.buffer)) giveBlockBuffer(gather);
  };

  /** The stream is gone: nothing queued towards it will be sent. */
  #dropQueued(): void {
    this.#assoc.reading(this.#stopForBacklog, false);
    this.#pending.length = 0;
    if (this.#gather !== null) giveBlockBuffer(this.#gather);
    this.#gather = null;
    this.#gatheredBytes = 0;
    this.#syncHeld();
    if (this.#gatherTimer !== null) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = null;
  }

  #resumeFromBacklog = (): void => {
    this.#drainPending();
  };

  #pauseReading(): void {
    this.#assoc.reading(this.#stopForBacklog, false);
    this.#socket.pause();
  }

  #resumeReading(): void {
    this.#assoc.reading(this.#stopForBacklog, true);
    this.#socket.resume();
  }

  /** The association's backlog filled while this socket was reading: wait for room. */
  #stopForBacklog = (): void => {
    if (this.#streamDone || this.#socketClosed || this.#socketEnded) return;
    this.#socket.pause();
    if (!this.#assoc.sendBacklogFull(this.#resumeFromBacklog)) this.#resumeReading();
  };

  #drainPending(): void {
    this.#writePending();
    // A compressed block the stream could not take yet is a view of the codec's pooled buffer:
    // held as a copy of its own size, and the buffer goes back (as the shared read buffer's views).
    const pending = this.#pending;
    for (let i = 0; i < pending.length; i++) {
      const part = pending[i]!;
      if (isPooledPart(part)) {
        pending[i] = Uint8Array.prototype.slice.call(part);
        releaseEncodedPart(part);
      }
    }
    this.#syncHeld();
  }

  #writePending(): void {
    const pending = this.#pending;
    while (pending.length > 0) {
      if (this.#streamDone) {
        this.#dropQueued();
        return;
      }
      if (this.#assoc.sendBacklogFull(this.#resumeFromBacklog)) {
        this.#pauseReading();
        return;
      }
      const head = pending[0]!;
      const n = this.#assoc.write(this.streamId, head);
      if (n < head.length) {
        pending[0] = head.subarray(n);
        this.#pauseReading();
        return;
      }
      pending.shift();
      releaseEncodedPart(head); // copied into the stream (a pooled compressed block's buffer goes back)
    }
    if (this.#socketEnded) {
      this.#finishStream();
    } else if (!this.#socketClosed) {
      this.#resumeReading();
    }
  }

  #onSocketEnd = (): void => {
    this.#socketEnded = true;
    this.#assoc.reading(this.#stopForBacklog, false);
    if (this.#gatheredBytes > 0)
      this.#encodeGathered(); // finishes the stream once written
    else if (this.#pending.length === 0) this.#finishStream();
  };

  #finishStream(): void {
    if (this.#streamFinishedLocal || this.#streamDone) return;
    this.#streamFinishedLocal = true;
    this.#assoc.finish(this.streamId);
    this.#maybeDone();
  }

  onWritable(): void {
    this.#drainPending();
  }

  // ---- stream -> TCP ----

  onReadable(): void {
    if (this.#socketWriteBlocked || this.#streamDone) return;
    const assoc = this.#assoc;
    let viewed = 0;
    let written = 0;
    let data: Uint8Array | null;
    // Everything readable now goes to the kernel in one writev: a write per decoded piece cost a
    // system call and a wake-up of the reader each (~30 KB per write in the lab). The pieces are
    // views of the stream's receive ring (raw blocks) or fresh buffers (decompressed blocks).
    this.#socket.cork();
    while (!this.#socketWriteBlocked && (data = assoc.readView(this.streamId, READ_CHUNK)) !== null) {
      viewed += data.length;
      const n = this.#deliver(data);
      if (n < 0) break;
      written += n;
    }
    if (viewed === 0) {
      if (!this.#socket.destroyed) this.#socket.uncork();
      return;
    }
    // The ring's bytes return once the socket no longer needs them: after the writes that
    // reference them (their callbacks come in order), at once if nothing was written.
    if (written > 0 && !this.#socket.destroyed) {
      this.#socket.write(EMPTY, () => assoc.release(this.streamId, viewed));
      this.#socket.uncork();
    } else {
      if (!this.#socket.destroyed) this.#socket.uncork();
      assoc.release(this.streamId, viewed);
    }
    // Reading returned the association's credit: let the core announce it.
    assoc.schedule();
  }

  /** Decodes and writes to the socket: the number of pieces written, -1 after a protocol error. */
  #deliver(data: Uint8Array): number {
    const r = this.#decoder.push(data, this.#lendOutput);
    const lent = this.#lent;
    if (!r.ok) {
      for (const b of lent) giveBlockBuffer(b);
      lent.length = 0;
      this.#protocolError(describeBlockError(r.error));
      return -1;
    }
    for (const chunk of r.data) {
      this.bytesToSocket += chunk.length;
      this.#traffic.rawIn += chunk.length;
      if (!this.#socket.write(chunk)) this.#socketWriteBlocked = true;
    }
    if (lent.length > 0) {
      // Back to the pool once the socket has written the blocks in them (callbacks come in order).
      const written = lent.splice(0);
      this.#socket.write(EMPTY, () => {
        for (const b of written) giveBlockBuffer(b);
      });
    }
    return r.data.length;
  }

  // The decoder's output buffers for compressed blocks (block-buffers.ts), noted until written.
  #lent: Buffer[] = [];
  #lendOutput = (size: number): Uint8Array | null => {
    if (size > BLOCK_BUFFER_BYTES) return null;
    const b = takeBlockBuffer();
    this.#lent.push(b);
    return b;
  };

  #onSocketDrain = (): void => {
    this.#socketWriteBlocked = false;
    this.onReadable();
  };

  onFinished(): void {
    const r = this.#decoder.finish();
    if (!r.ok) {
      this.#protocolError(describeBlockError(r.error));
      return;
    }
    this.#remoteFinished = true;
    if (!this.#socketClosed) this.#socket.end();
    this.#maybeDone();
  }

  // ---- endings ----

  onReset(code: number): void {
    this.#streamDone = true;
    this.#assoc.streams.delete(this.streamId);
    this.#end = 'reset-remote';
    this.#detail = describeReset(code);
    this.#dropQueued();
    this.#assoc.cancelBacklogWait(this.#resumeFromBacklog);
    // The peer's TCP reset becomes ours, and so does a refused, disallowed, unreachable or silent
    // target: a clean close would read as an empty reply, a reset as the failure it is.
    if (!this.#socketClosed) this.#socket.resetAndDestroy();
    this.#maybeDone();
  }

  onClosed(): void {
    this.#streamDone = true;
    this.#assoc.streams.delete(this.streamId);
    this.#maybeDone();
  }

  onAssociationClosed(reason: string): void {
    this.#streamDone = true;
    this.#end = 'association-lost';
    this.#detail = reason;
    this.#dropQueued();
    if (!this.#socketClosed) this.#socket.resetAndDestroy();
    this.#maybeDone();
  }

  /** Gateway shutdown after the grace period, or an operator abort. */
  abort(code: number = ResetCode.shutdown, why: BridgeEnd = 'shutdown'): void {
    if (this.#done) return;
    this.#end = why;
    this.#detail = describeReset(code);
    this.#resetStream(code);
    if (!this.#socketClosed) this.#socket.resetAndDestroy();
    this.#maybeDone();
  }

  #protocolError(reason: string): void {
    this.#end = 'protocol-error';
    this.#detail = reason;
    this.#resetStream(ResetCode.protocolError);
    if (!this.#socketClosed) this.#socket.resetAndDestroy();
    this.#maybeDone();
  }

  #resetStream(code: number): void {
    if (this.#streamDone) return;
    this.#streamDone = true;
    this.#dropQueued();
    this.#assoc.cancelBacklogWait(this.#resumeFromBacklog);
    this.#assoc.streams.delete(this.streamId);
    if (!this.#assoc.isClosed) {
      this.#assoc.resetStream(this.streamId, code);
    }
  }

  #onSocketError = (err: NodeJS.ErrnoException): void => {
    // ECONNRESET, EPIPE...: the TCP side died abruptly, so the far side must see a reset too.
    if (this.#end === 'closed') {
      this.#end = 'reset-local';
      this.#detail = err.code ?? err.message;
    }
    this.#resetStream(ResetCode.peerReset);
  };

  #onSocketClose = (hadError: boolean): void => {
    this.#socketClosed = true;
    // Both directions ended cleanly (its FIN read, ours sent): a normal close, even if the last
    // reads still wait for room in the stream; #drainPending writes them, then finishes.
    if (!hadError && this.#socketEnded && this.#remoteFinished && this.#end === 'closed') {
      this.#maybeDone();
      return;
    }
    // A socket that closed before both directions finished cleanly was torn down: reset.
    if (!this.#streamDone && !(this.#streamFinishedLocal && this.#remoteFinished)) {
      if (this.#end === 'closed') {
        this.#end = 'reset-local';
        this.#detail = 'socket closed before the stream finished';
      }
      this.#resetStream(ResetCode.peerReset);
    }
    this.#maybeDone();
  };

  #maybeDone(): void {
    if (this.#done) return;
    // Done when the socket is gone and the stream needs nothing more from us. A cleanly
    // finished stream may still await acks ('stream-closed'); the core finishes that alone.
    if (!this.#socketClosed) return;
    if (!this.#streamDone && !(this.#streamFinishedLocal && this.#remoteFinished)) return;
    this.#done = true;
    this.#assoc.reading(this.#stopForBacklog, false);
    this.#onDone({
      streamId: this.streamId,
      bytesFromSocket: this.bytesFromSocket,
      bytesToSocket: this.bytesToSocket,
      durationMs: performance.now() - this.startedAt,
      end: this.#end,
      detail: this.#detail,
    });
  }
}
