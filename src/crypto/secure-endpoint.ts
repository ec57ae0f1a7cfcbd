// SecureEndpoint: sans-IO packet protection under the transport (like WireGuard under a tunnel).
// Every UDP datagram on the WAN is one of four protected messages (docs/protocol.md,
// "Packet protection"). No sockets, no timers: the caller passes datagrams, source addresses and
// `now` (monotonic ms, same clock as the transport); randomness and the wall clock are injectable.
//
//   const ep = new SecureEndpoint({ staticKey, peers: [{ publicKey, psk? }] });
//   const peer = peerIdOf(peerPublicKey);            // PeerId = base64 of the static public key
//   // initiator only (the side that knows the peer's address):
//   udp.send(ep.connect(peer, '198.18.1.1:4500', now), '198.18.1.1:4500');
//
//   on UDP datagram (bytes, from):
//     const r = ep.handleDatagram(bytes, from, now);
//     r.kind === 'data'    -> transport of r.peer: conn.handleDatagram(r.plaintext, now)
//     r.kind === 'reply'   -> udp.send(r.data, from)         (handshake response or cookie reply)
//     r.kind === 'handled' | 'dropped' -> nothing            (r.reason says why; already counted)
//   on timer:       ep.handleTimeout(now)
//   after any call: while ((t = ep.pollTransmit())) udp.send(t.data, t.address);
//                   while ((e = ep.pollEvent())) ...  'established' -> create/keep the transport
//                   Connection for e.peer (server role on the responder); 'handshake-failed'
//                   arm a timer at ep.nextTimeout() (null = none)
//   sending a transport packet: const d = ep.seal(peer, packet, now);
//                   if (d) udp.send(d, ep.peerAddress(peer)!)  (null: no session yet; a handshake
//                   is under way and the transport's retransmission covers the loss)
//                   seal() may queue a rekey initiation: drain pollTransmit after it too (cheap
//                   when empty). Time-based rekeys also start from handleTimeout, so a driver that
//                   drains only after timers and datagrams is late, never stuck.
//   transport packet size: maxPacketSize = path MTU payload - SecureEndpoint.OVERHEAD (32 bytes).
//
// Invariants: a datagram that fails authentication is dropped and counted and changes no
// association state; before a source proves its address (cookie round trip) it creates no
// per-source state; nothing here throws on network input.
import type { KeyObject } from 'node:crypto';
import { DEFAULT_PACKET_CIPHER, type PacketAead, type PacketCipher } from './aead.ts';
import { defaultPacketAead } from './aead-backend.ts';
import { CookieChecker, cookieKeyFor, mac1KeyFor, openCookieReply, writeMacs } from './cookie.ts';
import {
  readInitiation,
  readResponse,
  writeInitiation,
  writeResponse,
  initialHashFor,
  NOISE_SUITES,
  ZERO_PSK,
  type InitiatorHandshake,
  type LocalIdentity,
  type RemoteIdentity,
} from './handshake.ts';
import { keyPairFromPrivate, type StaticKeyPair } from './keys.ts';
import {
  dh,
  KEY_LEN,
  systemRandom,
  tai64n,
  TIMESTAMP_LEN,
  x25519PrivateKeyObject,
  x25519PublicKeyObject,
  type RandomFill,
} from './primitives.ts';
import { HandshakeRateLimiter } from './rate-limiter.ts';
import { Keypair, dataCounter, openData, sealData, sealDataAt, sealDataRun, type OpenFailure } from './session.ts';
import {
  COOKIE_REPLY,
  DATA,
  DATA_OVERHEAD,
  INITIATION,
  messageType,
  MSG_COOKIE_REPLY,
  MSG_DATA,
  MSG_INITIATION,
  MSG_RESPONSE,
  readU32,
  RESPONSE,
} from './wire.ts';

/** A peer is named by its static public key, base64 (as in NAME.pub and configs). */
export type PeerId = string;

export function peerIdOf(publicKey: Uint8Array): PeerId {
  return Buffer.from(publicKey).toString('base64');
}

export interface SecurePeerConfig {
  publicKey: Uint8Array;
  /** Optional 32-byte pre-shared key mixed into the handshake (Noise psk2). */
  psk?: Uint8Array;
}

/** Timing and size limits. Defaults follow WireGuard (whitepaper section 6) unless noted. */
export interface ProtectionLimits {
  /** Soft: start a new handshake after this many packets sent on a keypair. */
  rekeyAfterMessages: number;
  /** Hard: never send or accept a counter at or past this (2^48 keeps counters exact numbers). */
  rejectAfterMessages: number;
  /** Soft: the initiator of a keypair rekeys when it sends on a keypair this old. */
  rekeyAfterMs: number;
  /** The responder of a keypair waits this much longer, so both sides rarely start at once. */
  responderRekeyDelayMs: number;
  /** Hard: keypairs older than this neither send nor receive (old keys keep decrypting until then). */
  rejectAfterMs: number;
  /** Handshake retransmission interval (plus up to `retransmitJitterMs`). */
  rekeyTimeoutMs: number;
  retransmitJitterMs: number;
  /** Give up a handshake attempt (event 'handshake-failed') after this long. */
  rekeyAttemptMs: number;
  /** Initiations with valid mac1 per second before the responder demands cookies; 0 = always. */
  handshakesPerSecondBeforeCookies: number;
  /** Cookie secret R rotation; initiators treat cookies older than this minus rekeyTimeoutMs as stale. */
  cookieSecretLifetimeMs: number;
  /** Cap on unconfirmed associations (our pending initiations + responder keypairs awaiting confirmation). */
  maxHalfOpen: number;
  /** Per-source token bucket for initiations from address-proven sources. */
  sourceHandshakesPerSecond: number;
  sourceHandshakeBurst: number;
  rateLimiterEntries: number;
  /** A peer's initiations closer together than this are dropped (WireGuard: 50/s). */
  minInitiationIntervalMs: number;
}

export const DEFAULT_LIMITS: ProtectionLimits = {
  rekeyAfterMessages: 2 ** 30, // brief rekeys cost ~1 ms; 2^30 packets is ~25 min at 1 Gbit/s
  rejectAfterMessages: 2 ** 48,
  rekeyAfterMs: 120_000,
  responderRekeyDelayMs: 10_000,
  rejectAfterMs: 180_000,
  rekeyTimeoutMs: 5_000,
  retransmitJitterMs: 333,
  rekeyAttemptMs: 90_000,
  handshakesPerSecondBeforeCookies: 64, // a gateway has few peers; 64/s is far above legitimate load
  cookieSecretLifetimeMs: 120_000,
  maxHalfOpen: 1024,
  sourceHandshakesPerSecond: 20,
  sourceHandshakeBurst: 5,
  rateLimiterEntries: 4096,
  minInitiationIntervalMs: 20,
};

export interface SecureEndpointOptions {
  staticKey: StaticKeyPair;
  peers: SecurePeerConfig[];
  /** Fills buffers with random bytes (ephemeral keys, indices, cookie secret). Default: CSPRNG. */
  random?: RandomFill;
  /** Wall-clock ms for the TAI64N timestamp in initiations (must survive restarts). Default Date.now. */
  wallClockMs?: () => number;
  limits?: Partial<ProtectionLimits>;
  /**
   * The caller gives up every datagram it passes to handleDatagram (e.g. node:dgram's per-message
   * buffers): data messages are decrypted in place and `plaintext` is a view of the datagram,
   * saving an allocation and a copy per packet. A datagram that fails authentication may be
   * overwritten. Default false: the caller's bytes are never modified.
   */
  decryptInPlace?: boolean;
  /**
   * Datagrams given to handleDatagramDeferred are the caller's only until openDeferred returns
   * (the gateway passes views of its socket's receive buffer): data messages are then decrypted
   * out of place into the endpoint's own memory, other messages handled on a copy. Saves the
   * caller copying every datagram out. Default false: deferred data messages are decrypted in
   * place, and the caller gives the datagrams up.
   */
  transientDatagrams?: boolean;
  /**
   * The cipher of the handshake and of every packet (Noise_IKpsk2_25519_AESGCM_SHA256 or
   * ..._ChaChaPoly_SHA256); the peer must use the same one. Default aes-256-gcm.
   */
  cipher?: PacketCipher;
  /**
   * Per-packet AEAD backend for `cipher` (must match it). Default: OpenSSL through native/lh_aead.c;
   * without it sodium-native (ChaCha20-Poly1305) or node:crypto (AES-256-GCM).
   */
  aead?: PacketAead;
}

export type DropReason =
  | 'malformed' // unknown type, bad framing or length
  | 'bad-mac1' // handshake message not addressed to our static key
  | 'unknown-index' // no session or handshake under that receiver index
  | 'auth-failed' // AEAD tag did not verify
  | 'duplicate' // counter already seen (replay)
  | 'too-old' // counter behind the replay window
  | 'expired-key' // keypair past rejectAfterMs / rejectAfterMessages
  | 'handshake-failed' // handshake message failed decryption or DH
  | 'unknown-peer' // valid initiation from a static key not in the allowed list
  | 'cipher-mismatch' // initiation made with the other cipher (a configuration mismatch)
  | 'stale-timestamp' // initiation timestamp not newer than the last accepted one (replay)
  | 'rate-limited'
  | 'half-open-limit';

export type HandleResult =
  | { kind: 'data'; peer: PeerId; plaintext: Uint8Array }
  /** Send `data` back to the source address of the datagram just handled. */
  | { kind: 'reply'; data: Uint8Array }
  /** Consumed (a handshake step or a keepalive); check pollTransmit/pollEvent. */
  | { kind: 'handled' }
  | { kind: 'dropped'; reason: DropReason };

export type SecureEvent =
  /** New keys are in use with `peer` (`rekey`: an earlier session existed). */
  | { type: 'established'; peer: PeerId; address: string; rekey: boolean }
  /** No handshake completed within rekeyAttemptMs. */
  | { type: 'handshake-failed'; peer: PeerId };

export interface SecureTransmit {
  peer: PeerId;
  address: string;
  data: Uint8Array;
}

export interface SecureEndpointStats {
  packetsSealed: number;
  packetsOpened: number; // authenticated data messages, keepalives included
  keepalivesReceived: number;
  authFailures: number; // data and cookie replies whose tag failed
  replays: number; // duplicate counters
  tooOld: number; // counters behind the window
  malformed: number;
  unknownIndex: number;
  expiredKey: number;
  invalidMac1: number;
  handshakeInitiationsSent: number;
  handshakeInitiationsReceived: number; // with valid mac1
  handshakeResponsesSent: number;
  handshakesCompleted: number; // keypairs that became current (either role)
  handshakesFailed: number; // failed decryption/DH, unknown peers, stale timestamps
  handshakeTimeouts: number;
  unknownPeers: number;
  /** Initiations (counted in handshakesFailed too) that decrypt only under the other cipher. */
  cipherMismatches: number;
  staleTimestamps: number;
  cookiesSent: number;
  cookiesReceived: number;
  rateLimited: number;
  halfOpenRejected: number;
  /** Gauges, sampled by stats(). */
  sessions: number;
  halfOpen: number;
  rateLimiterEntries: number;
  /** The per-packet AEAD backend in use ('openssl', 'sodium' or 'node'). */
  aeadBackend: string;
  /** The configured cipher. */
  cipher: PacketCipher;
}

interface PendingInitiation {
  localIndex: number;
  handshake: InitiatorHandshake;
  mac1: Buffer;
  sentAt: number;
  retransmitAt: number;
}

interface PeerState {
  id: PeerId;
  remote: RemoteIdentity;
  mac1Key: Buffer;
  cookieKey: Buffer;
  address: string | null;
  current: Keypair | null;
  previous: Keypair | null;
  next: Keypair | null; // responder side, awaiting the initiator's first data message
  pending: PendingInitiation | null;
  attemptStartedAt: number;
  cookieResentInAttempt: boolean;
  cookie: Buffer | null;
  cookieReceivedAt: number;
  latestTimestamp: Buffer | null; // newest accepted initiation timestamp from this peer
  lastInitiationAcceptedAt: number;
  lastTimestampSent: Buffer;
}

type IndexEntry = { peer: PeerState; keypair: Keypair | null }; // keypair null: our pending initiation

function zeroStats(): SecureEndpointStats {
  return {
    packetsSealed: 0,
    packetsOpened: 0,
    keepalivesReceived: 0,
    authFailures: 0,
    replays: 0,
    tooOld: 0,
    malformed: 0,
    unknownIndex: 0,
    expiredKey: 0,
    invalidMac1: 0,
    handshakeInitiationsSent: 0,
    handshakeInitiationsReceived: 0,
    handshakeResponsesSent: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    handshakeTimeouts: 0,
    unknownPeers: 0,
    cipherMismatches: 0,
    staleTimestamps: 0,
    cookiesSent: 0,
    cookiesReceived: 0,
    rateLimited: 0,
    halfOpenRejected: 0,
    sessions: 0,
    halfOpen: 0,
    rateLimiterEntries: 0,
    aeadBackend: '',
    cipher: DEFAULT_PACKET_CIPHER,
  };
}

const EMPTY = new Uint8Array(0);
const HANDLED: HandleResult = { kind: 'handled' };
/** openDeferred's receiver: an authenticated datagram, its source, and when it arrived (handleDatagramDeferred's `now`). */
export type DeferredDelivery = (peer: PeerId, plaintext: Uint8Array, source: string, arrival: number) => void;

/** Queued by handleDatagramDeferred: its fate is decided in openDeferred. */
export const DEFERRED: HandleResult = Object.freeze({ kind: 'handled' });

// Transient data messages' plaintexts are written into one slab of this size (~180 datagrams of
// 1400 bytes), reused: a plaintext is valid only until `deliver` returns.
const PLAIN_SLAB_BYTES = 256 * 1024;

/** handleDatagramDeferred's queue: parallel arrays, reused batch after batch. */
class DeferredOpens {
  count = 0;
  datagrams: Array<Uint8Array | null> = [];
  entries: Array<IndexEntry | null> = [];
  sources: string[] = [];
  counters = new Float64Array(256);
  /** When each message arrived (handleDatagramDeferred's `now`), handed on with its plaintext. */
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
const DROP = {} as Record<DropReason, HandleResult>;
for (const r of [
  'malformed',
  'bad-mac1',
  'unknown-index',
  'auth-failed',
  'duplicate',
  'too-old',
  'expired-key',
  'handshake-failed',
  'unknown-peer',
  'cipher-mismatch',
  'stale-timestamp',
  'rate-limited',
  'half-open-limit',
] as const) {
  DROP[r] = Object.freeze({ kind: 'dropped', reason: r });
}

export class SecureEndpoint {
  /** Bytes added to every transport datagram (16-byte header + 16-byte tag). */
  static readonly OVERHEAD = DATA_OVERHEAD;
  /** Where a transport datagram starts in a data message (sealRun's header room); the tag follows it. */
  static readonly HEADER_ROOM = DATA.headerSize;
  readonly overhead = DATA_OVERHEAD;
  readonly publicKey: Uint8Array;

  private readonly local: LocalIdentity;
  private readonly limits: ProtectionLimits;
  private readonly random: RandomFill;
  private readonly wallClockMs: () => number;
  private readonly peers = new Map<PeerId, PeerState>();
  private readonly indices = new Map<number, IndexEntry>();
  private readonly cookies: CookieChecker;
  private readonly rateLimiter: HandshakeRateLimiter;
  private readonly transmits: SecureTransmit[] = [];
  private readonly events: SecureEvent[] = [];
  private readonly counters = zeroStats();
  private readonly indexScratch = new Uint8Array(4);
  private readonly decryptInPlace: boolean;
  private readonly transientDatagrams: boolean;
  // Where transient data messages are decrypted to: plaintexts back to back, a new slab when full.
  private plainSlab: Uint8Array = EMPTY;
  private plainSlabPos = 0;
  private readonly aead: PacketAead;
  readonly cipher: PacketCipher;
  private loadWindowStart = -Infinity;
  private loadCount = 0;

  constructor(opts: SecureEndpointOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.random = opts.random ?? systemRandom;
    this.wallClockMs = opts.wallClockMs ?? Date.now;
    this.decryptInPlace = opts.decryptInPlace ?? false;
    this.transientDatagrams = opts.transientDatagrams ?? false;
    this.cipher = opts.cipher ?? opts.aead?.cipher ?? DEFAULT_PACKET_CIPHER;
    this.aead = opts.aead ?? defaultPacketAead(this.cipher);
    if (this.aead.cipher !== this.cipher) throw new Error(`aead backend is ${this.aead.cipher}, cipher is ${this.cipher}`);
    const suite = NOISE_SUITES[this.cipher];
    const otherSuite = NOISE_SUITES[this.cipher === 'aes-256-gcm' ? 'chacha20-poly1305' : 'aes-256-gcm'];
    const pair = keyPairFromPrivate(opts.staticKey.privateKey); // the public half is derived, not trusted
    const privateKey: KeyObject = x25519PrivateKeyObject(pair.privateKey);
    this.publicKey = pair.publicKey;
    const publicKey = Buffer.from(pair.publicKey);
    this.local = {
      privateKey,
      publicKey,
      suite,
      initialHash: initialHashFor(suite, publicKey),
      otherSuite: { suite: otherSuite, initialHash: initialHashFor(otherSuite, publicKey) },
    };
    this.cookies = new CookieChecker(publicKey, this.random, this.limits.cookieSecretLifetimeMs);
    this.rateLimiter = new HandshakeRateLimiter({
      maxEntries: this.limits.rateLimiterEntries,
      perSecond: this.limits.sourceHandshakesPerSecond,
      burst: this.limits.sourceHandshakeBurst,
    });
    for (const cfg of opts.peers) this.addPeer(cfg);
  }

  /**
   * Removes a peer (a gateway reload dropped it or changed its key): its sessions and handshake
   * state go, so nothing sealed under them is accepted any more. Unknown ids are ignored.
   */
  removePeer(id: PeerId): void {
    const p = this.peers.get(id);
    if (!p) return;
    for (const [index, entry] of this.indices) if (entry.peer === p) this.indices.delete(index);
    this.peers.delete(id);
  }

  /** Adds a peer (at construction, or a gateway reload added one). Throws on a bad key (a caller bug: keys are validated at load). */
  addPeer(cfg: SecurePeerConfig): void {
    // Configuration errors are bugs in the caller (configs are validated at load): throw.
    if (cfg.publicKey.length !== KEY_LEN) throw new Error('peer public key must be 32 bytes');
    if (cfg.psk && cfg.psk.length !== KEY_LEN) throw new Error('pre-shared key must be 32 bytes');
    const id = peerIdOf(cfg.publicKey);
    if (this.peers.has(id)) throw new Error(`peer ${id} listed twice`);
    const publicKey = Buffer.from(cfg.publicKey);
    const publicKeyObject = x25519PublicKeyObject(publicKey);
    const staticShared = dh(this.local.privateKey, publicKeyObject);
    if (!staticShared) throw new Error(`peer public key ${id} is a low-order point`);
    this.peers.set(id, {
      id,
      remote: {
        publicKey,
        publicKeyObject,
        psk: cfg.psk ? Buffer.from(cfg.psk) : ZERO_PSK,
        staticShared,
        initialHash: initialHashFor(this.local.suite, publicKey),
      },
      mac1Key: mac1KeyFor(publicKey),
      cookieKey: cookieKeyFor(publicKey),
      address: null,
      current: null,
      previous: null,
      next: null,
      pending: null,
      attemptStartedAt: 0,
      cookieResentInAttempt: false,
      cookie: null,
      cookieReceivedAt: 0,
      latestTimestamp: null,
      lastInitiationAcceptedAt: -Infinity,
      lastTimestampSent: Buffer.alloc(TIMESTAMP_LEN),
    });
  }

  // ---- application side -------------------------------------------------------------------

  /**
   * Starts a handshake with `peer` at `address` and returns the initiation datagram to send there.
   * Retransmissions come out of pollTransmit(). Throws for a peer not in the configuration (a bug).
   */
  connect(peer: PeerId, address: string, now: number): Uint8Array {
    const p = this.requirePeer(peer);
    p.address = address;
    p.attemptStartedAt = now;
    p.cookieResentInAttempt = false;
    return this.sendInitiation(p, now);
  }

  /**
   * Protects one transport datagram for `peer`. Returns null when there is no usable session
   * (never established, expired, or awaiting a handshake this call may have started).
   * `into`: a buffer to write the datagram into when it fits (the result is then a view of it);
   * otherwise a new buffer is allocated.
   */
  seal(peer: PeerId, plaintext: Uint8Array, now: number, into?: Buffer): Uint8Array | null {
    const p = this.requirePeer(peer);
    const kp = this.sendKeys(p, now);
    if (kp === null) return null;
    const out = sealData(kp, plaintext, into);
    this.afterSeal(p, kp, now);
    return out;
  }

  /**
   * seal() written to out[at, at + plaintext.length + OVERHEAD) (the caller has made the room):
   * the message's length, or -1 where seal() returns null. The gateway seals straight into its
   * send queue this way: no copy and no allocation per packet.
   */
  sealInto(peer: PeerId, plaintext: Uint8Array, now: number, out: Uint8Array, at: number): number {
    const p = this.requirePeer(peer);
    const kp = this.sendKeys(p, now);
    if (kp === null) return -1;
    const n = sealDataAt(kp, plaintext, out, at);
    this.afterSeal(p, kp, now);
    return n;
  }

  /**
   * True when packets to `peer` can be sealed now; otherwise false, and a handshake is started if
   * none is under way. A sender that defers sealing (sealRun) asks this when it writes a packet.
   */
  readyToSeal(peer: PeerId, now: number): boolean {
    return this.sendKeys(this.requirePeer(peer), now) !== null;
  }

  /**
   * Seals a send queue's run in place: `count` packets back to back in buf from byte `at`,
   * packet i being lens[from + i] bytes (HEADER_ROOM bytes of header room, the transport
   * datagram, then room for the tag: OVERHEAD bytes in all). One AEAD call for the run (the
   * per-call cost is a third of a 1400-byte seal). False when there is no usable session: the
   * caller drops the run.
   */
  sealRun(peer: PeerId, buf: Uint8Array, lens: Int32Array, from: number, count: number, at: number, now: number): boolean {
    const p = this.requirePeer(peer);
    const kp = this.sendKeys(p, now);
    if (kp === null || kp.sendCounter + count > this.limits.rejectAfterMessages) return false;
    sealDataRun(kp, buf, lens, from, count, at);
    this.afterSeal(p, kp, now, count);
    return true;
  }

  /** The keys to seal under now, or null (then a handshake is started if none is under way). */
  private sendKeys(p: PeerState, now: number): Keypair | null {
    const kp = p.current;
    if (!kp || now - kp.createdAt >= this.limits.rejectAfterMs || kp.sendCounter >= this.limits.rejectAfterMessages) {
      this.startRekey(p, now);
      return null;
    }
    return kp;
  }

  private afterSeal(p: PeerState, kp: Keypair, now: number, packets = 1): void {
    this.counters.packetsSealed += packets;
    kp.lastSealAt = now;
    if (kp.sendCounter >= this.limits.rekeyAfterMessages || now - kp.createdAt >= this.rekeyAge(kp)) this.startRekey(p, now);
  }

  /** Last authenticated address of `peer` (or the one given to connect), null if never seen. */
  peerAddress(peer: PeerId): string | null {
    return this.requirePeer(peer).address;
  }

  /** True when seal() can send to `peer` now. */
  isEstablished(peer: PeerId): boolean {
    return this.requirePeer(peer).current !== null;
  }

  pollTransmit(): SecureTransmit | null {
    return this.transmits.shift() ?? null;
  }

  pollEvent(): SecureEvent | null {
    return this.events.shift() ?? null;
  }

  nextTimeout(): number | null {
    let next = Infinity;
    for (const p of this.peers.values()) {
      if (p.pending) next = Math.min(next, p.pending.retransmitAt);
      else if (p.current && !p.current.rekeyTimerDone) next = Math.min(next, p.current.createdAt + this.rekeyAge(p.current));
      for (const kp of [p.current, p.previous, p.next]) if (kp) next = Math.min(next, kp.createdAt + this.limits.rejectAfterMs);
    }
    return next === Infinity ? null : next;
  }

  handleTimeout(now: number): void {
    for (const p of this.peers.values()) {
      if (p.pending && now >= p.pending.retransmitAt) {
        if (now - p.attemptStartedAt >= this.limits.rekeyAttemptMs) {
          this.dropPending(p);
          this.counters.handshakeTimeouts++;
          this.events.push({ type: 'handshake-failed', peer: p.id });
        } else if (p.address !== null) {
          this.transmits.push({ peer: p.id, address: p.address, data: this.sendInitiation(p, now) });
        }
      }
      // Time-based rekey also runs from the timer, so it does not depend on the driver draining
      // pollTransmit after seal(); only keys in use are renewed.
      const kp = p.current;
      if (kp && !p.pending && !kp.rekeyTimerDone && now >= kp.createdAt + this.rekeyAge(kp)) {
        kp.rekeyTimerDone = true;
        if (now - kp.lastSealAt <= this.limits.rekeyAfterMs / 2) this.startRekey(p, now);
      }
      if (p.previous && now - p.previous.createdAt >= this.limits.rejectAfterMs) p.previous = this.retire(p.previous);
      if (p.next && now - p.next.createdAt >= this.limits.rejectAfterMs) p.next = this.retire(p.next);
      if (p.current && now - p.current.createdAt >= this.limits.rejectAfterMs) p.current = this.retire(p.current);
    }
  }

  stats(): SecureEndpointStats {
    let sessions = 0;
    for (const p of this.peers.values()) if (p.current) sessions++;
    return {
      ...this.counters,
      sessions,
      halfOpen: this.halfOpenCount(),
      rateLimiterEntries: this.rateLimiter.size,
      aeadBackend: this.aead.name,
      cipher: this.cipher,
    };
  }

  /**
   * Everything an authenticated packet could change, as a string: tests assert that
   * unauthenticated input leaves it untouched. Not for the packet path.
   */
  debugSnapshot(): string {
    const kpState = (kp: Keypair | null) => kp && [kp.localIndex, kp.remoteIndex, kp.sendCounter, kp.replay.highest, kp.createdAt];
    const peers = [...this.peers.values()].map((p) => ({
      id: p.id,
      address: p.address,
      current: kpState(p.current),
      previous: kpState(p.previous),
      next: kpState(p.next),
      pending: p.pending && [p.pending.localIndex, p.pending.sentAt],
      cookie: p.cookie?.toString('hex') ?? null,
      latestTimestamp: p.latestTimestamp?.toString('hex') ?? null,
      lastInitiationAcceptedAt: p.lastInitiationAcceptedAt,
    }));
    return JSON.stringify({
      peers,
      indices: [...this.indices.keys()].sort(),
      rateLimiter: this.rateLimiter.size,
      transmits: this.transmits.length,
      events: this.events.length,
    });
  }

  // ---- network side -----------------------------------------------------------------------

  /** Handles one received UDP payload from `source` (an address string, e.g. "198.18.1.1:4500"). */
  handleDatagram(data: Uint8Array, source: string, now: number): HandleResult {
    switch (messageType(data)) {
      case MSG_DATA:
        return data.length >= DATA_OVERHEAD ? this.handleData(data, source, now) : this.malformed();
      case MSG_INITIATION:
        return data.length === INITIATION.size ? this.handleInitiation(data, source, now) : this.malformed();
      case MSG_RESPONSE:
        return data.length === RESPONSE.size ? this.handleResponse(data, source, now) : this.malformed();
      case MSG_COOKIE_REPLY:
        return data.length === COOKIE_REPLY.size ? this.handleCookieReply(data, now) : this.malformed();
      default:
        return this.malformed();
    }
  }

  private malformed(): HandleResult {
    this.counters.malformed++;
    return DROP.malformed;
  }

  private handleData(data: Uint8Array, source: string, now: number): HandleResult {
    const entry = this.liveEntry(data, now);
    if (!('keypair' in entry)) return entry;
    const kp = entry.keypair!;
    const opened = openData(kp, data, this.limits.rejectAfterMessages, this.decryptInPlace);
    if (typeof opened === 'string') return this.openFailed(opened);
    return this.opened(entry.peer, kp, opened, source) ? { kind: 'data', peer: entry.peer.id, plaintext: opened } : HANDLED;
  }

  /** The index entry a data message names, if its keys may still open it; otherwise the drop (counted). */
  private liveEntry(data: Uint8Array, now: number): IndexEntry | HandleResult {
    const entry = this.indices.get(readU32(data, DATA.receiverIndex));
    const kp = entry?.keypair;
    if (!entry || !kp) {
      this.counters.unknownIndex++;
      return DROP['unknown-index'];
    }
    if (now - kp.createdAt >= this.limits.rejectAfterMs) {
      this.counters.expiredKey++;
      return DROP['expired-key'];
    }
    return entry;
  }

  private openFailed(why: OpenFailure): HandleResult {
    switch (why) {
      case 'auth-failed':
        this.counters.authFailures++;
        return DROP['auth-failed'];
      case 'duplicate':
        this.counters.replays++;
        return DROP.duplicate;
      case 'too-old':
        this.counters.tooOld++;
        return DROP['too-old'];
      default:
        this.counters.expiredKey++;
        return DROP['expired-key'];
    }
  }

  /** An authenticated data message's effects; true when it carries a datagram (false: a keepalive). */
  private opened(p: PeerState, kp: Keypair, plaintext: Uint8Array, source: string): boolean {
    this.counters.packetsOpened++;
    p.address = source; // roaming: reply to where authenticated traffic comes from
    if (kp === p.next) this.confirmNext(p, source);
    if (plaintext.length === 0) {
      this.counters.keepalivesReceived++;
      return false;
    }
    return true;
  }

  // ---- deferred opening: a receive batch's data messages in runs ------------------------------

  /**
   * As handleDatagram, but a data message that passes the checks that need no decryption (its
   * keys, their age, the counter limit, the replay window) is queued and DEFERRED returned:
   * openDeferred() then authenticates and decrypts every queued message (in place, or out of
   * place with transientDatagrams), a run per key in one AEAD call (the per-call cost is a third
   * of a 1400-byte open), and hands each authenticated datagram on in arrival order. `data` must
   * stay untouched until then.
   */
  handleDatagramDeferred(data: Uint8Array, source: string, now: number): HandleResult {
    if (messageType(data) !== MSG_DATA || data.length < DATA_OVERHEAD) {
      return this.handleDatagram(this.transientDatagrams ? Uint8Array.from(data) : data, source, now);
    }
    const entry = this.liveEntry(data, now);
    if (!('keypair' in entry)) return entry;
    const kp = entry.keypair!;
    const counter = dataCounter(data);
    if (counter >= this.limits.rejectAfterMessages) return this.openFailed('counter-limit');
    const verdict = kp.replay.check(counter);
    if (verdict !== 'fresh') return this.openFailed(verdict);
    const d = this.deferred;
    const k = d.count++;
    if (k === d.counters.length) d.grow();
    d.datagrams[k] = data;
    d.entries[k] = entry;
    d.sources[k] = source;
    d.counters[k] = counter;
    d.arrivals[k] = now;
    return DEFERRED;
  }

  /** Data messages queued by handleDatagramDeferred, not opened yet. */
  get deferredCount(): number {
    return this.deferred.count;
  }

  /**
   * Opens what handleDatagramDeferred queued: `deliver` gets each authenticated datagram (a view
   * of the message decrypted in place, or of the endpoint's memory with transientDatagrams: valid
   * only until `deliver` returns, the memory is reused), in
   * arrival order. Messages whose keys were retired meanwhile are dropped as unknown; a replay
   * within the batch as a duplicate.
   */
  openDeferred(deliver: DeferredDelivery): void {
    const d = this.deferred;
    const n = d.count;
    let start = 0;
    while (start < n) {
      // A run: consecutive messages under the same keys in the same buffer.
      const entry = d.entries[start]!;
      const kp = entry.keypair!;
      const buffer = d.datagrams[start]!.buffer;
      let end = start + 1;
      while (end < n && d.entries[end]!.keypair === kp && d.datagrams[end]!.buffer === buffer) end++;
      if (this.indices.get(kp.localIndex)?.keypair !== kp) {
        // Retired (and wiped) by a handshake handled after these were queued.
        this.counters.unknownIndex += end - start;
      } else {
        this.openRunOf(kp, entry.peer, start, end, deliver);
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

  private openRunOf(kp: Keypair, p: PeerState, start: number, end: number, deliver: DeferredDelivery): void {
    const whole = new Uint8Array(this.deferred.datagrams[start]!.buffer as ArrayBuffer);
    // Transient datagrams go to the plaintext slab: in pieces that fit it, a new slab between.
    for (let k = start; k < end; ) k = this.openSubRun(kp, p, whole, k, end, deliver);
  }

  /** Opens deferred messages from `start` on (all up to `end`, or as many as the slab holds); returns where it stopped. */
  private openSubRun(kp: Keypair, p: PeerState, whole: Uint8Array, start: number, end: number, deliver: DeferredDelivery): number {
    const d = this.deferred;
    const transient = this.transientDatagrams;
    if (transient && this.plainSlabPos + d.datagrams[start]!.length > this.plainSlab.length) {
      // What the slab held was delivered and is no longer needed (`deliver` copies what it keeps).
      if (this.plainSlab.length === 0) this.plainSlab = Buffer.allocUnsafeSlow(PLAIN_SLAB_BYTES);
      this.plainSlabPos = 0;
    }
    let pos = this.plainSlabPos;
    let count = 0;
    for (let k = start; k < end; k++, count++) {
      const m = d.datagrams[k]!;
      if (transient) {
        if (pos + m.length > this.plainSlab.length) break;
        d.outAts[count] = pos;
        pos = (pos + m.length - DATA_OVERHEAD + 7) & ~7;
      }
      d.ats[count] = m.byteOffset;
      d.lens[count] = m.length;
      d.runCounters[count] = d.counters[k]!;
    }
    this.plainSlabPos = pos;
    const slab = this.plainSlab;
    if (transient) kp.aead.openRun(kp.recvKey, whole, d.ats, d.lens, d.runCounters, count, DATA.headerSize, d.results, slab, d.outAts);
    else kp.aead.openRun(kp.recvKey, whole, d.ats, d.lens, d.runCounters, count, DATA.headerSize, d.results);
    for (let k = 0; k < count; k++) {
      const n = d.results[k]!;
      if (n < 0) {
        this.counters.authFailures++;
        continue;
      }
      const counter = d.runCounters[k]!;
      const verdict = kp.replay.check(counter); // a copy of an earlier message of this batch
      if (verdict !== 'fresh') {
        this.openFailed(verdict);
        continue;
      }
      kp.replay.accept(counter);
      const plaintext = transient
        ? slab.subarray(d.outAts[k]!, d.outAts[k]! + n)
        : d.datagrams[start + k]!.subarray(DATA.payload, DATA.payload + n);
      if (this.opened(p, kp, plaintext, d.sources[start + k]!)) deliver(p.id, plaintext, d.sources[start + k]!, d.arrivals[start + k]!);
    }
    return start + count;
  }

  private readonly deferred = new DeferredOpens();

  private handleInitiation(data: Uint8Array, source: string, now: number): HandleResult {
    if (!this.cookies.mac1Valid(data, INITIATION.mac1)) {
      this.counters.invalidMac1++;
      return DROP['bad-mac1'];
    }
    this.counters.handshakeInitiationsReceived++;
    if (now - this.loadWindowStart >= 1000 || now < this.loadWindowStart) {
      this.loadWindowStart = now;
      this.loadCount = 0;
    }
    this.loadCount++;
    if (this.loadCount > this.limits.handshakesPerSecondBeforeCookies) {
      // Under load: only address-proven sources get Diffie-Hellman work; everyone else gets a
      // stateless cookie reply smaller than what they sent.
      if (!this.cookies.mac2Valid(data, INITIATION.mac2, source, now)) {
        this.counters.cookiesSent++;
        return { kind: 'reply', data: this.cookies.cookieReply(data, source, now) };
      }
      if (!this.rateLimiter.allow(source, now)) {
        this.counters.rateLimited++;
        return DROP['rate-limited'];
      }
    }
    const read = readInitiation(this.local, data, (pub) => this.peers.get(peerIdOf(pub))?.remote ?? null);
    if (!read.ok) {
      this.counters.handshakesFailed++;
      if (read.reason === 'unknown-peer') this.counters.unknownPeers++;
      else if (read.reason === 'cipher-mismatch') this.counters.cipherMismatches++;
      return DROP[read.reason];
    }
    const init = read.value;
    const p = this.peers.get(peerIdOf(init.remotePublicKey))!;
    if (p.latestTimestamp && Buffer.compare(init.timestamp, p.latestTimestamp) <= 0) {
      this.counters.handshakesFailed++;
      this.counters.staleTimestamps++;
      return DROP['stale-timestamp'];
    }
    if (now - p.lastInitiationAcceptedAt < this.limits.minInitiationIntervalMs) {
      this.counters.rateLimited++;
      return DROP['rate-limited'];
    }
    if (!p.next && this.halfOpenCount() >= this.limits.maxHalfOpen) {
      this.counters.halfOpenRejected++;
      return DROP['half-open-limit'];
    }
    const localIndex = this.newIndex();
    const response = Buffer.alloc(RESPONSE.size);
    const keys = writeResponse(init, localIndex, this.random, response);
    if (!keys) {
      this.counters.handshakesFailed++;
      return DROP['handshake-failed'];
    }
    writeMacs(response, RESPONSE.mac1, p.mac1Key, null);
    p.latestTimestamp = init.timestamp;
    p.lastInitiationAcceptedAt = now;
    p.address = source;
    if (p.next) this.retire(p.next);
    p.next = new Keypair(this.aead, keys.sendKey, keys.recvKey, localIndex, init.remoteIndex, now, false);
    this.indices.set(localIndex, { peer: p, keypair: p.next });
    this.counters.handshakeResponsesSent++;
    return { kind: 'reply', data: response };
  }

  private handleResponse(data: Uint8Array, source: string, now: number): HandleResult {
    if (!this.cookies.mac1Valid(data, RESPONSE.mac1)) {
      this.counters.invalidMac1++;
      return DROP['bad-mac1'];
    }
    const localIndex = readU32(data, RESPONSE.receiverIndex);
    const entry = this.indices.get(localIndex);
    const p = entry?.peer;
    if (!entry || entry.keypair || !p?.pending || p.pending.localIndex !== localIndex) {
      this.counters.unknownIndex++;
      return DROP['unknown-index'];
    }
    const keys = readResponse(this.local, p.remote, p.pending.handshake, data);
    if (!keys) {
      this.counters.handshakesFailed++;
      return DROP['handshake-failed'];
    }
    const kp = new Keypair(this.aead, keys.sendKey, keys.recvKey, localIndex, readU32(data, RESPONSE.senderIndex), now, true);
    p.pending = null;
    this.indices.set(localIndex, { peer: p, keypair: kp });
    p.address = source;
    const rekey = p.current !== null || p.previous !== null;
    // Slot rotation as WireGuard's noise_keypairs: a responder keypair still waiting for
    // confirmation is superseded by ours but kept for decryption as `previous`.
    if (p.next) {
      if (p.previous) this.retire(p.previous);
      p.previous = p.next;
      p.next = null;
      if (p.current) this.retire(p.current);
    } else {
      if (p.previous) this.retire(p.previous);
      p.previous = p.current;
    }
    p.current = kp;
    this.counters.handshakesCompleted++;
    this.events.push({ type: 'established', peer: p.id, address: source, rekey });
    // Key confirmation for the responder, which may not send until it hears from us.
    this.transmits.push({ peer: p.id, address: source, data: sealData(kp, EMPTY) });
    this.counters.packetsSealed++;
    return HANDLED;
  }

  private handleCookieReply(data: Uint8Array, now: number): HandleResult {
    const localIndex = readU32(data, COOKIE_REPLY.receiverIndex);
    const entry = this.indices.get(localIndex);
    const p = entry?.peer;
    if (!entry || entry.keypair || !p?.pending || p.pending.localIndex !== localIndex) {
      this.counters.unknownIndex++;
      return DROP['unknown-index'];
    }
    const cookie = openCookieReply(p.cookieKey, data, p.pending.mac1);
    if (!cookie) {
      this.counters.authFailures++;
      return DROP['auth-failed'];
    }
    this.counters.cookiesReceived++;
    p.cookie = cookie;
    p.cookieReceivedAt = now;
    // Resend at once with mac2 rather than waiting rekeyTimeoutMs; once per attempt so that a
    // responder that keeps answering with cookies cannot make us loop.
    if (!p.cookieResentInAttempt && p.address !== null) {
      p.cookieResentInAttempt = true;
      this.transmits.push({ peer: p.id, address: p.address, data: this.sendInitiation(p, now) });
    }
    return HANDLED;
  }

  // ---- internals --------------------------------------------------------------------------

  private requirePeer(peer: PeerId): PeerState {
    const p = this.peers.get(peer);
    if (!p) throw new Error(`unknown peer ${peer}`);
    return p;
  }

  private rekeyAge(kp: Keypair): number {
    return kp.isInitiator ? this.limits.rekeyAfterMs : this.limits.rekeyAfterMs + this.limits.responderRekeyDelayMs;
  }

  private startRekey(p: PeerState, now: number): void {
    if (p.pending || p.address === null) return;
    // A handshake the peer initiated is awaiting its confirmation: starting our own would race it.
    if (p.next && now - p.next.createdAt < this.limits.rekeyTimeoutMs) return;
    p.attemptStartedAt = now;
    p.cookieResentInAttempt = false;
    this.transmits.push({ peer: p.id, address: p.address, data: this.sendInitiation(p, now) });
  }

  private sendInitiation(p: PeerState, now: number): Buffer {
    if (p.pending) this.dropPending(p);
    const localIndex = this.newIndex();
    const out = Buffer.alloc(INITIATION.size);
    const handshake = writeInitiation(this.local, p.remote, localIndex, this.nextTimestamp(p), this.random, out);
    // The peer key passed the low-order check at construction and our ephemeral is fresh, so DH cannot fail.
    if (!handshake) throw new Error('X25519 failed for a validated peer key');
    const cookieFresh = p.cookie && now - p.cookieReceivedAt < this.limits.cookieSecretLifetimeMs - this.limits.rekeyTimeoutMs;
    writeMacs(out, INITIATION.mac1, p.mac1Key, cookieFresh ? p.cookie : null);
    const jitter = this.randomUint32() % (this.limits.retransmitJitterMs + 1);
    p.pending = {
      localIndex,
      handshake,
      mac1: Buffer.from(out.subarray(INITIATION.mac1, INITIATION.mac2)),
      sentAt: now,
      retransmitAt: now + this.limits.rekeyTimeoutMs + jitter,
    };
    this.indices.set(localIndex, { peer: p, keypair: null });
    this.counters.handshakeInitiationsSent++;
    return out;
  }

  private dropPending(p: PeerState): void {
    if (!p.pending) return;
    this.indices.delete(p.pending.localIndex);
    p.pending = null;
  }

  /** Responder: the initiator's first data message proves it derived the same keys. */
  private confirmNext(p: PeerState, address: string): void {
    const rekey = p.current !== null || p.previous !== null;
    if (p.previous) this.retire(p.previous);
    p.previous = p.current;
    p.current = p.next;
    p.next = null;
    this.counters.handshakesCompleted++;
    this.events.push({ type: 'established', peer: p.id, address, rekey });
  }

  private retire(kp: Keypair): null {
    const entry = this.indices.get(kp.localIndex);
    if (entry?.keypair === kp) this.indices.delete(kp.localIndex);
    kp.wipe();
    return null;
  }

  private halfOpenCount(): number {
    let n = 0;
    for (const p of this.peers.values()) {
      if (p.pending) n++;
      if (p.next) n++;
    }
    return n;
  }

  private newIndex(): number {
    for (;;) {
      const index = this.randomUint32();
      if (!this.indices.has(index)) return index;
    }
  }

  private randomUint32(): number {
    this.random(this.indexScratch);
    return readU32(this.indexScratch, 0);
  }

  /** TAI64N from the wall clock, forced strictly increasing so back-to-back initiations are not stale. */
  private nextTimestamp(p: PeerState): Buffer {
    const ts = Buffer.alloc(TIMESTAMP_LEN);
    tai64n(ts, this.wallClockMs());
    if (Buffer.compare(ts, p.lastTimestampSent) <= 0) {
      p.lastTimestampSent.copy(ts);
      for (let i = TIMESTAMP_LEN - 1; i >= 0; i--) {
        ts[i] = (ts[i]! + 1) & 0xff;
        if (ts[i] !== 0) break;
      }
    }
    ts.copy(p.lastTimestampSent);
    return ts;
  }
}
