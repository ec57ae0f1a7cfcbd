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
import type { PeerId, SecureEndpointStats, SecureEvent, SecureTransmit } from '../crypto/secure-endpoint.ts';
import { formatEndpoint, parseEndpoint } from './address.ts';
import { peekRoute, type TransportConnection, type PacketRoute, type Transmit } from '../transport/index.ts';
import { DatagramBatch } from './udp-link.ts';
import type { DatagramSink } from './udp-link.ts';
import type { Endpoint } from './address.ts';
import { resolveKeyPath } from './config.ts';
import type { GatewayConfig } from './config.ts';
import { LIVENESS_MARKER, LivenessKind, decodeLivenessMessage, encodeLivenessMessage } from './liveness-message.ts';
import type { Logger } from './logger.ts';
import { LogLimit } from './log-limit.ts';
import { MSG_INITIATION, messageType } from '../crypto/wire.ts';
import type { Result } from '../result.ts';

/** What the security layer needs to know of an association it routes datagrams to (gateway: Association). */
export interface RoutedEntry {
  readonly peerName: string;
  readonly isClosed: boolean;
  readonly role: 'client' | 'server';
  /** The peer's configured (client) or first-seen (server) address. */
  readonly remote: Endpoint;
}

// Probe answers per peer per second: a peer can only make us send what it sends (same size,
// authenticated), but a bound keeps a confused peer from costing more than a trickle.
const PROBE_ANSWERS_PER_SECOND = 20;

export interface SecurityHost<E extends RoutedEntry> {
  /** Handshake messages and replies (possibly to unproven sources). */
  send(data: Uint8Array, to: Endpoint): void;
  /** A batch of finished (sealed) datagrams to a peer address (`to` is a long-lived object per address); empties it (UdpLink.sendBatch). */
  sendBatch(batch: DatagramBatch, to: Endpoint): void;
  /** An opened transport datagram for `entry`, which arrived at `arrival` (performance.now() clock). */
  deliver(entry: E, data: Uint8Array, arrival: number): void;
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
  /** Transport datagrams dropped because their keys were gone when the batch was sealed (the transport retransmits). */
  unsealable: number;
  endpoint: SecureEndpointStats | null;
}

/**
 * Moves up to `max` of `entry`'s connection's datagrams to the peer (`now`: the flush's clock):
 * returns how many left, 0 when none may leave now.
 */
export type Transmitter<E extends RoutedEntry> = (entry: E, conn: TransportConnection, now: number, max: number) => number;

export interface WanSecurity<E extends RoutedEntry = RoutedEntry> extends DatagramSink {
  readonly mode: string;
  /** datagram() copies what it keeps: the link may pass views of its receive buffer (UdpLink.onDatagrams' `transient`). */
  readonly takesTransientDatagrams: boolean;
  attach(host: SecurityHost<E>): void;
  /** Starts (or restarts) the path to a peer we initiate to, before its association sends. */
  openClient(entry: E, peerName: string, remote: Endpoint): void;
  /**
   * What an association's flush moves its datagrams with: the transport writes each one straight
   * into this peer's batch (room left for the packet-protection header and tag), the whole batch
   * is sealed in one AEAD call, and the link gets it finished.
   */
  transmitter(remote: Endpoint): Transmitter<E>;
  forget(entry: E): void;
  /** Asks the peer whether it still has `entry` (answer via SecurityHost.onProbeAnswer). */
  probe(entry: E): void;
  /**
   * The peer went silent: start a fresh packet-protection handshake (a restarted peer lost the old
   * keys and drops everything sealed with them) and probe `entry` once it completes.
   */
  rehandshake(entry: E): void;
  stats(): WanSecurityStats;
  /**
   * A reload changed the peers: the new list (public keys loaded by loadPeerKeys; null in
   * plaintext mode). Peers gone or with another key lose their sessions at once.
   */
  setPeers(peers: readonly ReloadPeer[]): void;
  /** The id (public key) a peer is known by; null in plaintext mode. */
  peerIdOf(name: string): PeerId | null;
  /** This gateway's public key; null in plaintext mode. */
  localPublicKey(): Uint8Array | null;
  close(): void;
}

export interface ReloadPeer {
  name: string;
  /** This gateway opens associations to it (it has an address). */
  initiator: boolean;
  id: PeerId | null;
  publicKey: Uint8Array | null;
}

// Connection ids are two 32-bit halves; every field or object that holds one starts it as -0 (or
// NaN), a double, so that no random id changes the hidden class of routing state mid-transfer
// (transport/packet.ts newHeader says why).
function cidPair(hi: number, lo: number): { hi: number; lo: number } {
  const c = { hi: -0, lo: -0 };
  c.hi = hi;
  c.lo = lo;
  return c;
}

/** Routes transport datagrams by connection id; shared by both modes. */
class CidRoutes<E> {
  // Keyed by the id's low 32 bits; the high half is checked on hit (collisions are harmless misses).
  #byLo = new Map<number, { hi: number; entry: E }>();
  // NaN: no id matches it.
  #lastLo = Number.NaN;
  #lastHi = Number.NaN;
  #last: E | null = null;

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
    const route = { hi: -0, entry };
    route.hi = hi;
    this.#byLo.set(lo, route);
  }

  delete(entry: E): void {
    for (const [lo, r] of this.#byLo) if (r.entry === entry) this.#byLo.delete(lo);
    if (this.#last === entry) {
      this.#last = null;
      this.#lastLo = Number.NaN;
    }
  }
}

abstract class RoutingSecurity<E extends RoutedEntry> implements WanSecurity<E> {
  abstract readonly mode: string;
  abstract readonly takesTransientDatagrams: boolean;
  protected host!: SecurityHost<E>;
  protected routes = new CidRoutes<E>();
  /** peekRoute's answer, reused datagram after datagram. */
  readonly #route: PacketRoute = { cidHi: -0, cidLo: -0, opensAssociation: false };
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

  setPeers(peers: readonly ReloadPeer[]): void {
    this.initiatorPeers = new Set(peers.filter((p) => p.initiator).map((p) => p.name));
  }

  peerIdOf(_name: string): PeerId | null {
    return null;
  }

  localPublicKey(): Uint8Array | null {
    return null;
  }

  abstract datagram(data: Buffer, from: RemoteInfo, arrival: number): void;
  abstract endOfBatch(): void;
  abstract openClient(entry: E, peerName: string, remote: Endpoint): void;
  abstract transmitter(remote: Endpoint): Transmitter<E>;
  abstract stats(): WanSecurityStats;
  abstract close(): void;

  /** Sends a gateway message to an (authenticated) peer under packet protection. */
  protected abstract sendProtected(peerName: string, data: Uint8Array, to: Endpoint): void;

  probe(entry: E): void {
    const cid = this.#cidOf.get(entry);
    if (!cid) return;
    this.sendProtected(entry.peerName, encodeLivenessMessage(LivenessKind.probe, cid.hi, cid.lo), entry.remote);
  }

  abstract rehandshake(entry: E): void;

  #onLivenessMessage(plain: Uint8Array, peerName: string, from: Endpoint): void {
    const m = decodeLivenessMessage(plain);
    if (!m) {
      this.unroutable++;
      return;
    }
    const entry = this.routes.get(m.cidHi, m.cidLo);
    const ours = entry !== null && entry.peerName === peerName && !entry.isClosed ? entry : null;
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
  protected route(plain: Uint8Array, peerName: string, from: Endpoint, arrival: number): void {
    if (plain[0] === LIVENESS_MARKER) {
      this.#onLivenessMessage(plain, peerName, from);
      return;
    }
    const r = this.#route;
    if (!peekRoute(plain, r)) {
      this.unroutable++;
      return;
    }
    const hi = r.cidHi;
    const lo = r.cidLo;
    let entry = this.routes.get(hi, lo);
    if (entry && entry.peerName !== peerName) {
      // An authenticated peer may only talk to its own associations.
      this.unroutable++;
      return;
    }
    if (!entry || entry.isClosed) {
      // Only a client's first packets (HANDSHAKE INIT) may create an association, so stray or
      // stale datagrams (e.g. from before a restart) never do.
      if (this.initiatorPeers.has(peerName) || !r.opensAssociation) {
        this.unroutable++;
        return;
      }
      entry = this.host.accept(peerName, from);
      if (!entry) {
        this.unroutable++;
        return;
      }
      this.routes.set(hi, lo, entry);
      this.#cidOf.set(entry, cidPair(hi, lo));
    }
    this.host.deliver(entry, plain, arrival);
  }

  /** Our own client association's id is learned from its first datagram. */
  protected learn(entry: E, data: Uint8Array, known: { learned: boolean }): void {
    const r = this.#route;
    if (known.learned || !peekRoute(data, r)) return;
    known.learned = true;
    this.routes.set(r.cidHi, r.cidLo, entry);
    this.#cidOf.set(entry, cidPair(r.cidHi, r.cidLo));
  }

  forget(entry: E): void {
    this.routes.delete(entry);
    this.#cidOf.delete(entry);
  }
}

class PlaintextSecurity<E extends RoutedEntry> extends RoutingSecurity<E> {
  readonly mode = 'plaintext (INSECURE, debug only)';
  // Routes the datagrams themselves: the transport copies what it keeps.
  readonly takesTransientDatagrams = true;

  datagram(data: Buffer, from: RemoteInfo, arrival: number): void {
    const ep = { host: from.address, port: from.port };
    this.route(data, this.host.peerForAddress(ep), ep, arrival);
  }

  endOfBatch(): void {}

  openClient(): void {}

  protected sendProtected(_peerName: string, data: Uint8Array, to: Endpoint): void {
    this.host.send(data, to);
  }

  // No keys to renew: just ask again.
  rehandshake(entry: E): void {
    this.probe(entry);
  }

  transmitter(remote: Endpoint): Transmitter<E> {
    const known = { learned: false };
    const batch = new DatagramBatch();
    return (entry, conn, now, max) => {
      const room = conn.maxDatagramSize;
      let sent = 0;
      while (sent < max) {
        if (!batch.fits(room)) this.host.sendBatch(batch, remote);
        const at = batch.end;
        const n = conn.pollTransmitInto(now, batch.buf, at);
        if (n === 0) break;
        if (!known.learned) this.learn(entry, batch.buf.subarray(at, at + n), known);
        batch.push(n);
        sent++;
      }
      if (batch.count > 0) this.host.sendBatch(batch, remote);
      return sent;
    };
  }

  stats(): WanSecurityStats {
    return {
      mode: this.mode,
      unroutable: this.unroutable,
      probeAnswers: { ...this.probeAnswers },
      heldForHandshake: { held: 0, released: 0, dropped: 0 },
      unsealable: 0,
      endpoint: null,
    };
  }

  close(): void {}
}

const CIPHER_MISMATCH_WARNING_MS = 60_000;
// Our handshake unanswered this long: say why that may be. The endpoint retransmits after
// rekeyTimeoutMs (5 s) and the warning comes with the first retransmission past this.
const UNANSWERED_HANDSHAKE_WARNING_MS = 3_000;
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
    for (const p of peers) {
      this.#nameById.set(p.id, p.name);
      this.#idByName.set(p.name, p.id);
    }
  }

  override peerIdOf(name: string): PeerId | null {
    return this.#idByName.get(name) ?? null;
  }

  override localPublicKey(): Uint8Array | null {
    return this.#ep.publicKey;
  }

  override setPeers(peers: readonly ReloadPeer[]): void {
    super.setPeers(peers);
    const next = new Map<PeerId, string>();
    for (const p of peers) if (p.id !== null) next.set(p.id, p.name);
    for (const [id, name] of this.#nameById) {
      if (next.get(id) === name) continue;
      this.#ep.removePeer(id);
      this.#nameById.delete(id);
      if (this.#idByName.get(name) === id) this.#idByName.delete(name);
      this.#held.delete(id);
      this.#handshakeStartedAt.delete(id);
    }
    for (const p of peers) {
      if (p.id === null || p.publicKey === null || this.#nameById.has(p.id)) continue;
      this.#ep.addPeer({ publicKey: p.publicKey });
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
  /** An authenticated transport datagram from `peer`: to its association. */
  #deliver = (peer: PeerId, plaintext: Uint8Array, source: string, arrival: number): void => {
    if (peer !== this.#lastPeer) {
      this.#lastPeer = peer;
      this.#lastPeerName = this.#nameById.get(peer);
    }
    if (source !== this.#lastEndpointSource || this.#lastEndpoint === null) {
      this.#lastEndpointSource = source;
      this.#lastEndpoint = this.#endpointOf(source);
    }
    const name = this.#lastPeerName;
    if (name !== undefined) this.route(plaintext, name, this.#lastEndpoint, arrival);
  };

  datagram(data: Buffer, from: RemoteInfo, arrival: number): void {
    if (from.port !== this.#lastPort || from.address !== this.#lastAddress) {
      this.#lastPort = from.port;
      this.#lastAddress = from.address;
      this.#lastSource = from.family === 'IPv6' ? `[${from.address}]:${from.port}` : `${from.address}:${from.port}`;
    }
    const source = this.#lastSource;
    // Data messages are opened together at the end of the receive batch (one AEAD call per run).
    const r = this.#ep.handleDatagram(data, source, arrival);
    if (r === DEFERRED) return;
    if (r.kind === 'reply') {
      this.host.send(r.data, { host: from.address, port: from.port });
    } else if (r.kind === 'dropped') {
      if (r.reason === 'cipher-mismatch') this.#warnCipherMismatch(source);
      else if (r.reason === 'unknown-peer') this.#warnUnknownKey(source);
      else if (r.reason === 'bad-mac1' && messageType(data) === MSG_INITIATION) this.#warnNotForUs(source);
    }
    if (r.kind !== 'dropped') this.#pump();
  }

  endOfBatch(): void {
    if (this.#ep.deferredCount === 0) return;
    this.#ep.openDeferred(this.#deliver);
    // A message under a responder's new keys confirms them ('established': held datagrams go out).
    this.#pump();
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

  // A wrong key on either side makes the handshake fail in silence (the answering side must not
  // tell a stranger why): each side says so in its own log instead, once a minute at most, as the
  // initiator retries every few seconds.
  #unknownKeyLog = new LogLimit();
  #notForUsLog = new LogLimit();
  /** Our handshakes still unanswered, by peer: when each was started. */
  #handshakeStartedAt = new Map<PeerId, number>();
  #unansweredLog = new Map<PeerId, LogLimit>();

  /** An initiation from a key that is not one of our peers'. */
  #warnUnknownKey(source: string): void {
    const unlogged = this.#unknownKeyLog.take(performance.now());
    if (unlogged === null) return;
    this.host.log.warn(
      { source, ...(unlogged > 0 ? { unlogged } : {}) },
      `handshake from ${source} with an unknown key: not one of this gateway's peers (the initiator's key must match a peer's publicKey here)`,
    );
  }

  /** An initiation whose mac1 is not keyed to our public key: sent to a different key than ours. */
  #warnNotForUs(source: string): void {
    const unlogged = this.#notForUsLog.take(performance.now());
    if (unlogged === null) return;
    this.host.log.warn(
      { source, ...(unlogged > 0 ? { unlogged } : {}) },
      `handshake from ${source} for another key: the initiator's peer publicKey is not this gateway's public key`,
    );
  }

  /** Called as the handshake timer fires (retransmissions): our initiation to a peer got no answer so far. */
  #checkUnanswered(now: number): void {
    for (const [id, startedAt] of this.#handshakeStartedAt) {
      if (this.#ep.isEstablished(id) || now - startedAt < UNANSWERED_HANDSHAKE_WARNING_MS) continue;
      let limit = this.#unansweredLog.get(id);
      if (limit === undefined) this.#unansweredLog.set(id, (limit = new LogLimit()));
      const unlogged = limit.take(now);
      if (unlogged === null) continue;
      const peer = this.#nameById.get(id) ?? id;
      this.host.log.warn(
        { peer, address: this.#ep.peerAddress(id), waitedMs: Math.round(now - startedAt) },
        'no answer to the handshake: the peer gateway is down or unreachable, or it does not accept our key (its peer publicKey must be our public key, and ours for it its public key)',
      );
    }
  }

  openClient(_entry: E, peerName: string, remote: Endpoint): void {
    const id = this.#idByName.get(peerName);
    if (id === undefined) return;
    if (!this.#handshakeStartedAt.has(id)) this.#handshakeStartedAt.set(id, performance.now());
    // A new association always gets fresh keys: after a peer restart the old session is dead
    // on its side and would silently swallow everything until the next scheduled rekey.
    const init = this.#ep.connect(id, formatEndpoint(remote), performance.now());
    this.host.send(init, remote);
    this.#pump();
  }

  rehandshake(entry: E): void {
    const id = this.#idByName.get(entry.peerName);
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

  transmitter(remote: Endpoint): Transmitter<E> {
    const known = { learned: false };
    let id: PeerId | undefined;
    // The peer's address string changes only when it roams: its endpoint object is looked up once.
    let lastAddress: string | null = null;
    let lastTo = remote;
    const batch = new DatagramBatch();
    return (e, conn, now, max) => {
      id ??= this.#idByName.get(e.peerName);
      if (id === undefined) return 0;
      // A reload removed the peer or changed its key: its closing association has no keys left.
      if (this.#nameById.get(id) !== e.peerName) return 0;
      const addr = this.#ep.peerAddress(id);
      if (addr !== lastAddress) {
        lastAddress = addr;
        lastTo = addr === null ? remote : this.#endpointOf(addr);
      }
      if (!this.#ep.readyToSeal(id, now)) return this.#holdFlush(conn, now, max, id, lastTo, e, known);
      const room = conn.maxDatagramSize + SecureEndpoint.OVERHEAD;
      let sent = 0;
      while (sent < max) {
        if (!batch.fits(room)) this.#sealAndSend(batch, id, lastTo, now);
        const at = batch.end + SecureEndpoint.HEADER_ROOM;
        const n = conn.pollTransmitInto(now, batch.buf, at);
        if (n === 0) break;
        if (!known.learned) this.learn(e, batch.buf.subarray(at, at + n), known);
        batch.push(n + SecureEndpoint.OVERHEAD);
        sent++;
      }
      if (batch.count > 0) this.#sealAndSend(batch, id, lastTo, now);
      return sent;
    };
  }

  /** Seals the whole batch in one AEAD call and hands it to the link; without keys (expired meanwhile) it is dropped. */
  #sealAndSend(batch: DatagramBatch, id: PeerId, to: Endpoint, now: number): void {
    if (this.#ep.sealRun(id, batch.buf, batch.lens, 0, batch.count, 0, now)) {
      this.host.sendBatch(batch, to);
    } else {
      this.#unsealable += batch.count;
      batch.clear();
    }
    // Sealing may have started a rekey: its initiation goes out now.
    this.#pump();
  }

  #unsealable = 0;

  /** No session to `id` yet: the datagrams are held (copies) until the handshake completes. */
  #holdFlush(conn: TransportConnection, now: number, max: number, id: PeerId, to: Endpoint, e: E, known: { learned: boolean }): number {
    let sent = 0;
    let tx: Transmit | null;
    while (sent < max && (tx = conn.pollTransmit(now)) !== null) {
      if (!known.learned) this.learn(e, tx.data, known);
      this.#holdUntilHandshake(id, tx.data, to, e);
      sent++;
    }
    return sent;
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
    const batch = new DatagramBatch(HELD_DATAGRAMS_PER_PEER * 2048, HELD_DATAGRAMS_PER_PEER);
    let to: Endpoint | null = null;
    for (const h of held) {
      // An association closed meanwhile (e.g. it gave up waiting) must not be opened at the peer.
      const sealed = established && !h.entry.isClosed ? this.#ep.seal(id, h.data, now) : null;
      if (sealed === null) {
        this.#heldCounts.dropped++;
        continue;
      }
      if (to !== null && (h.to !== to || !batch.fits(sealed.length))) this.host.sendBatch(batch, to);
      to = h.to;
      batch.add(sealed);
      this.#heldCounts.released++;
    }
    if (to !== null) this.host.sendBatch(batch, to);
  }

  /** Drains handshake transmits and events, re-arms the single handshake timer. */
  #pump(): void {
    let t: SecureTransmit | null;
    while ((t = this.#ep.pollTransmit()) !== null) this.host.send(t.data, this.#endpointOf(t.address));
    let ev: SecureEvent | null;
    while ((ev = this.#ep.pollEvent()) !== null) {
      const peer = this.#nameById.get(ev.peer) ?? ev.peer;
      this.#handshakeStartedAt.delete(ev.peer);
      if (ev.type === 'established') {
        this.host.log.info({ peer, address: ev.address, rekey: ev.rekey }, 'secure session established');
        this.#releaseHeld(ev.peer, true);
        for (const e of [...this.#probeAfterHandshake]) {
          if (e.peerName !== peer) continue;
          this.#probeAfterHandshake.delete(e);
          if (!e.isClosed) this.probe(e);
        }
      } else {
        this.#releaseHeld(ev.peer, false);
        this.host.log.warn(
          { peer },
          'handshake failed: no answer from the peer, or it does not accept our key (or uses the other `cipher`)',
        );
      }
    }
    const next = this.#ep.nextTimeout();
    if (next === null || next === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.#timerAt = Infinity;
        const now = performance.now();
        this.#ep.handleTimeout(now);
        this.#pump();
        this.#checkUnanswered(now);
      },
      Math.max(1, Math.ceil(next - performance.now())),
    );
    this.#timer.unref();
  }

  stats(): WanSecurityStats {
    return {
      mode: this.mode,
      unroutable: this.unroutable,
      probeAnswers: { ...this.probeAnswers },
      heldForHandshake: { ...this.#heldCounts },
      unsealable: this.#unsealable,
      endpoint: this.#ep.stats(),
    };
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/** Loads the key files named in the config (refusing group/world-readable private keys). */
export function createWanSecurity<E extends RoutedEntry>(config: GatewayConfig): Result<WanSecurity<E>> {
  if (config.insecurePlaintext) return { ok: true, value: new PlaintextSecurity<E>(config) };
  if (!config.key) return { ok: false, error: 'key: required (create one with `longhaul keygen NAME`)' };
  const own = loadPrivateKeyFile(resolveKeyPath(config, config.key));
  if (!own.ok) return { ok: false, error: own.error };
  const loaded = loadPeerKeys(config);
  if (!loaded.ok) return loaded;
  const peers = loaded.value;
  if (peers.length === 0) return { ok: false, error: 'peers: at least one peer (with its public key) is required' };
  const ep = new SecureEndpoint({
    staticKey: own.value,
    peers: peers.map((p) => ({ publicKey: p.publicKey })),
    cipher: config.cipher,
  });
  return { ok: true, value: new SecureEndpointSecurity<E>(config, ep, peers) };
}

/** The peers' public key files, loaded (errors name the file; a reload reports them by key path). */
export function loadPeerKeys(config: GatewayConfig): Result<Array<{ name: string; id: PeerId; publicKey: Uint8Array }>> {
  const peers: Array<{ name: string; id: PeerId; publicKey: Uint8Array }> = [];
  for (const [i, p] of config.peers.entries()) {
    if (!p.publicKey) return { ok: false, error: `peers[${i}].publicKey: peer "${p.name}" has no publicKey` };
    const pub = loadPublicKeyFile(resolveKeyPath(config, p.publicKey));
    if (!pub.ok) return { ok: false, error: `peers[${i}].publicKey: ${pub.error}` };
    const id = peerIdOf(pub.value);
    const twin = peers.find((q) => q.id === id);
    if (twin) return { ok: false, error: `peers[${i}].publicKey: peer "${p.name}" has the same public key as peer "${twin.name}"` };
    peers.push({ name: p.name, id, publicKey: pub.value });
  }
  return { ok: true, value: peers };
}

/**
 * The protection layer's per-datagram overhead, which the transport's packet size must leave room for.
 * Plaintext mode reserves it too: it exists to measure encryption's cost, so it must move the same
 * transport packets (same count per GiB), differing only in the AEAD.
 */
export function protectionOverhead(_config: GatewayConfig): number {
  return SecureEndpoint.OVERHEAD;
}
