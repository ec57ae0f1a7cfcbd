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
//   on a receive batch, per datagram (bytes, from):
//     const r = ep.handleDatagram(bytes, from, now);
//     r.kind === 'reply'   -> udp.send(r.data, from)         (handshake response or cookie reply)
//     r.kind === 'handled' -> nothing (a handshake step; r === DEFERRED: a data message, queued)
//     r.kind === 'dropped' -> nothing                        (r.reason says why; already counted)
//   at the end of the batch: ep.openDeferred((peer, plaintext, from, arrival) => transport of peer:
//                   conn.handleDatagram(plaintext, now))     (plaintext valid during the call only)
//   on timer:       ep.handleTimeout(now)
//   after any call: while ((t = ep.pollTransmit())) udp.send(t.data, t.address);
//                   while ((e = ep.pollEvent())) ...  'established' -> create/keep the transport
//                   Connection for e.peer (server role on the responder); 'handshake-failed'
//                   arm a timer at ep.nextTimeout() (null = none)
//   sending: the transport writes a batch of datagrams behind HEADER_ROOM bytes each, then
//                   if (ep.sealRun(peer, buf, lens, 0, count, 0, now)) udp.sendBatch(buf, ...)
//                   (false: no session yet; a handshake is under way and the transport's
//                   retransmission covers the loss; readyToSeal asks before writing the batch);
//                   one datagram off the hot path: const d = ep.seal(peer, packet, now).
//                   Sealing may queue a rekey initiation: drain pollTransmit after it too (cheap
//                   when empty). Time-based rekeys also start from handleTimeout, so a driver that
//                   drains only after timers and datagrams is late, never stuck.
//   transport packet size: maxPacketSize = path MTU payload - SecureEndpoint.OVERHEAD (32 bytes).
//
// The work is split as in wireguard-go: sessions.ts (handshakes, keypair slots, timers), send.ts
// (sealing, with its buffer-ownership rule) and receive.ts (opening, with its rule).
//
// Invariants: a datagram that fails authentication is dropped and counted and changes no
// association state; before a source proves its address (cookie round trip) it creates no
// per-source state; nothing here throws on network input.
import { DEFAULT_PACKET_CIPHER, type PacketAead, type PacketCipher } from './aead.ts';
import { defaultPacketAead } from './aead-backend.ts';
import type { StaticKeyPair } from './keys.ts';
import { DEFAULT_LIMITS, type ProtectionLimits } from './limits.ts';
import type { PeerId, SecurePeerConfig } from './peer.ts';
import { systemRandom, type RandomFill } from './primitives.ts';
import { type DeferredDelivery, Receiver } from './receive.ts';
import { DROP, type HandleResult, type SecureEndpointStats, type SecureEvent, type SecureTransmit, zeroStats } from './results.ts';
import { readyToSeal, seal, sealRun } from './send.ts';
import { Sessions } from './sessions.ts';
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
  RESPONSE,
} from './wire.ts';

export { DEFAULT_LIMITS, type ProtectionLimits } from './limits.ts';
export { peerIdOf, type PeerId, type SecurePeerConfig } from './peer.ts';
export type { DeferredDelivery } from './receive.ts';
export {
  DEFERRED,
  type DropReason,
  type HandleResult,
  type SecureEndpointStats,
  type SecureEvent,
  type SecureTransmit,
} from './results.ts';

export interface SecureEndpointOptions {
  staticKey: StaticKeyPair;
  peers: SecurePeerConfig[];
  /** Fills buffers with random bytes (ephemeral keys, indices, cookie secret). Default: CSPRNG. */
  random?: RandomFill;
  /** Wall-clock ms for the TAI64N timestamp in initiations (must survive restarts). Default Date.now. */
  wallClockMs?: () => number;
  limits?: Partial<ProtectionLimits>;
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

export class SecureEndpoint {
  /** Bytes added to every transport datagram (16-byte header + 16-byte tag). */
  static readonly OVERHEAD = DATA_OVERHEAD;
  /** Where a transport datagram starts in a data message (sealRun's header room); the tag follows it. */
  static readonly HEADER_ROOM = DATA.headerSize;
  readonly overhead = DATA_OVERHEAD;
  readonly publicKey: Uint8Array;
  readonly cipher: PacketCipher;
  readonly #counters = zeroStats();
  readonly #aead: PacketAead;
  readonly #sessions: Sessions;
  readonly #receiver: Receiver;

  constructor(opts: SecureEndpointOptions) {
    this.cipher = opts.cipher ?? opts.aead?.cipher ?? DEFAULT_PACKET_CIPHER;
    this.#aead = opts.aead ?? defaultPacketAead(this.cipher);
    if (this.#aead.cipher !== this.cipher) throw new Error(`aead backend is ${this.#aead.cipher}, cipher is ${this.cipher}`);
    this.#sessions = new Sessions(
      {
        staticKey: opts.staticKey,
        random: opts.random ?? systemRandom,
        wallClockMs: opts.wallClockMs ?? Date.now,
        limits: { ...DEFAULT_LIMITS, ...opts.limits },
        cipher: this.cipher,
        aead: this.#aead,
      },
      this.#counters,
    );
    this.publicKey = this.#sessions.publicKey;
    this.#receiver = new Receiver(this.#sessions);
    for (const cfg of opts.peers) this.addPeer(cfg);
  }

  /**
   * Removes a peer (a gateway reload dropped it or changed its key): its sessions and handshake
   * state go, so nothing sealed under them is accepted any more. Unknown ids are ignored.
   */
  removePeer(id: PeerId): void {
    this.#sessions.removePeer(id);
  }

  /** Adds a peer (at construction, or a gateway reload added one). Throws on a bad key (a caller bug: keys are validated at load). */
  addPeer(cfg: SecurePeerConfig): void {
    this.#sessions.addPeer(cfg);
  }

  // ---- application side -------------------------------------------------------------------

  /**
   * Starts a handshake with `peer` at `address` and returns the initiation datagram to send there.
   * Retransmissions come out of pollTransmit(). Throws for a peer not in the configuration (a bug).
   */
  connect(peer: PeerId, address: string, now: number): Uint8Array {
    return this.#sessions.connect(peer, address, now);
  }

  /**
   * Protects one transport datagram for `peer` into a new buffer. Returns null when there is no
   * usable session (never established, expired, or awaiting a handshake this call may have started).
   */
  seal(peer: PeerId, plaintext: Uint8Array, now: number): Uint8Array | null {
    return seal(this.#sessions, peer, plaintext, now);
  }

  /**
   * True when packets to `peer` can be sealed now; otherwise false, and a handshake is started if
   * none is under way. A sender that defers sealing (sealRun) asks this when it writes a packet.
   */
  readyToSeal(peer: PeerId, now: number): boolean {
    return readyToSeal(this.#sessions, peer, now);
  }

  /**
   * Seals a send queue's run in place: `count` packets back to back in buf from byte `at`,
   * packet i being lens[from + i] bytes (HEADER_ROOM bytes of header room, the transport
   * datagram, then room for the tag: OVERHEAD bytes in all), in one AEAD call. False when there
   * is no usable session: the caller drops the run. Buffer ownership: send.ts.
   */
  sealRun(peer: PeerId, buf: Uint8Array, lens: Int32Array, from: number, count: number, at: number, now: number): boolean {
    return sealRun(this.#sessions, peer, buf, lens, from, count, at, now);
  }

  /** Last authenticated address of `peer` (or the one given to connect), null if never seen. */
  peerAddress(peer: PeerId): string | null {
    return this.#sessions.requirePeer(peer).address;
  }

  /** True when seal() can send to `peer` now. */
  isEstablished(peer: PeerId): boolean {
    return this.#sessions.requirePeer(peer).current !== null;
  }

  pollTransmit(): SecureTransmit | null {
    return this.#sessions.transmits.shift() ?? null;
  }

  pollEvent(): SecureEvent | null {
    return this.#sessions.events.shift() ?? null;
  }

  nextTimeout(): number | null {
    return this.#sessions.nextTimeout();
  }

  handleTimeout(now: number): void {
    this.#sessions.handleTimeout(now);
  }

  stats(): SecureEndpointStats {
    let sessions = 0;
    for (const p of this.#sessions.peers.values()) if (p.current) sessions++;
    return {
      ...this.#counters,
      sessions,
      halfOpen: this.#sessions.halfOpenCount(),
      rateLimiterEntries: this.#sessions.rateLimiter.size,
      aeadBackend: this.#aead.name,
      cipher: this.cipher,
    };
  }

  /**
   * Everything an authenticated packet could change, as a string: tests assert that
   * unauthenticated input leaves it untouched. Not for the packet path.
   */
  debugSnapshot(): string {
    return this.#sessions.debugSnapshot();
  }

  // ---- network side -----------------------------------------------------------------------

  /**
   * Handles one received UDP payload from `source` (an address string, e.g. "198.18.1.1:4500").
   * A data message that passes the checks needing no decryption is queued (DEFERRED returned) for
   * openDeferred; handshake messages are handled at once. Buffer ownership: receive.ts.
   */
  handleDatagram(data: Uint8Array, source: string, now: number): HandleResult {
    switch (messageType(data)) {
      case MSG_DATA:
        return data.length >= DATA_OVERHEAD ? this.#receiver.queue(data, source, now) : this.#malformed();
      case MSG_INITIATION:
        return data.length === INITIATION.size ? this.#sessions.handleInitiation(data, source, now) : this.#malformed();
      case MSG_RESPONSE:
        return data.length === RESPONSE.size ? this.#sessions.handleResponse(data, source, now) : this.#malformed();
      case MSG_COOKIE_REPLY:
        return data.length === COOKIE_REPLY.size ? this.#sessions.handleCookieReply(data, now) : this.#malformed();
      default:
        return this.#malformed();
    }
  }

  /** Data messages queued by handleDatagram, not opened yet. */
  get deferredCount(): number {
    return this.#receiver.count;
  }

  /**
   * Opens what handleDatagram queued, a run per key in one AEAD call: `deliver` gets each
   * authenticated datagram in arrival order (a view of the endpoint's memory, valid only until
   * `deliver` returns). Messages whose keys were retired meanwhile are dropped as unknown; a
   * replay within the batch as a duplicate.
   */
  openDeferred(deliver: DeferredDelivery): void {
    this.#receiver.openAll(deliver);
  }

  #malformed(): HandleResult {
    this.#counters.malformed++;
    return DROP.malformed;
  }
}
