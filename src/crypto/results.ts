// What a SecureEndpoint reports: the result of handling a datagram, events, handshake transmits,
// and the one statistics object every module counts into where things happen.
import { DEFAULT_PACKET_CIPHER, type PacketCipher } from './aead.ts';
import type { PeerId } from './peer.ts';

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
  /** Send `data` back to the source address of the datagram just handled. */
  | { kind: 'reply'; data: Uint8Array }
  /** Consumed (a handshake step, or a data message queued for openDeferred); check pollTransmit/pollEvent. */
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

export function zeroStats(): SecureEndpointStats {
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

// Shared, frozen results: the packet path returns them without allocating.
export const HANDLED: HandleResult = Object.freeze({ kind: 'handled' });

/** A data message queued by handleDatagram: its fate is decided in openDeferred. */
export const DEFERRED: HandleResult = Object.freeze({ kind: 'handled' });

export const DROP = {} as Record<DropReason, HandleResult>;
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
