// Glue between the WAN socket, the packet-protection layer (src/crypto SecureEndpoint) and
// the associations: every transport datagram is sealed on the way out and opened on the
// way in; the transport header's connection id routes it to its association.
//
// Plaintext mode exists only for the crypto-cost benchmark and debugging (`--insecure-plaintext`,
// a flag no config file can set).
import type { RemoteInfo } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { loadPrivateKeyFile, loadPublicKeyFile } from '../crypto/keys.ts';
import { DEFERRED, SecureEndpoint, peerIdOf } from '../crypto/secure-endpoint.ts';
import type { PeerId, SecureEndpointStats } from '../crypto/secure-endpoint.ts';
import { formatEndpoint, parseEndpoint } from './address.ts';
import type { TransportConnection } from '../transport/types.ts';
import type { RunSealer, SendSpace } from './udp-link.ts';
import type { Endpoint } from './address.ts';
import { resolveKeyPath } from './config.ts';
import type { GatewayConfig } from './config.ts';
import { LIVENESS_MARKER, LivenessKind, decodeLivenessMessage, encodeLivenessMessage } from './liveness-message.ts';
import type { Logger } from './logger.ts';

/** Transport header: version(1) flags(1) connection id(8) ... (src/transport/packet.ts). */
const CID_OFFSET = 2;
const MIN_TRANSPORT_PACKET = 16;
// A client's first packets start with HANDSHAKE(kind INIT) right after the header
// (src/transport/frame.ts); only those may create an association, so stray or stale
// datagrams (e.g. from before a restart) never do.
const FRAME_HANDSHAKE = 0x0a;
const HANDSHAKE_INIT = 1;

function isHandshakeInit(plain: Uint8Array): boolean {
  return plain.length > MIN_TRANSPORT_PACKET + 1 && plain[MIN_TRANSPORT_PACKET] === FRAME_HANDSHAKE && plain[MIN_TRANSPORT_PACKET + 1] === HANDSHAKE_INIT;
}

export interface RoutedEntry {
  assoc: { peerName: string; isClosed: boolean };
  role: 'client' | 'server';
  /** The peer's configured (client) or first-seen (server) address. */
  remote: Endpoint;
}

// Probe answers per peer per second: a peer can only make us send what it sends (same size,
// authenticated), but a bound keeps a confused peer from costing more than a trickle.
const PROBE_ANSWERS_PER_SECOND = 20;

export interface SecurityHost<E extends RoutedEntry> {
  /** Handshake messages and replies (possibly to unproven sources). */
  send(data: Uint8Array, to: Endpoint): void;
  /**
   * Association datagrams to a peer address (`to` is a long-lived object per address). True when
   * `data` was copied before returning (the buffer may be reused), false when it must stay intact.
   */
  sendData(data: Uint8Array, to: Endpoint): boolean;
  /** Room to write an association datagram to a peer in place (UdpLink.sendSpace), or null: use sendData. */
  sendSpace(to: Endpoint, size: number): SendSpace | null;
  /** Queues the space's datagram; with `sealer`, sealed in place with its run before it leaves (UdpLink.commitSend). */
  commitSend(space: SendSpace, length: number, sealer?: RunSealer): void;
  /** An opened transport datagram for `entry`, received at `now` (performance.now()). */
  deliver(entry: E, data: Uint8Array, now: number): void;
  /** A transport datagram with an unknown connection id arrived from a peer we answer: make a server association (or null to drop). */
  accept(peerName: string, from: Endpoint): E | null;
  /** Plaintext mode only: the peer a source address belongs to. */
  peerForAddress(from: Endpoint): string;
  /** The peer answered a liveness probe about `entry`: it still has it (`known`) or lost it (it restarted). */
  onProbeAnswer(entry: E, known: boolean): void;
  log: Logger;
}

export interface WanSecurityStats {
  mode: string;
  unroutable: number;
  /** Liveness probes from the peer we answered, and those dropped by the per-peer rate bound. */
  probeAnswers: { sent: number; limited: number };
  /**
   * Transport datagrams an association sent before its peer's session existed: held, sent once
   * the handshake completed, or dropped (the hold is full, or the handshake failed).
   */
  heldForHandshake: { held: number; released: number; dropped: number };
  endpoint: SecureEndpointStats | null;
}

export type Transmitter = (conn: TransportConnection, now: number) => number;

export interface WanSecurity<E extends RoutedEntry = RoutedEntry> {
  readonly mode: string;
  /** onDatagram copies what it keeps: the link may pass views of its receive buffer (UdpLink.onDatagram's `transient`). */
  readonly takesTransientDatagrams: boolean;
  attach(host: SecurityHost<E>): void;
  /** `now`: performance.now() when it was received. */
  onDatagram(data: Buffer, from: RemoteInfo, now: number): void;
  /** Starts (or restarts) the path to a peer we initiate to, before its association sends. */
  openClient(entry: E, peerName: string, remote: Endpoint): void;
  /**
   * The function an association's flush moves its datagrams with (`now`: the flush's clock):
   * polls the next one from `conn` straight into the socket's send queue (the transport writes it
   * in place; protected, it is sealed there with the rest of its run just before it leaves), or
   * from the transport's own buffer where there is no such queue (node:dgram). Returns the
   * datagram's length, 0 when nothing may leave now.
   */
  transmitter(remote: Endpoint, entry: () => E): Transmitter;
  forget(entry: E): void;
  /** Asks the peer whether it still has `entry` (answer via SecurityHost.onProbeAnswer). */
  probe(entry: E): void;
  /**
   * The peer went silent: start a fresh packet-protection handshake (a restarted peer lost the old
   * keys and drops everything sealed with them) and probe `entry` once it completes.
   */
  rehandshake(entry: E): void;
  stats(): WanSecurityStats;
  close(): void;
}

/** Routes transport datagrams by connection id; shared by both modes. */
class CidRoutes<E> {
  // Keyed by the id's low 32 bits; the high half is checked on hit (collisions are harmless misses).
  #byLo = new Map<number, { hi: number; entry: E }>();
  #lastLo = -1;
  #lastHi = -1;
  #last: E | null = null;

  static hi(d: Uint8Array): number {
    return ((d[CID_OFFSET]! << 24) | (d[CID_OFFSET + 1]! << 16) | (d[CID_OFFSET + 2]! << 8) | d[CID_OFFSET + 3]!) >>> 0;
  }
  static lo(d: Uint8Array): number {
    return ((d[CID_OFFSET + 4]! << 24) | (d[CID_OFFSET + 5]! << 16) | (d[CID_OFFSET + 6]! << 8) | d[CID_OFFSET + 7]!) >>> 0;
  }

  get(hi: number, lo: number): E | null {
    if (lo === this.#lastLo && hi === this.#lastHi) return this.#last;
    const r = this.#byLo.get(lo);
    if (!r || r.hi !== hi) return null;
    this.#lastLo = lo;
    this.#lastHi = hi;
    this.#last = r.entry;
    return r.entry;
  }

  set(hi: number, lo: number, entry: E): void {
    this.#byLo.set(lo, { hi, entry });
  }

  delete(entry: E): void {
    for (const [lo, r] of this.#byLo) if (r.entry === entry) this.#byLo.delete(lo);
    if (this.#last === entry) {
      this.#last = null;
      this.#lastLo = -1;
    }
  }
}

abstract class RoutingSecurity<E extends RoutedEntry> implements WanSecurity<E> {
  abstract readonly mode: string;
  abstract readonly takesTransientDatagrams: boolean;
  protected host!: SecurityHost<E>;
  protected routes = new CidRoutes<E>();
  protected unroutable = 0;
  protected probeAnswers = { sent: 0, limited: 0 };
  /** Our associations' connection ids, for liveness probes. */
  #cidOf = new Map<E, { hi: number; lo: number }>();
  #answerBudget = new Map<string, { windowStart: number; count: number }>();
  /** Peers we initiate to: datagrams with unknown ids from them are stale, never new associations. */
  protected initiatorPeers = new Set<string>();

  constructor(config: GatewayConfig) {
    for (const p of config.peers) if (p.address) this.initiatorPeers.add(p.name);
  }

  attach(host: SecurityHost<E>): void {
    this.host = host;
  }

  abstract onDatagram(data: Buffer, from: RemoteInfo, now: number): void;
  abstract openClient(entry: E, peerName: string, remote: Endpoint): void;
  abstract transmitter(remote: Endpoint, entry: () => E): Transmitter;
  abstract stats(): WanSecurityStats;
  abstract close(): void;

  /** Sends a gateway message to an (authenticated) peer under packet protection. */
  protected abstract sendProtected(peerName: string, data: Uint8Array, to: Endpoint): void;

  probe(entry: E): void {
    const cid = this.#cidOf.get(entry);
    if (!cid) return;
    this.sendProtected(entry.assoc.peerName, encodeLivenessMessage(LivenessKind.probe, cid.hi, cid.lo), entry.remote);
  }

  abstract rehandshake(entry: E): void;

  #onLivenessMessage(plain: Uint8Array, peerName: string, from: Endpoint): void {
    const m = decodeLivenessMessage(plain);
    if (!m) {
      this.unroutable++;
      return;
    }
    const entry = this.routes.get(m.cidHi, m.cidLo);
    const ours = entry !== null && entry.assoc.peerName === peerName && !entry.assoc.isClosed ? entry : null;
    if (m.kind === LivenessKind.probe) {
      if (!this.#mayAnswer(peerName)) return;
      this.probeAnswers.sent++;
      this.sendProtected(peerName, encodeLivenessMessage(ours ? LivenessKind.known : LivenessKind.unknown, m.cidHi, m.cidLo), from);
      return;
    }
    if (ours) this.host.onProbeAnswer(ours, m.kind === LivenessKind.known);
  }

  #mayAnswer(peerName: string): boolean {
    const now = performance.now();
    let b = this.#answerBudget.get(peerName);
    if (!b || now - b.windowStart >= 1000) {
      b = { windowStart: now, count: 0 };
      this.#answerBudget.set(peerName, b);
    }
    if (b.count >= PROBE_ANSWERS_PER_SECOND) {
      this.probeAnswers.limited++;
      return false;
    }
    b.count++;
    return true;
  }

  /** Hands an opened transport datagram to its association (or creates one). */
  protected route(plain: Uint8Array, peerName: string, from: Endpoint, now: number): void {
    if (plain[0] === LIVENESS_MARKER) {
      this.#onLivenessMessage(plain, peerName, from);
      return;
    }
    if (plain.length < MIN_TRANSPORT_PACKET) {
      this.unroutable++;
      return;
    }
    const hi = CidRoutes.hi(plain);
    const lo = CidRoutes.lo(plain);
    let entry = this.routes.get(hi, lo);
    if (entry && entry.assoc.peerName !== peerName) {
      // An authenticated peer may only talk to its own associations.
      this.unroutable++;
      return;
    }
    if (!entry || entry.assoc.isClosed) {
      if (this.initiatorPeers.has(peerName) || !isHandshakeInit(plain)) {
        this.unroutable++;
        return;
      }
      entry = this.host.accept(peerName, from);
      if (!entry) {
        this.unroutable++;
        return;
      }
      this.routes.set(hi, lo, entry);
      this.#cidOf.set(entry, { hi, lo });
    }
    this.host.deliver(entry, plain, now);
  }

  /** Our own client association's id is learned from its first datagram. */
  protected learn(entry: E, data: Uint8Array, known: { learned: boolean }): void {
    if (known.learned || data.length < MIN_TRANSPORT_PACKET) return;
    known.learned = true;
    const hi = CidRoutes.hi(data);
    const lo = CidRoutes.lo(data);
    this.routes.set(hi, lo, entry);
    this.#cidOf.set(entry, { hi, lo });
  }

  forget(entry: E): void {
    this.routes.delete(entry);
    this.#cidOf.delete(entry);
  }
}

class PlaintextSecurity<E extends RoutedEntry> extends RoutingSecurity<E> {
  readonly mode = 'plaintext (INSECURE, debug only)';
  // Routes the datagrams themselves: the transport keeps views of them.
  readonly takesTransientDatagrams = false;

  onDatagram(data: Buffer, from: RemoteInfo, now: number): void {
    const ep = { host: from.address, port: from.port };
    this.route(data, this.host.peerForAddress(ep), ep, now);
  }

  openClient(): void {}

  protected sendProtected(_peerName: string, data: Uint8Array, to: Endpoint): void {
    this.host.send(data, to);
  }

  // No keys to renew: just ask again.
  rehandshake(entry: E): void {
    this.probe(entry);
  }

  transmitter(remote: Endpoint, entry: () => E): Transmitter {
    const known = { learned: false };
    return (conn, now) => {
      const space = this.host.sendSpace(remote, conn.maxDatagramSize);
      if (space === null) {
        // No send queue to write into (node:dgram): the transport's own buffer.
        const tx = conn.pollTransmit(now);
        if (tx === null) return 0;
        if (!known.learned) this.learn(entry(), tx.data, known);
        this.host.sendData(tx.data, remote);
        return tx.data.length;
      }
      const n = conn.pollTransmitInto(now, space.buf, space.offset);
      if (n === 0) return 0;
      if (!known.learned) this.learn(entry(), space.buf.subarray(space.offset, space.offset + n), known);
      this.host.commitSend(space, n);
      return n;
    };
  }

  stats(): WanSecurityStats {
    return { mode: this.mode, unroutable: this.unroutable, probeAnswers: { ...this.probeAnswers }, heldForHandshake: { held: 0, released: 0, dropped: 0 }, endpoint: null };
  }

  close(): void {}
}

const CIPHER_MISMATCH_WARNING_MS = 60_000;
// A new association's first flight (its INIT and the first data packets) fits; the transport
// retransmits anything beyond.
const HELD_DATAGRAMS_PER_PEER = 64;

class SecureEndpointSecurity<E extends RoutedEntry> extends RoutingSecurity<E> {
  readonly mode = 'noise-ik (authenticated, encrypted)';
  // The endpoint decrypts data messages out of place into its own memory and copies the rest.
  readonly takesTransientDatagrams = true;
  #ep: SecureEndpoint;
  #nameById = new Map<PeerId, string>();
  #idByName = new Map<string, PeerId>();
  #addresses = new Map<string, Endpoint>();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Infinity;
  #mtu: number;
  /** Associations to probe once the handshake to their peer completes. */
  #probeAfterHandshake = new Set<E>();
  /**
   * Per peer, transport datagrams sent while no session existed (a new association's first
   * packets go out while the handshake opened for it is under way): sent when it completes, so
   * the association's INIT does not wait for the transport's retransmission timer (~0.6 s).
   */
  #held = new Map<PeerId, Array<{ data: Uint8Array; to: Endpoint; entry: E }>>();
  #heldCounts = { held: 0, released: 0, dropped: 0 };

  constructor(config: GatewayConfig, ep: SecureEndpoint, peers: Array<{ name: string; id: PeerId }>) {
    super(config);
    this.#ep = ep;
    this.#mtu = config.mtu;
    for (const p of peers) {
      this.#nameById.set(p.id, p.name);
      this.#idByName.set(p.name, p.id);
    }
  }

  #endpointOf(address: string): Endpoint {
    let e = this.#addresses.get(address);
    if (!e) {
      const r = parseEndpoint(address);
      e = r.ok ? r.value : { host: address, port: 0 };
      this.#addresses.set(address, e);
    }
    return e;
  }

  // The source string is rebuilt only when the source changes (nearly always the same peer).
  #lastAddress = '';
  #lastPort = -1;
  #lastSource = '';

  // The peer of the last datagram opened, and its name (the same peer, datagram after datagram).
  #lastPeer: PeerId | null = null;
  #lastPeerName: string | undefined = undefined;
  #lastEndpoint: Endpoint | null = null;
  #lastEndpointSource = '';
  #openScheduled = false;
  // The clock reading of the batch the deferred messages came in.
  #openNow = 0;

  #openDeferred = (): void => {
    this.#openScheduled = false;
    this.#ep.openDeferred(this.#deliver);
    // A message under a responder's new keys confirms them ('established': held datagrams go out).
    this.#pump();
  };

  /** An authenticated transport datagram from `peer`: to its association. */
  #deliver = (peer: PeerId, plaintext: Uint8Array, source: string): void => {
    if (peer !== this.#lastPeer) {
      this.#lastPeer = peer;
      this.#lastPeerName = this.#nameById.get(peer);
    }
    if (source !== this.#lastEndpointSource || this.#lastEndpoint === null) {
      this.#lastEndpointSource = source;
      this.#lastEndpoint = this.#endpointOf(source);
    }
    const name = this.#lastPeerName;
    if (name !== undefined) this.route(plaintext, name, this.#lastEndpoint, this.#openNow);
  };

  onDatagram(data: Buffer, from: RemoteInfo, now: number): void {
    if (from.port !== this.#lastPort || from.address !== this.#lastAddress) {
      this.#lastPort = from.port;
      this.#lastAddress = from.address;
      this.#lastSource = from.family === 'IPv6' ? `[${from.address}]:${from.port}` : `${from.address}:${from.port}`;
    }
    const source = this.#lastSource;
    // Data messages are opened together when the receive batch is done (one AEAD call per run).
    const r = this.#ep.handleDatagramDeferred(data, source, now);
    if (r === DEFERRED) {
      if (!this.#openScheduled) {
        this.#openScheduled = true;
        this.#openNow = now;
        queueMicrotask(this.#openDeferred);
      }
      return;
    }
    if (r.kind === 'data') {
      this.#openNow = now;
      this.#deliver(r.peer, r.plaintext, source);
    } else if (r.kind === 'reply') {
      this.host.send(r.data, { host: from.address, port: from.port });
    } else if (r.kind === 'dropped' && r.reason === 'cipher-mismatch') {
      this.#warnCipherMismatch(source);
    }
    if (r.kind !== 'data' && r.kind !== 'dropped') this.#pump();
  }

  #lastMismatchWarningAt = -Infinity;

  /** At most one warning per CIPHER_MISMATCH_WARNING_MS: the initiator retries every few seconds. */
  #warnCipherMismatch(source: string): void {
    const now = performance.now();
    if (now - this.#lastMismatchWarningAt < CIPHER_MISMATCH_WARNING_MS) return;
    this.#lastMismatchWarningAt = now;
    this.host.log.warn(
      { source, cipher: this.#ep.cipher },
      `handshake refused: the initiator uses the other cipher (set the same \`cipher\` on both gateways; this one uses ${this.#ep.cipher})`,
    );
  }

  openClient(_entry: E, peerName: string, remote: Endpoint): void {
    const id = this.#idByName.get(peerName);
    if (id === undefined) return;
    // A new association always gets fresh keys: after a peer restart the old session is dead
    // on its side and would silently swallow everything until the next scheduled rekey.
    const init = this.#ep.connect(id, formatEndpoint(remote), performance.now());
    this.host.send(init, remote);
    this.#pump();
  }

  rehandshake(entry: E): void {
    const id = this.#idByName.get(entry.assoc.peerName);
    if (id === undefined) return;
    this.#probeAfterHandshake.add(entry);
    this.host.send(this.#ep.connect(id, formatEndpoint(entry.remote), performance.now()), entry.remote);
    this.#pump();
  }

  protected sendProtected(peerName: string, data: Uint8Array, to: Endpoint): void {
    const id = this.#idByName.get(peerName);
    if (id === undefined) return;
    const sealed = this.#ep.seal(id, data, performance.now());
    if (sealed !== null) {
      const addr = this.#ep.peerAddress(id);
      this.host.send(sealed, addr === null ? to : this.#endpointOf(addr));
    }
    this.#pump();
  }

  override forget(entry: E): void {
    super.forget(entry);
    this.#probeAfterHandshake.delete(entry);
  }

  transmitter(remote: Endpoint, entry: () => E): Transmitter {
    const known = { learned: false };
    let id: PeerId | undefined;
    // The peer's address string changes only when it roams: its endpoint object is looked up once.
    let lastAddress: string | null = null;
    let lastTo = remote;
    // Without a send queue (node:dgram), sealed datagrams are written here while the socket
    // proves it copied the previous one (one allocation instead of one per packet); a send left
    // queued keeps the buffer and the next packet gets a fresh one.
    let scratch: Buffer | null = null;
    // Datagrams are sealed when the queue flushes, in the same turn: at the clock of the last one.
    let lastNow = 0;
    let sealer: RunSealer | null = null;
    return (conn, now) => {
      const e = entry();
      id ??= this.#idByName.get(e.assoc.peerName);
      const addr = id === undefined ? null : this.#ep.peerAddress(id);
      if (addr !== lastAddress) {
        lastAddress = addr;
        lastTo = addr === null ? remote : this.#endpointOf(addr);
      }
      const space = id !== undefined && this.#ep.readyToSeal(id, now) ? this.host.sendSpace(lastTo, conn.maxDatagramSize + SecureEndpoint.OVERHEAD) : null;
      if (space === null) {
        // No session yet (held for the handshake), or no send queue: the transport's own buffer.
        const tx = conn.pollTransmit(now);
        if (tx === null) return 0;
        const data = tx.data;
        if (!known.learned) this.learn(e, data, known);
        if (id === undefined) return data.length;
        scratch ??= Buffer.allocUnsafe(this.#mtu); // bigger datagrams (none expected) allocate
        const sealed = this.#ep.seal(id, data, now, scratch);
        if (sealed === null) {
          this.#holdUntilHandshake(id, data, lastTo, e);
        } else if (!this.host.sendData(sealed, lastTo) && sealed.buffer === scratch.buffer && sealed.byteOffset === scratch.byteOffset) {
          scratch = null;
        }
        return data.length;
      }
      const datagramAt = space.offset + SecureEndpoint.HEADER_ROOM;
      const n = conn.pollTransmitInto(now, space.buf, datagramAt);
      if (n === 0) return 0;
      if (!known.learned) this.learn(e, space.buf.subarray(datagramAt, datagramAt + n), known);
      lastNow = now;
      const peer = id!;
      sealer ??= (buf, lens, from, count, at) => this.#ep.sealRun(peer, buf, lens, from, count, at, lastNow);
      this.host.commitSend(space, n + SecureEndpoint.OVERHEAD, sealer);
      return n;
    };
  }

  /** No session to `id` yet (or keys expired): keep a copy until the handshake completes; the transport retransmits anything dropped here. */
  #holdUntilHandshake(id: PeerId, data: Uint8Array, to: Endpoint, entry: E): void {
    let held = this.#held.get(id);
    if (held === undefined) this.#held.set(id, (held = []));
    if (held.length < HELD_DATAGRAMS_PER_PEER) {
      held.push({ data: Uint8Array.from(data), to, entry });
      this.#heldCounts.held++;
    } else this.#heldCounts.dropped++;
    this.#pump();
  }

  /** The handshake to `id` completed (sealed now, in order) or failed (dropped). */
  #releaseHeld(id: PeerId, established: boolean): void {
    const held = this.#held.get(id);
    if (held === undefined) return;
    this.#held.delete(id);
    const now = performance.now();
    for (const h of held) {
      // An association closed meanwhile (e.g. it gave up waiting) must not be opened at the peer.
      const sealed = established && !h.entry.assoc.isClosed ? this.#ep.seal(id, h.data, now) : null;
      if (sealed === null) {
        this.#heldCounts.dropped++;
        continue;
      }
      this.host.sendData(sealed, h.to);
      this.#heldCounts.released++;
    }
  }

  /** Drains handshake transmits and events, re-arms the single handshake timer. */
  #pump(): void {
    let t;
    while ((t = this.#ep.pollTransmit()) !== null) this.host.send(t.data, this.#endpointOf(t.address));
    let ev;
    while ((ev = this.#ep.pollEvent()) !== null) {
      const peer = this.#nameById.get(ev.peer) ?? ev.peer;
      if (ev.type === 'established') {
        this.host.log.info({ peer, address: ev.address, rekey: ev.rekey }, 'secure session established');
        this.#releaseHeld(ev.peer, true);
        for (const e of [...this.#probeAfterHandshake]) {
          if (e.assoc.peerName !== peer) continue;
          this.#probeAfterHandshake.delete(e);
          if (!e.assoc.isClosed) this.probe(e);
        }
      } else {
        this.#releaseHeld(ev.peer, false);
        this.host.log.warn({ peer }, 'handshake failed: no answer from the peer, or it does not accept our key (or uses the other `cipher`)');
      }
    }
    const next = this.#ep.nextTimeout();
    if (next === null || next === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Infinity;
      this.#ep.handleTimeout(performance.now());
      this.#pump();
    }, Math.max(1, Math.ceil(next - performance.now())));
    this.#timer.unref();
  }

  stats(): WanSecurityStats {
    return {
      mode: this.mode, unroutable: this.unroutable, probeAnswers: { ...this.probeAnswers }, heldForHandshake: { ...this.#heldCounts }, endpoint: this.#ep.stats(),
    };
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

/** Loads the key files named in the config (refusing group/world-readable private keys). */
export function createWanSecurity<E extends RoutedEntry>(config: GatewayConfig): Result<WanSecurity<E>> {
  if (config.insecurePlaintext) return { ok: true, value: new PlaintextSecurity<E>(config) };
  if (!config.key) return { ok: false, error: 'key: required (create one with `longhaul keygen NAME`)' };
  const own = loadPrivateKeyFile(resolveKeyPath(config, config.key));
  if (!own.ok) return { ok: false, error: own.error };
  const peers: Array<{ name: string; id: PeerId; publicKey: Uint8Array }> = [];
  for (const p of config.peers) {
    if (!p.publicKey) return { ok: false, error: `peers: "${p.name}" has no publicKey` };
    const pub = loadPublicKeyFile(resolveKeyPath(config, p.publicKey));
    if (!pub.ok) return { ok: false, error: pub.error };
    peers.push({ name: p.name, id: peerIdOf(pub.value), publicKey: pub.value });
  }
  if (peers.length === 0) return { ok: false, error: 'peers: at least one peer (with its public key) is required' };
  // node:dgram hands every message over in its own buffer, so decrypting in place is safe.
  const ep = new SecureEndpoint({
    staticKey: own.value, peers: peers.map((p) => ({ publicKey: p.publicKey })), decryptInPlace: true, transientDatagrams: true, cipher: config.cipher,
  });
  return { ok: true, value: new SecureEndpointSecurity<E>(config, ep, peers) };
}

/**
 * The protection layer's per-datagram overhead, which the transport's packet size must leave room for.
 * Plaintext mode reserves it too: it exists to measure encryption's cost, so it must move the same
 * transport packets (same count per GiB), differing only in the AEAD.
 */
export function protectionOverhead(_config: GatewayConfig): number {
  return SecureEndpoint.OVERHEAD;
}
