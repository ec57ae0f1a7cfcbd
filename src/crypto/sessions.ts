// The handshake and session lifecycle (WireGuard's noise-protocol.go and timers.go): peers, the
// index table, Noise IK initiations and responses, cookie replies under load, keypair slot
// rotation, rekeying, retransmission and expiry. The data plane (send.ts, receive.ts) reads the
// keys from here and calls back for what a packet triggers (a rekey, a responder's confirmation).
//
// Invariants: a handshake message that fails its checks changes no peer state; before a source
// proves its address (cookie round trip) it creates no per-source state; nothing throws on
// network input. Nothing of a handled datagram is kept (what is kept is decrypted into new memory).
import type { KeyObject } from 'node:crypto';
import type { PacketAead, PacketCipher } from './aead.ts';
import { CookieChecker, openCookieReply, writeMacs } from './cookie.ts';
import {
  initialHashFor,
  NOISE_SUITES,
  readInitiation,
  readResponse,
  writeInitiation,
  writeResponse,
  type LocalIdentity,
} from './handshake.ts';
import { keyPairFromPrivate, type StaticKeyPair } from './keys.ts';
import type { ProtectionLimits } from './limits.ts';
import { newPeerState, peerIdOf, type IndexEntry, type PeerId, type PeerState, type SecurePeerConfig } from './peer.ts';
import { tai64n, TIMESTAMP_LEN, x25519PrivateKeyObject, type RandomFill } from './primitives.ts';
import { HandshakeRateLimiter } from './rate-limiter.ts';
import { DROP, HANDLED, type HandleResult, type SecureEndpointStats, type SecureEvent, type SecureTransmit } from './results.ts';
import { Keypair, sealData } from './keypair.ts';
import { COOKIE_REPLY, INITIATION, readU32, RESPONSE } from './wire.ts';

const EMPTY = new Uint8Array(0);

export interface SessionsOptions {
  staticKey: StaticKeyPair;
  random: RandomFill;
  wallClockMs: () => number;
  limits: ProtectionLimits;
  cipher: PacketCipher;
  aead: PacketAead;
}

export class Sessions {
  readonly publicKey: Uint8Array;
  readonly limits: ProtectionLimits;
  readonly aead: PacketAead;
  readonly peers = new Map<PeerId, PeerState>();
  /** Local index -> keypair or pending initiation: how a received message finds its state. */
  readonly indices = new Map<number, IndexEntry>();
  readonly counters: SecureEndpointStats;
  readonly transmits: SecureTransmit[] = [];
  readonly events: SecureEvent[] = [];
  readonly rateLimiter: HandshakeRateLimiter;
  readonly #local: LocalIdentity;
  readonly #random: RandomFill;
  readonly #wallClockMs: () => number;
  readonly #cookies: CookieChecker;
  readonly #indexScratch = new Uint8Array(4);
  #loadWindowStart = -Infinity;
  #loadCount = 0;

  constructor(opts: SessionsOptions, counters: SecureEndpointStats) {
    this.limits = opts.limits;
    this.aead = opts.aead;
    this.counters = counters;
    this.#random = opts.random;
    this.#wallClockMs = opts.wallClockMs;
    const suite = NOISE_SUITES[opts.cipher];
    const otherSuite = NOISE_SUITES[opts.cipher === 'aes-256-gcm' ? 'chacha20-poly1305' : 'aes-256-gcm'];
    const pair = keyPairFromPrivate(opts.staticKey.privateKey); // the public half is derived, not trusted
    const privateKey: KeyObject = x25519PrivateKeyObject(pair.privateKey);
    this.publicKey = pair.publicKey;
    const publicKey = Buffer.from(pair.publicKey);
    this.#local = {
      privateKey,
      publicKey,
      suite,
      initialHash: initialHashFor(suite, publicKey),
      otherSuite: { suite: otherSuite, initialHash: initialHashFor(otherSuite, publicKey) },
    };
    this.#cookies = new CookieChecker(publicKey, this.#random, this.limits.cookieSecretLifetimeMs);
    this.rateLimiter = new HandshakeRateLimiter({
      maxEntries: this.limits.rateLimiterEntries,
      perSecond: this.limits.sourceHandshakesPerSecond,
      burst: this.limits.sourceHandshakeBurst,
    });
  }

  // ---- peers ---------------------------------------------------------------------------------

  addPeer(cfg: SecurePeerConfig): void {
    const p = newPeerState(this.#local, cfg);
    if (this.peers.has(p.id)) throw new Error(`peer ${p.id} listed twice`);
    this.peers.set(p.id, p);
  }

  removePeer(id: PeerId): void {
    const p = this.peers.get(id);
    if (!p) return;
    for (const [index, entry] of this.indices) if (entry.peer === p) this.indices.delete(index);
    this.peers.delete(id);
  }

  requirePeer(peer: PeerId): PeerState {
    const p = this.peers.get(peer);
    if (!p) throw new Error(`unknown peer ${peer}`);
    return p;
  }

  connect(peer: PeerId, address: string, now: number): Uint8Array {
    const p = this.requirePeer(peer);
    p.address = address;
    p.attemptStartedAt = now;
    p.cookieResentInAttempt = false;
    return this.#sendInitiation(p, now);
  }

  // ---- handshake messages (lengths checked by the caller) -------------------------------------

  handleInitiation(data: Uint8Array, source: string, now: number): HandleResult {
    if (!this.#cookies.mac1Valid(data, INITIATION.mac1)) {
      this.counters.invalidMac1++;
      return DROP['bad-mac1'];
    }
    this.counters.handshakeInitiationsReceived++;
    if (now - this.#loadWindowStart >= 1000 || now < this.#loadWindowStart) {
      this.#loadWindowStart = now;
      this.#loadCount = 0;
    }
    this.#loadCount++;
    if (this.#loadCount > this.limits.handshakesPerSecondBeforeCookies) {
      // Under load: only address-proven sources get Diffie-Hellman work; everyone else gets a
      // stateless cookie reply smaller than what they sent.
      if (!this.#cookies.mac2Valid(data, INITIATION.mac2, source, now)) {
        this.counters.cookiesSent++;
        return { kind: 'reply', data: this.#cookies.cookieReply(data, source, now) };
      }
      if (!this.rateLimiter.allow(source, now)) {
        this.counters.rateLimited++;
        return DROP['rate-limited'];
      }
    }
    const read = readInitiation(this.#local, data, (pub) => this.peers.get(peerIdOf(pub))?.remote ?? null);
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
    const localIndex = this.#newIndex();
    const response = Buffer.alloc(RESPONSE.size);
    const keys = writeResponse(init, localIndex, this.#random, response);
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

  // The peer whose initiation in progress used `localIndex` (a response or a cookie reply
  // answers it), or null, counted as an unknown index.
  #awaitingAnswer(localIndex: number): { peer: PeerState; pending: NonNullable<PeerState['pending']> } | null {
    const entry = this.indices.get(localIndex);
    const peer = entry?.peer;
    const pending = peer?.pending;
    if (!entry || entry.keypair || !peer || !pending || pending.localIndex !== localIndex) {
      this.counters.unknownIndex++;
      return null;
    }
    return { peer, pending };
  }

  handleResponse(data: Uint8Array, source: string, now: number): HandleResult {
    if (!this.#cookies.mac1Valid(data, RESPONSE.mac1)) {
      this.counters.invalidMac1++;
      return DROP['bad-mac1'];
    }
    const localIndex = readU32(data, RESPONSE.receiverIndex);
    const found = this.#awaitingAnswer(localIndex);
    if (found === null) return DROP['unknown-index'];
    const { peer: p, pending } = found;
    const keys = readResponse(this.#local, p.remote, pending.handshake, data);
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

  handleCookieReply(data: Uint8Array, now: number): HandleResult {
    const found = this.#awaitingAnswer(readU32(data, COOKIE_REPLY.receiverIndex));
    if (found === null) return DROP['unknown-index'];
    const { peer: p, pending } = found;
    const cookie = openCookieReply(p.cookieKey, data, pending.mac1);
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
      this.transmits.push({ peer: p.id, address: p.address, data: this.#sendInitiation(p, now) });
    }
    return HANDLED;
  }

  // ---- what the data plane triggers ----------------------------------------------------------

  /** The age at which `kp`'s side rekeys (the responder waits longer, so both rarely start at once). */
  rekeyAge(kp: Keypair): number {
    return kp.isInitiator ? this.limits.rekeyAfterMs : this.limits.rekeyAfterMs + this.limits.responderRekeyDelayMs;
  }

  /** Queues an initiation to `p` unless one is under way (or the peer's address is unknown). */
  startRekey(p: PeerState, now: number): void {
    if (p.pending || p.address === null) return;
    // A handshake the peer initiated is awaiting its confirmation: starting our own would race it.
    if (p.next && now - p.next.createdAt < this.limits.rekeyTimeoutMs) return;
    p.attemptStartedAt = now;
    p.cookieResentInAttempt = false;
    this.transmits.push({ peer: p.id, address: p.address, data: this.#sendInitiation(p, now) });
  }

  /** Responder: the initiator's first data message proves it derived the same keys. */
  confirmNext(p: PeerState, address: string): void {
    const rekey = p.current !== null || p.previous !== null;
    if (p.previous) this.retire(p.previous);
    p.previous = p.current;
    p.current = p.next;
    p.next = null;
    this.counters.handshakesCompleted++;
    this.events.push({ type: 'established', peer: p.id, address, rekey });
  }

  /** Removes `kp` from the index table and wipes its keys. */
  retire(kp: Keypair): null {
    const entry = this.indices.get(kp.localIndex);
    if (entry?.keypair === kp) this.indices.delete(kp.localIndex);
    kp.wipe();
    return null;
  }

  halfOpenCount(): number {
    let n = 0;
    for (const p of this.peers.values()) {
      if (p.pending) n++;
      if (p.next) n++;
    }
    return n;
  }

  // ---- timers --------------------------------------------------------------------------------

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
          this.#dropPending(p);
          this.counters.handshakeTimeouts++;
          this.events.push({ type: 'handshake-failed', peer: p.id });
        } else if (p.address !== null) {
          this.transmits.push({ peer: p.id, address: p.address, data: this.#sendInitiation(p, now) });
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

  /** Everything an authenticated packet could change, as a string (tests). Not for the packet path. */
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

  // ---- internals -----------------------------------------------------------------------------

  #sendInitiation(p: PeerState, now: number): Buffer {
    if (p.pending) this.#dropPending(p);
    const localIndex = this.#newIndex();
    const out = Buffer.alloc(INITIATION.size);
    const handshake = writeInitiation(this.#local, p.remote, localIndex, this.#nextTimestamp(p), this.#random, out);
    // The peer key passed the low-order check at construction and our ephemeral is fresh, so DH cannot fail.
    if (!handshake) throw new Error('X25519 failed for a validated peer key');
    const cookieFresh = p.cookie && now - p.cookieReceivedAt < this.limits.cookieSecretLifetimeMs - this.limits.rekeyTimeoutMs;
    writeMacs(out, INITIATION.mac1, p.mac1Key, cookieFresh ? p.cookie : null);
    const jitter = this.#randomUint32() % (this.limits.retransmitJitterMs + 1);
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

  #dropPending(p: PeerState): void {
    if (!p.pending) return;
    this.indices.delete(p.pending.localIndex);
    p.pending = null;
  }

  #newIndex(): number {
    for (;;) {
      const index = this.#randomUint32();
      if (!this.indices.has(index)) return index;
    }
  }

  #randomUint32(): number {
    this.#random(this.#indexScratch);
    return readU32(this.#indexScratch, 0);
  }

  /** TAI64N from the wall clock, forced strictly increasing so back-to-back initiations are not stale. */
  #nextTimestamp(p: PeerState): Buffer {
    const ts = Buffer.alloc(TIMESTAMP_LEN);
    tai64n(ts, this.#wallClockMs());
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
