// The WAN socket on the lh_udp addon (native/lh_udp.c): a finished batch of datagrams goes to the
// kernel in one sendmmsg (UDP GSO for runs of equal sizes), and receives come in recvmmsg batches
// of up to RECV_BATCH, with the kernel's arrival time of each datagram, one JS call per batch,
// paced by receive coalescing. Same contract as the node:dgram link (src/gateway/udp-link.ts);
// chosen by UdpLink.bind when the addon is built.
import type { RemoteInfo } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from './address.ts';
import type { DatagramBatch, DatagramSink, SocketBuffers, UdpLink, UdpLinkStats } from './udp-link.ts';
import { newUdpLinkStats } from './udp-link-stats.ts';

/** An open socket of the addon (an opaque external). */
export type NativeSocket = { readonly __lhUdpSocket: unique symbol };

/** native/lh_udp.c; setup calls throw Node-style errors (code, errno, syscall), the datapath returns -errno. */
export interface LhUdpAddon {
  open(family: 4 | 6, host: string, port: number, reusePort: boolean, recvBufferBytes: number, sendBufferBytes: number): NativeSocket;
  connect(s: NativeSocket, host: string, port: number): void;
  localAddress(s: NativeSocket): [string, number];
  bufferSizes(s: NativeSocket): [number, number];
  /** Sends lens[first .. first+count) lying back to back in buf from byteOffset; how many went, or -errno. */
  sendBatch(s: NativeSocket, buf: Uint8Array, lens: Int32Array, first: number, count: number, byteOffset: number): number;
  sendOne(s: NativeSocket, data: Uint8Array, host: string, port: number): number;
  /**
   * callback(1, n): n messages in slots (meta per slot: length, port, family, address x4, segment
   * size: a GRO-coalesced message holds datagrams of that size back to back; age: microseconds
   * since the kernel received it; readTimeMs: when the batch was read, CLOCK_MONOTONIC ms); (2, 0): writable;
   * (3, n): n socket errors skipped.
   */
  startPoll(
    s: NativeSocket,
    recvBuf: Uint8Array,
    meta: Int32Array,
    slotBytes: number,
    maxBatch: number,
    cb: (event: number, count: number, readTimeMs: number) => void,
  ): void;
  setWritableWanted(s: NativeSocket, on: boolean): void;
  /** UDP GSO sends and GRO receives (on by default). */
  setSegmentation(s: NativeSocket, on: boolean): void;
  /** Pause reads for `us` after each batch and take what arrived meanwhile in one (0: off). */
  setRecvCoalescing(s: NativeSocket, us: number): void;
  formatAddress(meta: Int32Array, index: number): string;
  close(s: NativeSocket): void;
  fd(s: NativeSocket): number;
  readonly maxBatch: number;
  readonly metaStride: number;
  readonly EAGAIN: number;
}

const EV_DATAGRAMS = 1;
const EV_WRITABLE = 2;
// Datagrams per recvmmsg: a full batch is ~90 KB at 1400 bytes, a few hundred microseconds of
// processing, short enough not to delay timers or TCP reads.
const RECV_BATCH = 64;
// Any UDP payload fits a slot (no truncation whatever the peer's MTU). Only the bytes a datagram
// fills are touched; the 128 extra bytes keep slot starts from all mapping to the same cache sets.
const RECV_SLOT = 65536 + 128;
// Received datagrams are copied out into slabs of this size: every datagram keeps its own bytes
// (callers may decrypt in place or keep them), at one allocation per ~180 datagrams.
const RECV_SLAB_BYTES = 256 * 1024;
// What the kernel refused (a full socket buffer) waits here, per peer, until the socket is
// writable again: several flushes' worth, then further datagrams are dropped as a full buffer would.
const BACKLOG_DATAGRAMS = 2048;
const BACKLOG_BYTES = 2 * 1024 * 1024;

/** Datagrams the kernel refused, back to back in `buf` from byte `headOffset`, oldest first. */
class Backlog {
  // Allocated when first needed: most paths never see the kernel refuse.
  #buf: Buffer | null = null;
  #lens: Int32Array | null = null;
  head = 0;
  count = 0;
  headOffset = 0;
  tail = 0;

  get isEmpty(): boolean {
    return this.head === this.count;
  }

  get buf(): Buffer {
    return (this.#buf ??= Buffer.allocUnsafeSlow(BACKLOG_BYTES));
  }

  get lens(): Int32Array {
    return (this.#lens ??= new Int32Array(BACKLOG_DATAGRAMS));
  }

  /** Copies datagrams lens[first..end) of `buf` from byte `at`; returns how many did not fit. */
  append(buf: Buffer, lens: Int32Array, first: number, end: number, at: number): number {
    this.#compact();
    let i = first;
    for (; i < end; i++) {
      const len = lens[i]!;
      if (this.count >= BACKLOG_DATAGRAMS || this.tail + len > BACKLOG_BYTES) break;
      buf.copy(this.buf, this.tail, at, at + len);
      at += len;
      this.lens[this.count++] = len;
      this.tail += len;
    }
    return end - i;
  }

  /** `n` datagrams (`bytes` in all) left from the head. */
  consumed(n: number, bytes: number): void {
    this.head += n;
    this.headOffset += bytes;
    if (this.head === this.count) this.head = this.count = this.headOffset = this.tail = 0;
  }

  #compact(): void {
    if (this.head === 0) return;
    this.buf.copyWithin(0, this.headOffset, this.tail);
    this.lens.copyWithin(0, this.head, this.count);
    this.count -= this.head;
    this.tail -= this.headOffset;
    this.head = this.headOffset = 0;
  }
}

interface Path {
  sock: NativeSocket;
  backlog: Backlog;
  /** The kernel refused (EAGAIN): writability is being waited for. */
  blocked: boolean;
  /** Released: its socket is closed. */
  closed: boolean;
  /** Its socket's receive coalescing pause, microseconds. */
  coalescingUs: number;
}

export interface NativeLinkOptions {
  /** UDP GSO sends and GRO receives on every socket of the link. */
  segmentation: boolean;
  /** Receive coalescing pause in microseconds (0: read as datagrams arrive). */
  coalescingUs: number;
}

export class NativeUdpLink implements UdpLink {
  readonly backend = 'native';
  readonly stats: UdpLinkStats = newUdpLinkStats();
  /**
   * Batching events: times the kernel refused part of a batch (EAGAIN), datagrams dropped because
   * the backlog was full meanwhile, received messages the kernel had coalesced (GRO).
   */
  readonly batching = { sendBlocked: 0, sendDropped: 0, recvCoalesced: 0 };
  #udp: LhUdpAddon;
  #main: NativeSocket;
  #family: 4 | 6;
  #buffers: SocketBuffers;
  #options: NativeLinkOptions;
  #local: Endpoint;
  #sink: DatagramSink = { datagram: () => {}, endOfBatch: () => {} };
  // The sink takes views of the receive buffer itself (onDatagrams' `transient`).
  #transient = false;
  // Per peer address object: a socket connected to it (SO_REUSEPORT on our WAN address, so the
  // kernel also hands that peer's datagrams to it), or null when it could not be set up.
  #paths = new Map<Endpoint, Path | null>();
  #closed = false;
  // Shared by every socket of the link: poll callbacks never nest, and each batch is handed over
  // (and copied out where the sink keeps datagrams) before the next recvmmsg.
  #recvBuf = Buffer.allocUnsafeSlow(RECV_SLOT * RECV_BATCH);
  #meta: Int32Array;
  #slab = Buffer.allocUnsafeSlow(RECV_SLAB_BYTES);
  #slabPos = 0;
  // The last source seen (nearly always the same peer): its RemoteInfo is reused.
  #src: RemoteInfo = { address: '', family: 'IPv4', port: -1, size: 0 };
  #srcKey = new Int32Array(6).fill(-1);

  /** Binds the WAN socket; throws the OS error (e.g. EADDRINUSE) like node:dgram's bind. */
  constructor(udp: LhUdpAddon, addr: Endpoint, buffers: SocketBuffers, options: NativeLinkOptions) {
    this.#udp = udp;
    this.#family = isIP(addr.host) === 6 ? 6 : 4;
    this.#buffers = buffers;
    this.#options = options;
    this.#meta = new Int32Array(RECV_BATCH * udp.metaStride);
    this.#main = udp.open(this.#family, addr.host, addr.port, true, buffers.recv, buffers.send);
    try {
      const [host, port] = udp.localAddress(this.#main);
      this.#local = { host, port };
      [this.stats.recvBufferBytes, this.stats.sendBufferBytes] = udp.bufferSizes(this.#main);
      this.#startPoll(this.#main, null);
    } catch (err) {
      udp.close(this.#main);
      throw err;
    }
  }

  #startPoll(sock: NativeSocket, path: Path | null): void {
    const udp = this.#udp;
    if (!this.#options.segmentation) udp.setSegmentation(sock, false);
    udp.startPoll(sock, this.#recvBuf, this.#meta, RECV_SLOT, RECV_BATCH, (ev, n, readTimeMs) => this.#onEvent(path, ev, n, readTimeMs));
    if (this.#options.coalescingUs > 0) udp.setRecvCoalescing(sock, this.#options.coalescingUs);
  }

  get address(): Endpoint {
    return { host: this.#local.host, port: this.#local.port };
  }

  onDatagrams(sink: DatagramSink, options?: { transient?: boolean }): void {
    this.#sink = sink;
    this.#transient = options?.transient ?? false;
  }

  /** One datagram to an address from the main socket (handshakes, unproven sources): copied at once. */
  send(data: Uint8Array, port: number, host: string): void {
    if (this.#closed) return;
    const r = this.#udp.sendOne(this.#main, data, host, port);
    this.stats.sendCalls++;
    if (r < 0) {
      this.stats.sendErrors++;
      return;
    }
    this.stats.datagramsOut++;
    this.stats.bytesOut += data.length;
  }

  /**
   * sendmmsg straight from the batch (runs of equal sizes as GSO messages); what the kernel
   * refuses goes to the peer's backlog, sent in order on writability. `to` must be a long-lived
   * object per peer address (it keys the path).
   */
  sendBatch(batch: DatagramBatch, to: Endpoint): void {
    const count = batch.count;
    if (this.#closed || count === 0) {
      batch.clear();
      return;
    }
    const path = this.#pathTo(to);
    if (path === null) {
      let at = 0;
      for (let i = 0; i < count; i++) {
        const len = batch.lens[i]!;
        this.send(batch.buf.subarray(at, at + len), to.port, to.host);
        at += len;
      }
    } else if (!path.backlog.isEmpty || path.blocked) {
      this.#keep(path, batch.buf, batch.lens, 0, count, 0);
    } else {
      const sent = this.#send(path, batch.buf, batch.lens, 0, count, 0);
      if (sent.count < count) this.#keep(path, batch.buf, batch.lens, sent.count, count, sent.bytes);
    }
    batch.clear();
  }

  /** Hands datagrams lens[first..end) (from byte `at` of buf) to the kernel until it refuses; what went out. */
  #send(path: Path, buf: Buffer, lens: Int32Array, first: number, end: number, at: number): { count: number; bytes: number } {
    let i = first;
    let offset = at;
    while (i < end) {
      const r = this.#udp.sendBatch(path.sock, buf, lens, i, end - i, offset);
      this.stats.sendCalls++;
      if (r > 0) {
        let bytes = 0;
        for (let k = i, stop = i + r; k < stop; k++) bytes += lens[k]!;
        i += r;
        offset += bytes;
        this.stats.datagramsOut += r;
        this.stats.bytesOut += bytes;
      } else if (r === 0 || r === -this.#udp.EAGAIN) {
        // One blocking episode lasts until the backlog is empty again (#drainBacklog).
        if (!path.blocked) {
          path.blocked = true;
          this.batching.sendBlocked++;
          this.#udp.setWritableWanted(path.sock, true);
        }
        break;
      } else {
        // This datagram cannot be sent (e.g. EMSGSIZE, no route): drop it, go on with the rest.
        this.stats.sendErrors++;
        offset += lens[i]!;
        i++;
      }
    }
    this.#sent.count = i - first;
    this.#sent.bytes = offset - at;
    return this.#sent;
  }

  #sent = { count: 0, bytes: 0 };

  /** Copies what could not go now into the path's backlog; drops (and counts) what does not fit. */
  #keep(path: Path, buf: Buffer, lens: Int32Array, first: number, end: number, at: number): void {
    const dropped = path.backlog.append(buf, lens, first, end, at);
    if (dropped > 0) {
      this.stats.sendErrors += dropped;
      this.batching.sendDropped += dropped;
    }
    if (!path.blocked) this.#drainBacklog(path);
  }

  /** The socket is writable (or was never blocked): sends the backlog until the kernel refuses again. */
  #drainBacklog(path: Path): void {
    if (this.#closed || path.closed) return;
    const b = path.backlog;
    const sent = this.#send(path, b.buf, b.lens, b.head, b.count, b.headOffset);
    b.consumed(sent.count, sent.bytes);
    if (b.isEmpty && path.blocked) {
      path.blocked = false;
      this.#udp.setWritableWanted(path.sock, false);
    }
  }

  #pathTo(to: Endpoint): Path | null {
    const path = this.#paths.get(to);
    return path === undefined ? this.#openPath(to) : path;
  }

  #openPath(to: Endpoint): Path | null {
    let sock: NativeSocket | null = null;
    let path: Path | null = null;
    try {
      sock = this.#udp.open(this.#family, this.#local.host, this.#local.port, true, this.#buffers.recv, this.#buffers.send);
      this.#udp.connect(sock, to.host, to.port);
      const p: Path = { sock, backlog: new Backlog(), blocked: false, closed: false, coalescingUs: this.#options.coalescingUs };
      this.#startPoll(sock, p);
      path = p;
    } catch {
      // e.g. a name instead of an address: the main socket sends to it unconnected.
      if (sock !== null) this.#udp.close(sock);
    }
    this.#paths.set(to, path);
    return path;
  }

  #onEvent(path: Path | null, ev: number, n: number, readTimeMs: number): void {
    if (ev === EV_DATAGRAMS) {
      this.stats.recvCalls++;
      this.#deliver(n, readTimeMs + this.#monotonicToNow);
    } else if (ev === EV_WRITABLE) {
      if (path !== null) this.#drainBacklog(path);
    } else this.stats.sendErrors += n; // socket errors (ICMP unreachable), counted as node:dgram's are
  }

  // performance.now() minus CLOCK_MONOTONIC in ms: both count from fixed points of the same clock.
  #monotonicToNow = performance.now() - Number(process.hrtime.bigint()) / 1e6;

  /** `readTime`: when the addon read the batch, on performance.now()'s clock. */
  #deliver(n: number, readTime: number): void {
    const meta = this.#meta;
    const stride = this.#udp.metaStride;
    for (let i = 0; i < n && !this.#closed; i++) {
      const m = i * stride;
      const len = meta[m]!;
      if (len < 0) continue; // truncated: cannot happen with 64 KiB slots
      const seg = meta[m + 7]!;
      // The kernel's arrival time: a batch read late still says when each datagram came.
      const arrival = readTime - meta[m + 8]! / 1000;
      const from = this.#source(i, m);
      const base = i * RECV_SLOT;
      if (seg > 0 && seg < len) {
        // Coalesced by the kernel (GRO): datagrams of `seg` bytes, the last one possibly shorter.
        this.batching.recvCoalesced++;
        for (let off = 0; off < len && !this.#closed; off += seg) this.#deliverOne(base + off, Math.min(seg, len - off), from, arrival);
      } else {
        this.#deliverOne(base, len, from, arrival);
      }
    }
    if (!this.#closed) this.#sink.endOfBatch();
  }

  #deliverOne(at: number, len: number, from: RemoteInfo, arrival: number): void {
    this.stats.datagramsIn++;
    this.stats.bytesIn += len;
    from.size = len;
    if (this.#transient) {
      this.#sink.datagram(this.#recvBuf.subarray(at, at + len), from, arrival);
      return;
    }
    if (this.#slabPos + len > RECV_SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(RECV_SLAB_BYTES);
      this.#slabPos = 0;
    }
    const pos = this.#slabPos;
    this.#recvBuf.copy(this.#slab, pos, at, at + len);
    this.#slabPos = (pos + len + 7) & ~7;
    this.#sink.datagram(this.#slab.subarray(pos, pos + len), from, arrival);
  }

  #source(i: number, m: number): RemoteInfo {
    const meta = this.#meta;
    const key = this.#srcKey;
    // meta[m+1..m+6]: port, family, address (4 x int32)
    if (
      meta[m + 1] !== key[0] ||
      meta[m + 3] !== key[1] ||
      meta[m + 4] !== key[2] ||
      meta[m + 5] !== key[3] ||
      meta[m + 6] !== key[4] ||
      meta[m + 2] !== key[5]
    ) {
      key[0] = meta[m + 1]!;
      key[1] = meta[m + 3]!;
      key[2] = meta[m + 4]!;
      key[3] = meta[m + 5]!;
      key[4] = meta[m + 6]!;
      key[5] = meta[m + 2]!;
      this.#src = { address: this.#udp.formatAddress(meta, i), family: key[5] === 6 ? 'IPv6' : 'IPv4', port: key[0]!, size: 0 };
    }
    // Shared while the source stays the same (size set per datagram): read it during the call, do not keep it.
    return this.#src;
  }

  get recvCoalescingUs(): number {
    return this.#options.coalescingUs;
  }

  setRecvCoalescing(to: Endpoint, us: number): void {
    const path = this.#paths.get(to);
    if (!path || path.closed || path.coalescingUs === us) return;
    path.coalescingUs = us;
    this.#udp.setRecvCoalescing(path.sock, us);
  }

  /** The peer behind `to` is gone: drop its connected socket (and anything still kept for it). */
  release(to: Endpoint): void {
    const path = this.#paths.get(to);
    this.#paths.delete(to);
    if (path) this.#closePath(path);
  }

  /** Closes a path's socket; datagrams still kept for it are dropped and counted. */
  #closePath(path: Path): void {
    path.closed = true;
    const left = path.backlog.count - path.backlog.head;
    this.stats.sendErrors += left;
    this.batching.sendDropped += left;
    this.#udp.close(path.sock);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const p of this.#paths.values()) if (p) this.#closePath(p);
      this.#paths.clear();
      this.#udp.close(this.#main);
    }
    return Promise.resolve();
  }
}
