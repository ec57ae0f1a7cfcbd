// Opening inbound data messages (WireGuard's receive.go), a receive batch at a time.
//
// Inbound flow, as the gateway runs it (src/gateway/wan-security.ts, per socket receive batch):
//   1. handleDatagram -> queue(): the checks that need no decryption (the receiver index names
//      live keys, their age, the counter limit, the replay window); what passes is queued.
//   2. End of the batch, openDeferred: consecutive queued messages under the same keys in the same
//      buffer form a run, opened in one AEAD call (the per-call cost is a third of a 1400-byte
//      open) into the endpoint's plaintext slab.
//   3. Per authenticated message, in arrival order: the replay window again (a copy within the
//      batch is a replay), then accepted; the peer's address follows it (roaming); a responder's
//      new keys are confirmed; keepalives stop here, datagrams go to `deliver`.
//
// Buffer ownership: a datagram passed to handleDatagram stays the caller's, is only read, and
// must stay unchanged until the next openDeferred returns (the gateway passes views of its
// socket's receive buffer and reuses it after the batch). A plaintext passed to `deliver` is a
// view of the endpoint's slab, valid only until `deliver` returns: copy what you keep.
import type { IndexEntry, PeerId, PeerState } from './peer.ts';
import type { ReplayVerdict } from './replay-window.ts';
import { DEFERRED, DROP, type HandleResult } from './results.ts';
import { dataCounter, type Keypair } from './keypair.ts';
import type { Sessions } from './sessions.ts';
import { DATA, DATA_OVERHEAD, readU32 } from './wire.ts';

/** openDeferred's receiver: an authenticated datagram, its source, and when it arrived (handleDatagram's `now`). */
export type DeferredDelivery = (peer: PeerId, plaintext: Uint8Array, source: string, arrival: number) => void;

// Plaintexts are written into one slab of this size (~180 datagrams of 1400 bytes), from its start
// again once full: what it held was delivered, and `deliver` copies what it keeps.
const PLAIN_SLAB_BYTES = 256 * 1024;

/** The queue: parallel arrays, reused batch after batch. */
class DeferredOpens {
  count = 0;
  datagrams: Array<Uint8Array | null> = [];
  entries: Array<IndexEntry | null> = [];
  sources: string[] = [];
  counters = new Float64Array(256);
  /** When each message arrived (handleDatagram's `now`), handed on with its plaintext. */
  arrivals = new Float64Array(256);
  // One run's arguments to openRun.
  ats = new Int32Array(256);
  outAts = new Int32Array(256);
  lens = new Int32Array(256);
  runCounters = new Float64Array(256);
  results = new Int32Array(256);

  /** Doubles the room (the queued counters are kept; the run arrays are scratch). */
  grow(): void {
    const size = this.counters.length * 2;
    const counters = new Float64Array(size);
    counters.set(this.counters);
    this.counters = counters;
    const arrivals = new Float64Array(size);
    arrivals.set(this.arrivals);
    this.arrivals = arrivals;
    this.ats = new Int32Array(size);
    this.outAts = new Int32Array(size);
    this.lens = new Int32Array(size);
    this.runCounters = new Float64Array(size);
    this.results = new Int32Array(size);
  }
}

export class Receiver {
  readonly #sessions: Sessions;
  readonly #queue = new DeferredOpens();
  #slab = new Uint8Array(0);
  #slabPos = 0;
  // openRun takes a run as offsets into a view of the whole buffer the datagrams share. The
  // gateway's receive buffer is the same one every batch, so the view is kept, not made per run.
  #whole = new Uint8Array(0);

  constructor(sessions: Sessions) {
    this.#sessions = sessions;
  }

  /** Data messages queued, not opened yet. */
  get count(): number {
    return this.#queue.count;
  }

  /** A data message (type and minimum length checked by the caller): queued (DEFERRED) or dropped (counted). */
  queue(data: Uint8Array, source: string, now: number): HandleResult {
    const s = this.#sessions;
    const entry = s.indices.get(readU32(data, DATA.receiverIndex));
    const kp = entry?.keypair;
    if (!entry || !kp) {
      s.counters.unknownIndex++;
      return DROP['unknown-index'];
    }
    if (now - kp.createdAt >= s.limits.rejectAfterMs) {
      s.counters.expiredKey++;
      return DROP['expired-key'];
    }
    const counter = dataCounter(data);
    if (counter >= s.limits.rejectAfterMessages) {
      s.counters.expiredKey++;
      return DROP['expired-key'];
    }
    const verdict = kp.replay.check(counter);
    if (verdict !== 'fresh') return this.#replayed(verdict);
    const d = this.#queue;
    const k = d.count++;
    if (k === d.counters.length) d.grow();
    d.datagrams[k] = data;
    d.entries[k] = entry;
    d.sources[k] = source;
    d.counters[k] = counter;
    d.arrivals[k] = now;
    return DEFERRED;
  }

  /**
   * Opens what was queued and hands each authenticated datagram to `deliver`, in arrival order.
   * Messages whose keys a handshake retired meanwhile are dropped as unknown; a replay within
   * the batch as a duplicate.
   */
  openAll(deliver: DeferredDelivery): void {
    const d = this.#queue;
    const n = d.count;
    let start = 0;
    while (start < n) {
      // A run: consecutive messages under the same keys in the same buffer.
      const entry = d.entries[start]!;
      const kp = entry.keypair!;
      const buffer = d.datagrams[start]!.buffer;
      let end = start + 1;
      while (end < n && d.entries[end]!.keypair === kp && d.datagrams[end]!.buffer === buffer) end++;
      if (this.#sessions.indices.get(kp.localIndex)?.keypair !== kp) {
        // Retired (and wiped) by a handshake handled after these were queued.
        this.#sessions.counters.unknownIndex += end - start;
      } else {
        if (this.#whole.buffer !== buffer) this.#whole = new Uint8Array(buffer as ArrayBuffer);
        // In pieces that fit the plaintext slab, starting it again between.
        for (let k = start; k < end; ) k = this.#openRun(kp, entry.peer, this.#whole, k, end, deliver);
      }
      start = end;
    }
    for (let k = 0; k < n; k++) {
      d.datagrams[k] = null;
      d.entries[k] = null;
      d.sources[k] = '';
    }
    d.count = 0;
  }

  /** Opens queued messages from `start` on (all up to `end`, or as many as the slab holds); returns where it stopped. */
  #openRun(kp: Keypair, p: PeerState, whole: Uint8Array, start: number, end: number, deliver: DeferredDelivery): number {
    const d = this.#queue;
    if (this.#slabPos + d.datagrams[start]!.length > this.#slab.length) {
      // What the slab held was delivered and is no longer needed.
      if (this.#slab.length === 0) this.#slab = Buffer.allocUnsafeSlow(PLAIN_SLAB_BYTES);
      this.#slabPos = 0;
    }
    const slab = this.#slab;
    let pos = this.#slabPos;
    let count = 0;
    for (let k = start; k < end; k++, count++) {
      const m = d.datagrams[k]!;
      if (pos + m.length > slab.length) break;
      d.outAts[count] = pos;
      pos = (pos + m.length - DATA_OVERHEAD + 7) & ~7;
      d.ats[count] = m.byteOffset;
      d.lens[count] = m.length;
      d.runCounters[count] = d.counters[k]!;
    }
    this.#slabPos = pos;
    kp.aead.openRun(kp.recvKey, whole, d.ats, d.lens, d.runCounters, count, DATA.headerSize, d.results, slab, d.outAts);
    const s = this.#sessions;
    for (let k = 0; k < count; k++) {
      const n = d.results[k]!;
      if (n < 0) {
        s.counters.authFailures++;
        continue;
      }
      const counter = d.runCounters[k]!;
      const verdict = kp.replay.check(counter); // a copy of an earlier message of this batch
      if (verdict !== 'fresh') {
        this.#replayed(verdict);
        continue;
      }
      kp.replay.accept(counter);
      s.counters.packetsOpened++;
      const source = d.sources[start + k]!;
      p.address = source; // roaming: reply to where authenticated traffic comes from
      if (kp === p.next) s.confirmNext(p, source);
      if (n === 0) s.counters.keepalivesReceived++;
      else deliver(p.id, slab.subarray(d.outAts[k]!, d.outAts[k]! + n), source, d.arrivals[start + k]!);
    }
    return start + count;
  }

  #replayed(verdict: Exclude<ReplayVerdict, 'fresh'>): HandleResult {
    if (verdict === 'duplicate') {
      this.#sessions.counters.replays++;
      return DROP.duplicate;
    }
    this.#sessions.counters.tooOld++;
    return DROP['too-old'];
  }
}
