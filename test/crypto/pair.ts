// In-memory harness: two SecureEndpoints ("a" initiates, "b" responds) on a virtual clock with a
// deterministic random source, joined by a loss-free queue that delivers replies and transmits.
import type { PacketAead, PacketCipher } from '../../src/crypto/aead.ts';
import { keyPairFromPrivate, type StaticKeyPair } from '../../src/crypto/keys.ts';
import type { RandomFill } from '../../src/crypto/primitives.ts';
import {
  DEFERRED,
  peerIdOf,
  SecureEndpoint,
  type HandleResult,
  type PeerId,
  type ProtectionLimits,
  type SecureEvent,
  type SecureTransmit,
} from '../../src/crypto/secure-endpoint.ts';

/** xorshift32 byte stream: reproducible, not secure (tests only). */
export function seededRandom(seed: number): RandomFill {
  let s = seed >>> 0 || 1;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
  };
}

export function seededKeyPair(seed: number): StaticKeyPair {
  const raw = new Uint8Array(32);
  seededRandom(seed)(raw);
  return keyPairFromPrivate(raw);
}

/** A datagram's fate as the tests see it: what handleDatagram returned, or for a data message what opening it did. */
export type Received = HandleResult | { kind: 'data'; peer: PeerId; plaintext: Uint8Array };

/**
 * handleDatagram, and for a queued data message openDeferred at once (a receive batch of one):
 * its plaintext (copied: the endpoint reuses its memory), or the drop its counters record.
 */
export function handle(ep: SecureEndpoint, data: Uint8Array, source: string, now: number): Received {
  const r = ep.handleDatagram(data, source, now);
  if (r !== DEFERRED) return r;
  const before = ep.stats();
  let opened: Received = { kind: 'handled' }; // a keepalive, unless a datagram is delivered
  ep.openDeferred((peer, plaintext) => {
    opened = { kind: 'data', peer, plaintext: Uint8Array.from(plaintext) };
  });
  const after = ep.stats();
  if (after.authFailures > before.authFailures) return { kind: 'dropped', reason: 'auth-failed' };
  if (after.replays > before.replays) return { kind: 'dropped', reason: 'duplicate' };
  if (after.unknownIndex > before.unknownIndex) return { kind: 'dropped', reason: 'unknown-index' };
  return opened;
}

export const ADDR_A = '198.18.1.2:4500';
export const ADDR_B = '198.18.2.2:4500';

export interface Side {
  ep: SecureEndpoint;
  key: StaticKeyPair;
  address: string;
  peer: PeerId; // the other side's id
  received: Uint8Array[];
  events: SecureEvent[];
  results: Received[];
}

export interface PairOptions {
  seed?: number;
  pskA?: Uint8Array; // psk configured at a for b
  pskB?: Uint8Array; // psk configured at b for a
  limits?: Partial<ProtectionLimits>;
  /** Keys b accepts (default: a's). */
  bAllows?: Uint8Array[];
  /** Key a believes b has (default: b's). */
  aExpects?: Uint8Array;
  /** Cipher of both sides (default: the endpoint's default), or of each side (cipher mismatch tests). */
  cipher?: PacketCipher;
  cipherA?: PacketCipher;
  cipherB?: PacketCipher;
  /** Per-packet AEAD backend of each side (default: the process's choice for the cipher). */
  aeadA?: PacketAead;
  aeadB?: PacketAead;
}

export class Pair {
  now = 1_000;
  wallMs = 1_800_000_000_000;
  readonly a: Side;
  readonly b: Side;

  constructor(opts: PairOptions = {}) {
    const seed = opts.seed ?? 1;
    const keyA = seededKeyPair(seed * 7 + 1);
    const keyB = seededKeyPair(seed * 7 + 2);
    const wall = () => this.wallMs;
    const bPublic = opts.aExpects ?? keyB.publicKey;
    const epA = new SecureEndpoint({
      staticKey: keyA,
      peers: [{ publicKey: bPublic, ...(opts.pskA ? { psk: opts.pskA } : {}) }],
      random: seededRandom(seed * 7 + 3),
      wallClockMs: wall,
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.aeadA ? { aead: opts.aeadA } : {}),
      ...((opts.cipherA ?? opts.cipher) ? { cipher: opts.cipherA ?? opts.cipher } : {}),
    });
    const allowed = opts.bAllows ?? [keyA.publicKey];
    const epB = new SecureEndpoint({
      staticKey: keyB,
      peers: allowed.map((publicKey) => ({ publicKey, ...(opts.pskB ? { psk: opts.pskB } : {}) })),
      random: seededRandom(seed * 7 + 4),
      wallClockMs: wall,
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.aeadB ? { aead: opts.aeadB } : {}),
      ...((opts.cipherB ?? opts.cipher) ? { cipher: opts.cipherB ?? opts.cipher } : {}),
    });
    this.a = { ep: epA, key: keyA, address: ADDR_A, peer: peerIdOf(bPublic), received: [], events: [], results: [] };
    this.b = { ep: epB, key: keyB, address: ADDR_B, peer: peerIdOf(keyA.publicKey), received: [], events: [], results: [] };
  }

  other(side: Side): Side {
    return side === this.a ? this.b : this.a;
  }

  /** Delivers `data` from `from` to the other side, then everything that follows, until quiet. */
  send(from: Side, data: Uint8Array): Received {
    const queue: { to: Side; from: Side; data: Uint8Array }[] = [{ to: this.other(from), from, data }];
    let first: Received | null = null;
    while (queue.length > 0) {
      const m = queue.shift()!;
      const r = handle(m.to.ep, m.data, m.from.address, this.now);
      first ??= r;
      m.to.results.push(r);
      if (r.kind === 'data') m.to.received.push(r.plaintext);
      if (r.kind === 'reply') queue.push({ to: m.from, from: m.to, data: r.data });
      for (const side of [this.a, this.b]) {
        for (let t: SecureTransmit | null; (t = side.ep.pollTransmit()); ) queue.push({ to: this.other(side), from: side, data: t.data });
        for (let e: SecureEvent | null; (e = side.ep.pollEvent()); ) side.events.push(e);
      }
    }
    return first!;
  }

  /** a connects to b and the handshake runs to completion (a's key confirmation included). */
  handshake(): void {
    this.send(this.a, this.a.ep.connect(this.a.peer, ADDR_B, this.now));
  }

  /** Seals on `from` and delivers; returns the datagram too. */
  transfer(from: Side, plaintext: Uint8Array): { datagram: Uint8Array | null; result: Received | null } {
    const datagram = from.ep.seal(from.peer, plaintext, this.now);
    return { datagram, result: datagram ? this.send(from, datagram) : null };
  }

  timeout(side: Side): void {
    side.ep.handleTimeout(this.now);
    for (const s of [this.a, this.b]) for (let e: SecureEvent | null; (e = s.ep.pollEvent()); ) s.events.push(e);
    for (let t: SecureTransmit | null; (t = side.ep.pollTransmit()); ) this.send(side, t.data);
  }
}
