// A configured peer's state: its identity and keys for the handshake, its address, and its three
// keypair slots (as WireGuard's noise_keypairs: current, previous, next) plus our pending initiation.
import { cookieKeyFor, mac1KeyFor } from './cookie.ts';
import { initialHashFor, ZERO_PSK, type InitiatorHandshake, type LocalIdentity, type RemoteIdentity } from './handshake.ts';
import { dh, KEY_LEN, TIMESTAMP_LEN, x25519PublicKeyObject } from './primitives.ts';
import type { Keypair } from './keypair.ts';

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

export interface PendingInitiation {
  localIndex: number;
  handshake: InitiatorHandshake;
  mac1: Buffer;
  sentAt: number;
  retransmitAt: number;
}

export interface PeerState {
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

/** What a local index names: a peer's keypair, or (keypair null) our pending initiation to it. */
export type IndexEntry = { peer: PeerState; keypair: Keypair | null };

/** A peer's initial state. Throws on a bad key (a caller bug: configs are validated at load). */
export function newPeerState(local: LocalIdentity, cfg: SecurePeerConfig): PeerState {
  if (cfg.publicKey.length !== KEY_LEN) throw new Error('peer public key must be 32 bytes');
  if (cfg.psk && cfg.psk.length !== KEY_LEN) throw new Error('pre-shared key must be 32 bytes');
  const id = peerIdOf(cfg.publicKey);
  const publicKey = Buffer.from(cfg.publicKey);
  const publicKeyObject = x25519PublicKeyObject(publicKey);
  const staticShared = dh(local.privateKey, publicKeyObject);
  if (!staticShared) throw new Error(`peer public key ${id} is a low-order point`);
  return {
    id,
    remote: {
      publicKey,
      publicKeyObject,
      psk: cfg.psk ? Buffer.from(cfg.psk) : ZERO_PSK,
      staticShared,
      initialHash: initialHashFor(local.suite, publicKey),
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
  };
}
