// The WAN socket on the lh_udp addon (native/lh_udp.c): sends go into a per-peer queue that is
// handed to the kernel with one sendmmsg per event-loop turn, and receives come in recvmmsg
// batches of up to RECV_BATCH with one JS call per batch. Same contract as the node:dgram link
// (src/gateway/udp-link.ts); chosen by UdpLink.bind when the addon is built.
import type { RemoteInfo } from 'node:dgram';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Endpoint } from './address.ts';
import type { DatagramHandler, RunSealer, SendSpace, SocketBuffers, UdpLink, UdpLinkStats } from './udp-link.ts';

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
   * size: a GRO-coalesced message holds datagrams of that size back to back); (2, 0): writable;
   * (3, n): n socket errors skipped.
   */
  startPoll(s: NativeSocket, recvBuf: Uint8Array, meta: Int32Array, slotBytes: number, maxBatch: number, cb: (event: number, count: number) => void): void;
  setWritableWanted(s: NativeSocket, on: boolean): void;
  /** UDP GSO sends and GRO receives (on by default). */
  setSegmentation(s: NativeSocket, on: boolean): void;
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
// A peer's send queue: more than one flush's worth (the association sends at most 512 per turn).
const SEND_QUEUE_DATAGRAMS = 1024;
const SEND_QUEUE_BYTES = 2 * 1024 * 1024;

/** Datagrams waiting for sendmmsg, back to back in `buf` from byte `headOffset`. */
class SendQueue {
  readonly buf = Buffer.allocUnsafeSlow(SEND_QUEUE_BYTES);
  readonly lens = new Int32Array(SEND_QUEUE_DATAGRAMS);
  head = 0;
  count = 0;
  headOffset = 0;
  tail = 0;
  /** Per datagram: 1 while it waits for `sealer` (written in place, sealed just before sending). */
  readonly unsealed = new Uint8Array(SEND_QUEUE_DATAGRAMS);
  /** Datagrams waiting to be sealed (all of them after `head`: sent ones were sealed first). */
  unsealedCount = 0;
  sealer: RunSealer | null = null;
  /** The kernel refused (EAGAIN): wait for writability before trying again. */
  blocked = false;
  /** Listed for this turn's flush. */
  listed = false;
}

interface Path {
  sock: NativeSocket;
  queue: SendQueue;
  /** Released: its socket is closed, a pending flush skips it. */
  closed: boolean;
}

export class NativeUdpLink implements UdpLink {
  readonly backend = 'native';
  readonly stats: UdpLinkStats = {
    datagramsIn: 0, datagramsOut: 0, bytesIn: 0, bytesOut: 0, sendErrors: 0, sendCalls: 0, recvCalls: 0, recvBufferBytes: 0, sendBufferBytes: 0,
  };
  /**
   * Batching events: times the kernel refused part of a flush (EAGAIN), datagrams dropped because
   * the send queue was full meanwhile, received messages the kernel had coalesced (GRO).
   */
  readonly batching = { sendBlocked: 0, sendDropped: 0, recvCoalesced: 0 };
  #udp: LhUdpAddon;
  #main: NativeSocket;
  #family: 4 | 6;
  #buffers: SocketBuffers;
  /** UDP GSO sends and GRO receives on every socket of the link. */
  #segmentation: boolean;
  #local: Endpoint;
  #handler: DatagramHandler = () => {};
  // Per peer address object: a socket connected to it (SO_REUSEPORT on our WAN address, so the
  // kernel also hands that peer's datagrams to it), or null when it could not be set up.
  #paths = new Map<Endpoint, Path | null>();
  #toFlush: Path[] = [];
  #flushQueued = false;
  #closed = false;
  // Shared by every socket of the link: poll callbacks never nest, and each batch is copied out
  // before the next recvmmsg.
  #recvBuf = Buffer.allocUnsafeSlow(RECV_SLOT * RECV_BATCH);
  #meta: Int32Array;
  #slab = Buffer.allocUnsafeSlow(RECV_SLAB_BYTES);
  #slabPos = 0;
  // The last source seen (nearly always the same peer): its RemoteInfo is reused.
  #src: RemoteInfo = { address: '', family: 'IPv4', port: -1, size: 0 };
  #srcKey = new Int32Array(6).fill(-1);

  /** Binds the WAN socket; throws the OS error (e.g. EADDRINUSE) like node:dgram's bind. */
  constructor(udp: LhUdpAddon, addr: Endpoint, buffers: SocketBuffers, segmentation: boolean) {
    this.#udp = udp;
    this.#family = isIP(addr.host) === 6 ? 6 : 4;
    this.#buffers = buffers;
    this.#segmentation = segmentation;
    this.#meta = new Int32Array(RECV_BATCH * udp.metaStride);
    this.#main = udp.open(this.#family, addr.host, addr.port, true, buffers.recv, buffers.send);
    try {
      if (!segmentation) udp.setSegmentation(this.#main, false);
      const [host, port] = udp.localAddress(this.#main);
      this.#local = { host, port };
      [this.stats.recvBufferBytes, this.stats.sendBufferBytes] = udp.bufferSizes(this.#main);
      udp.startPoll(this.#main, this.#recvBuf, this.#meta, RECV_SLOT, RECV_BATCH, (ev, n) => this.#onEvent(null, ev, n));
    } catch (err) {
      udp.close(this.#main);
      throw err;
    }
  }

  get address(): Endpoint {
    return { host: this.#local.host, port: this.#local.port };
  }

  onDatagram(handler: DatagramHandler, options?: { transient?: boolean }): void {
    this.#handler = handler;
    this.#transient = options?.transient ?? false;
  }

  // The handler takes views of the receive buffer itself (onDatagram's `transient`).
  #transient = false;

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
   * Queued for this turn's sendmmsg to the peer; `data` is copied before returning, so the caller
   * may reuse it (always true). `to` must be a long-lived object per peer address (it keys the path).
   */
  sendTo(data: Uint8Array, to: Endpoint): boolean {
    if (this.#closed) return true;
    const path = this.#pathTo(to);
    if (path === null) {
      this.send(data, to.port, to.host);
      return true;
    }
    if (!this.#makeRoom(path, data.length)) {
      // The kernel has refused for a whole queue's worth: drop, as a full socket buffer would.
      this.stats.sendErrors++;
      this.batching.sendDropped++;
      return true;
    }
    path.queue.buf.set(data, path.queue.tail);
    this.#queued(path, data.length);
    return true;
  }

  /**
   * Room for one datagram of up to `size` bytes at the tail of the peer's send queue, for the
   * caller to write in place (the packet protection seals straight into it: no copy). Null when
   * there is no connected path or the queue is full: sendTo then sends or counts the drop.
   */
  sendSpace(to: Endpoint, size: number): SendSpace | null {
    if (this.#closed) return null;
    const path = this.#pathTo(to);
    if (path === null || !this.#makeRoom(path, size)) return null;
    this.#space.buf = path.queue.buf;
    this.#space.offset = path.queue.tail;
    this.#spacePath = path;
    return this.#space;
  }

  /**
   * Queues the `length` bytes written into the space sendSpace returned (before any other send);
   * with `sealer`, they are sealed in place (with the rest of their run) just before they leave.
   */
  commitSend(space: SendSpace, length: number, sealer?: RunSealer): void {
    const path = this.#spacePath;
    if (path === null || space !== this.#space || space.offset !== path.queue.tail) throw new Error('commitSend: not the space sendSpace just gave');
    this.#spacePath = null;
    if (path.closed) return;
    const q = path.queue;
    if (sealer !== undefined) {
      q.unsealedCount++;
      // One peer per path, so every sealer queued on it seals with the same keys.
      q.sealer = sealer;
    }
    this.#queued(path, length, sealer !== undefined);
  }

  /** Seals the queue's waiting datagrams, run by run (datagrams queued sealed break runs); drops a run that cannot be sealed. */
  #sealWaiting(q: SendQueue): void {
    const sealer = q.sealer!;
    let k = q.head;
    let offset = q.headOffset;
    while (k < q.count) {
      if (q.unsealed[k] === 0) {
        offset += q.lens[k++]!;
        continue;
      }
      const start = k;
      const startOffset = offset;
      while (k < q.count && q.unsealed[k] === 1) offset += q.lens[k++]!;
      // Marked sealed only once sealed: should the sealer throw, nothing of the run ever leaves.
      if (sealer(q.buf, q.lens, start, k - start, startOffset)) {
        q.unsealed.fill(0, start, k);
      } else {
        // Never send what could not be sealed: cut the run out of the queue.
        q.buf.copyWithin(startOffset, offset, q.tail);
        q.lens.copyWithin(start, k, q.count);
        q.unsealed.copyWithin(start, k, q.count);
        this.stats.sendErrors += k - start;
        this.batching.sendDropped += k - start;
        q.count -= k - start;
        q.tail -= offset - startOffset;
        k = start;
        offset = startOffset;
      }
    }
    q.unsealedCount = 0;
  }

  // Reused by every sendSpace call: a send space lives only until its commitSend.
  #space: SendSpace = { buf: Buffer.alloc(0), offset: 0 };
  #spacePath: Path | null = null;

  #pathTo(to: Endpoint): Path | null {
    const path = this.#paths.get(to);
    return path === undefined ? this.#openPath(to) : path;
  }

  /** True when the queue has room for `size` more bytes, after flushing it if needed. */
  #makeRoom(path: Path, size: number): boolean {
    const q = path.queue;
    if (q.count < SEND_QUEUE_DATAGRAMS && q.tail + size <= SEND_QUEUE_BYTES) return true;
    this.#flush(path);
    return q.count < SEND_QUEUE_DATAGRAMS && q.tail + size <= SEND_QUEUE_BYTES;
  }

  /** `length` bytes were written at the queue's tail: count them in and list the path for this turn's flush. */
  #queued(path: Path, length: number, unsealed = false): void {
    const q = path.queue;
    q.unsealed[q.count] = unsealed ? 1 : 0;
    q.lens[q.count++] = length;
    q.tail += length;
    if (!q.listed) {
      q.listed = true;
      this.#toFlush.push(path);
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        // Runs when the current callback (the association's flush, a receive batch) returns.
        queueMicrotask(this.#flushAll);
      }
    }
  }

  #flushAll = (): void => {
    this.#flushQueued = false;
    const paths = this.#toFlush;
    for (let i = 0; i < paths.length; i++) {
      const p = paths[i]!;
      p.queue.listed = false;
      if (!p.queue.blocked) this.#flush(p);
    }
    paths.length = 0;
  };

  /** Hands the queue to the kernel; keeps what it refuses (EAGAIN) and asks for writability. */
  #flush(path: Path): void {
    const q = path.queue;
    if (this.#closed || path.closed) return;
    if (q.unsealedCount > 0) this.#sealWaiting(q);
    while (q.head < q.count) {
      const r = this.#udp.sendBatch(path.sock, q.buf, q.lens, q.head, q.count - q.head, q.headOffset);
      this.stats.sendCalls++;
      if (r > 0) {
        let bytes = 0;
        for (let k = q.head, end = q.head + r; k < end; k++) bytes += q.lens[k]!;
        q.head += r;
        q.headOffset += bytes;
        this.stats.datagramsOut += r;
        this.stats.bytesOut += bytes;
      } else if (r === 0 || r === -this.#udp.EAGAIN) {
        if (!q.blocked) {
          q.blocked = true;
          this.batching.sendBlocked++;
          this.#udp.setWritableWanted(path.sock, true);
        }
        break;
      } else {
        // This datagram cannot be sent (e.g. EMSGSIZE, no route): drop it, go on with the rest.
        this.stats.sendErrors++;
        q.headOffset += q.lens[q.head]!;
        q.head++;
      }
    }
    if (q.head === q.count) {
      q.head = q.count = q.headOffset = q.tail = 0;
      if (q.blocked) {
        q.blocked = false;
        this.#udp.setWritableWanted(path.sock, false);
      }
    } else if (q.head > 0) {
      q.buf.copyWithin(0, q.headOffset, q.tail);
      q.lens.copyWithin(0, q.head, q.count);
      q.count -= q.head;
      q.tail -= q.headOffset;
      q.head = q.headOffset = 0;
    }
  }

  #openPath(to: Endpoint): Path | null {
    let sock: NativeSocket | null = null;
    let path: Path | null = null;
    try {
      sock = this.#udp.open(this.#family, this.#local.host, this.#local.port, true, this.#buffers.recv, this.#buffers.send);
      this.#udp.connect(sock, to.host, to.port);
      if (!this.#segmentation) this.#udp.setSegmentation(sock, false);
      const p: Path = { sock, queue: new SendQueue(), closed: false };
      this.#udp.startPoll(sock, this.#recvBuf, this.#meta, RECV_SLOT, RECV_BATCH, (ev, n) => this.#onEvent(p, ev, n));
      path = p;
    } catch {
      // e.g. a name instead of an address: the main socket sends to it unconnected.
      if (sock !== null) this.#udp.close(sock);
    }
    this.#paths.set(to, path);
    return path;
  }

  #onEvent(path: Path | null, ev: number, n: number): void {
    if (ev === EV_DATAGRAMS) {
      this.stats.recvCalls++;
      this.#deliver(n);
    }
    else if (ev === EV_WRITABLE) {
      if (path !== null) this.#flush(path);
    } else this.stats.sendErrors += n; // socket errors (ICMP unreachable), counted as node:dgram's are
  }

  #deliver(n: number): void {
    const meta = this.#meta;
    const stride = this.#udp.metaStride;
    const now = performance.now();
    for (let i = 0; i < n && !this.#closed; i++) {
      const m = i * stride;
      const len = meta[m]!;
      if (len < 0) continue; // truncated: cannot happen with 64 KiB slots
      const seg = meta[m + 7]!;
      const from = this.#source(i, m);
      const base = i * RECV_SLOT;
      if (seg > 0 && seg < len) {
        // Coalesced by the kernel (GRO): datagrams of `seg` bytes, the last one possibly shorter.
        this.batching.recvCoalesced++;
        for (let off = 0; off < len && !this.#closed; off += seg) this.#deliverOne(base + off, Math.min(seg, len - off), from, now);
      } else {
        this.#deliverOne(base, len, from, now);
      }
    }
  }

  #deliverOne(at: number, len: number, from: RemoteInfo, now: number): void {
    this.stats.datagramsIn++;
    this.stats.bytesIn += len;
    from.size = len;
    if (this.#transient) {
      this.#handler(this.#recvBuf.subarray(at, at + len), from, now);
      return;
    }
    if (this.#slabPos + len > RECV_SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(RECV_SLAB_BYTES);
      this.#slabPos = 0;
    }
    const pos = this.#slabPos;
    this.#recvBuf.copy(this.#slab, pos, at, at + len);
    this.#slabPos = (pos + len + 7) & ~7;
    this.#handler(this.#slab.subarray(pos, pos + len), from, now);
  }

  #source(i: number, m: number): RemoteInfo {
    const meta = this.#meta;
    const key = this.#srcKey;
    // meta[m+1..m+6]: port, family, address (4 x int32)
    if (meta[m + 1] !== key[0] || meta[m + 3] !== key[1] || meta[m + 4] !== key[2] || meta[m + 5] !== key[3] ||
        meta[m + 6] !== key[4] || meta[m + 2] !== key[5]) {
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

  /** The peer behind `to` is gone: drop its connected socket (and anything still queued for it). */
  release(to: Endpoint): void {
    const path = this.#paths.get(to);
    this.#paths.delete(to);
    if (path) {
      path.closed = true;
      this.#udp.close(path.sock);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#flushAll(); // what this turn queued (e.g. a CLOSE frame) still goes out
      this.#closed = true;
      for (const p of this.#paths.values()) {
        if (!p) continue;
        p.closed = true;
        this.#udp.close(p.sock);
      }
      this.#paths.clear();
      this.#udp.close(this.#main);
    }
    return Promise.resolve();
  }
}
