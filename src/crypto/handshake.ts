// Noise_IKpsk2_25519_AESGCM_SHA256 (the default) or Noise_IKpsk2_25519_ChaChaPoly_SHA256 (Noise spec
// rev. 34, sections 5 and 9), laid out as WireGuard lays it out (same token order, same message framing, mac fields handled by cookie.ts):
//
//   <- s
//   ...
//   -> e, es, s, ss        initiation; payload = TAI64N timestamp
//   <- e, ee, se, psk      response;   payload = empty
//
// The initiator knows the responder's static key in advance; the responder learns the initiator's
// static key from the first message and accepts it only if it is a configured peer. The cipher is
// part of the protocol name, which seeds h and ck: peers configured with different ciphers derive
// different keys from the first token on, so their handshake fails at the responder.
// These functions are pure over their arguments: the endpoint decides what state to keep.
import type { KeyObject } from 'node:crypto';
import type { PacketCipher } from './aead.ts';
import {
  aeadOpen,
  aeadSeal,
  dh,
  hash,
  HASH_LEN,
  kdf1,
  kdf2,
  kdf3,
  KEY_LEN,
  TAG_LEN,
  TIMESTAMP_LEN,
  x25519PrivateKeyObject,
  x25519PublicFromPrivate,
  x25519PublicKeyObject,
  type RandomFill,
} from './primitives.ts';
import { INITIATION, MSG_INITIATION, MSG_RESPONSE, RESPONSE, readU32, writeU32 } from './wire.ts';

/** Noise prologue: binds the handshake to this protocol and version. */
export const PROLOGUE = 'Longhaul v1 packet protection';

const EMPTY = Buffer.alloc(0);
const ZERO_PSK = Buffer.alloc(KEY_LEN);
const PROLOGUE_BYTES = Buffer.from(PROLOGUE);

/** One Noise protocol: the pattern, DH and hash are fixed; the cipher is configured. */
export interface NoiseSuite {
  cipher: PacketCipher;
  /** The Noise protocol name, e.g. Noise_IKpsk2_25519_AESGCM_SHA256. */
  protocolName: string;
  /** h = ck after InitializeSymmetric(protocol name). */
  initialChainKey: Buffer;
}

/**
 * Noise section 5.2, InitializeSymmetric: a name of at most HASHLEN bytes is zero-padded to HASHLEN,
 * a longer one hashed. The AESGCM name is exactly 32 bytes (used as is), the ChaChaPoly one 36 (hashed).
 */
function initialChainKeyOf(protocolName: string): Buffer {
  const name = Buffer.from(protocolName);
  if (name.length > HASH_LEN) return hash(name);
  const padded = Buffer.alloc(HASH_LEN);
  name.copy(padded);
  return padded;
}

function suite(cipher: PacketCipher, noiseCipherName: string): NoiseSuite {
  const protocolName = `Noise_IKpsk2_25519_${noiseCipherName}_SHA256`;
  return { cipher, protocolName, initialChainKey: initialChainKeyOf(protocolName) };
}

export const NOISE_SUITES: Readonly<Record<PacketCipher, NoiseSuite>> = {
  'aes-256-gcm': suite('aes-256-gcm', 'AESGCM'),
  'chacha20-poly1305': suite('chacha20-poly1305', 'ChaChaPoly'),
};

/** h after the prologue and the pre-message `<- s` for a given responder static key. */
export function initialHashFor(s: NoiseSuite, responderPublic: Uint8Array, prologue: Uint8Array = PROLOGUE_BYTES): Buffer {
  return hash(hash(s.initialChainKey, prologue), responderPublic);
}

export interface LocalIdentity {
  privateKey: KeyObject;
  publicKey: Buffer;
  suite: NoiseSuite;
  /** Our h after `<- s`, used when we are the responder. */
  initialHash: Buffer;
  /**
   * Responder diagnostics: the other cipher's suite and initial hash. An initiation whose static
   * key opens under it (instead of ours) fails with 'cipher-mismatch' rather than
   * 'handshake-failed'. Costs one HKDF and one AEAD open per failing initiation, after the DH.
   */
  otherSuite?: { suite: NoiseSuite; initialHash: Buffer };
}

export interface RemoteIdentity {
  publicKey: Buffer;
  publicKeyObject: KeyObject;
  psk: Buffer;
  /** DH(s, rs) is the same for every handshake with this peer, so it is computed once. */
  staticShared: Buffer;
  /** h after `<- s` when this peer is the responder. */
  initialHash: Buffer;
}

export interface SessionKeys {
  sendKey: Buffer;
  recvKey: Buffer;
  /** Noise handshake hash h (channel binding; checked against the Noise test vectors). */
  handshakeHash: Buffer;
}

/** What an initiator remembers between sending the initiation and reading the response. */
export interface InitiatorHandshake {
  chainKey: Buffer;
  hash: Buffer;
  ephemeralPrivate: KeyObject;
}

function newEphemeral(random: RandomFill): { privateKey: KeyObject; publicKey: Buffer } {
  const raw = Buffer.alloc(KEY_LEN);
  random(raw);
  const privateKey = x25519PrivateKeyObject(raw);
  raw.fill(0);
  return { privateKey, publicKey: x25519PublicFromPrivate(privateKey) };
}

/** -> e, es, s, ss with `payload`: the Noise message bytes (e || enc(s) || enc(payload)). */
export function initiatorMessage(
  local: LocalIdentity,
  remote: RemoteIdentity,
  payload: Uint8Array,
  random: RandomFill,
): { message: Buffer; state: InitiatorHandshake } | null {
  const e = newEphemeral(random);
  const { cipher } = local.suite;
  let h = remote.initialHash;
  let ck: Buffer = local.suite.initialChainKey;
  // e (psk handshakes also MixKey(e), Noise section 9.2)
  h = hash(h, e.publicKey);
  ck = kdf1(ck, e.publicKey);
  // es
  const es = dh(e.privateKey, remote.publicKeyObject);
  if (!es) return null;
  let k: Buffer;
  [ck, k] = kdf2(ck, es);
  // s
  const encryptedStatic = aeadSeal(cipher, k, local.publicKey, h);
  h = hash(h, encryptedStatic);
  // ss
  [ck, k] = kdf2(ck, remote.staticShared);
  const encryptedPayload = aeadSeal(cipher, k, payload, h);
  h = hash(h, encryptedPayload);
  return {
    message: Buffer.concat([e.publicKey, encryptedStatic, encryptedPayload]),
    state: { chainKey: ck, hash: h, ephemeralPrivate: e.privateKey },
  };
}

/** Fills `out` (INITIATION.size bytes) up to the mac fields. null only if DH fails (bad peer key). */
export function writeInitiation(
  local: LocalIdentity,
  remote: RemoteIdentity,
  senderIndex: number,
  timestamp: Uint8Array,
  random: RandomFill,
  out: Buffer,
): InitiatorHandshake | null {
  const m = initiatorMessage(local, remote, timestamp, random);
  if (!m) return null;
  out.fill(0, 0, INITIATION.size);
  out[0] = MSG_INITIATION;
  writeU32(out, INITIATION.senderIndex, senderIndex);
  out.set(m.message, INITIATION.ephemeral);
  return m.state;
}

export interface ConsumedInitiation {
  remote: RemoteIdentity;
  remotePublicKey: Buffer;
  remoteIndex: number;
  remoteEphemeral: KeyObject;
  timestamp: Buffer;
  chainKey: Buffer;
  hash: Buffer;
  suite: NoiseSuite;
}

export type InitiationResult =
  | { ok: true; value: ConsumedInitiation }
  | { ok: false; reason: 'handshake-failed' | 'unknown-peer' | 'cipher-mismatch' };

/** Reads an initiation (mac1 already checked). `lookup` maps the decrypted static key to a configured peer. */
export function readInitiation(
  local: LocalIdentity,
  msg: Uint8Array,
  lookup: (publicKey: Buffer) => RemoteIdentity | null,
): InitiationResult {
  const r = consumeInitiatorMessage(local, msg.subarray(INITIATION.ephemeral, INITIATION.mac1), lookup);
  if (!r.ok) return r;
  if (r.value.timestamp.length !== TIMESTAMP_LEN) return { ok: false, reason: 'handshake-failed' };
  // A 32-bit index, past V8's small integers: the field starts as -0 (packet.ts newHeader says why).
  r.value.remoteIndex = readU32(msg, INITIATION.senderIndex);
  return r;
}

/** Reads the Noise message e || enc(s) || enc(payload); `timestamp` holds the payload. */
export function consumeInitiatorMessage(
  local: LocalIdentity,
  message: Uint8Array,
  lookup: (publicKey: Buffer) => RemoteIdentity | null,
): InitiationResult {
  if (message.length < KEY_LEN + KEY_LEN + TAG_LEN + TAG_LEN) return { ok: false, reason: 'handshake-failed' };
  const ephemeral = Buffer.from(message.subarray(0, KEY_LEN));
  let remoteEphemeral: KeyObject;
  try {
    remoteEphemeral = x25519PublicKeyObject(ephemeral);
  } catch {
    return { ok: false, reason: 'handshake-failed' };
  }
  const { cipher } = local.suite;
  let h = local.initialHash;
  let ck: Buffer = local.suite.initialChainKey;
  h = hash(h, ephemeral);
  ck = kdf1(ck, ephemeral);
  const es = dh(local.privateKey, remoteEphemeral);
  if (!es) return { ok: false, reason: 'handshake-failed' };
  let k: Buffer;
  [ck, k] = kdf2(ck, es);
  const encryptedStatic = message.subarray(KEY_LEN, KEY_LEN + KEY_LEN + TAG_LEN);
  const remotePublicKey = aeadOpen(cipher, k, encryptedStatic, h);
  if (!remotePublicKey) {
    return { ok: false, reason: opensUnderOtherSuite(local, ephemeral, es, encryptedStatic) ? 'cipher-mismatch' : 'handshake-failed' };
  }
  h = hash(h, encryptedStatic);
  const remote = lookup(remotePublicKey);
  if (!remote) return { ok: false, reason: 'unknown-peer' };
  [ck, k] = kdf2(ck, remote.staticShared);
  const encryptedPayload = message.subarray(KEY_LEN + KEY_LEN + TAG_LEN);
  const payload = aeadOpen(cipher, k, encryptedPayload, h);
  if (!payload) return { ok: false, reason: 'handshake-failed' };
  h = hash(h, encryptedPayload);
  return {
    ok: true,
    value: { remote, remotePublicKey, remoteIndex: -0, remoteEphemeral, timestamp: payload, chainKey: ck, hash: h, suite: local.suite },
  };
}

/** The initiator's `e, es, s` under the other cipher's protocol name: does its static key decrypt? */
function opensUnderOtherSuite(local: LocalIdentity, ephemeral: Buffer, es: Buffer, encryptedStatic: Uint8Array): boolean {
  const other = local.otherSuite;
  if (!other) return false;
  const h = hash(other.initialHash, ephemeral);
  const [, k] = kdf2(kdf1(other.suite.initialChainKey, ephemeral), es);
  return aeadOpen(other.suite.cipher, k, encryptedStatic, h) !== null;
}

/** <- e, ee, se, psk with `payload`: the Noise message bytes (e || enc(payload)) and the responder's keys. */
export function responderMessage(
  consumed: ConsumedInitiation,
  payload: Uint8Array,
  random: RandomFill,
): { message: Buffer; keys: SessionKeys } | null {
  const e = newEphemeral(random);
  let h = consumed.hash;
  let ck = consumed.chainKey;
  h = hash(h, e.publicKey);
  ck = kdf1(ck, e.publicKey);
  const ee = dh(e.privateKey, consumed.remoteEphemeral);
  if (!ee) return null;
  ck = kdf1(ck, ee);
  const se = dh(e.privateKey, consumed.remote.publicKeyObject);
  if (!se) return null;
  ck = kdf1(ck, se);
  const [ck2, tau, k] = kdf3(ck, consumed.remote.psk);
  ck = ck2;
  h = hash(h, tau);
  const encryptedPayload = aeadSeal(consumed.suite.cipher, k, payload, h);
  h = hash(h, encryptedPayload);
  const [initiatorToResponder, responderToInitiator] = kdf2(ck, EMPTY);
  return {
    message: Buffer.concat([e.publicKey, encryptedPayload]),
    keys: { sendKey: responderToInitiator, recvKey: initiatorToResponder, handshakeHash: h },
  };
}

/** Fills `out` (RESPONSE.size bytes) up to the mac fields and returns the responder's session keys. */
export function writeResponse(consumed: ConsumedInitiation, senderIndex: number, random: RandomFill, out: Buffer): SessionKeys | null {
  const m = responderMessage(consumed, EMPTY, random);
  if (!m) return null;
  out.fill(0, 0, RESPONSE.size);
  out[0] = MSG_RESPONSE;
  writeU32(out, RESPONSE.senderIndex, senderIndex);
  writeU32(out, RESPONSE.receiverIndex, consumed.remoteIndex);
  out.set(m.message, RESPONSE.ephemeral);
  return m.keys;
}

/** Reads a response to our initiation (mac1 and receiver index already checked). */
export function readResponse(local: LocalIdentity, remote: RemoteIdentity, state: InitiatorHandshake, msg: Uint8Array): SessionKeys | null {
  const r = consumeResponderMessage(local, remote, state, msg.subarray(RESPONSE.ephemeral, RESPONSE.mac1));
  return r && r.payload.length === 0 ? r.keys : null;
}

/** Reads the Noise message e || enc(payload) answering our initiation. */
export function consumeResponderMessage(
  local: LocalIdentity,
  remote: RemoteIdentity,
  state: InitiatorHandshake,
  message: Uint8Array,
): { keys: SessionKeys; payload: Buffer } | null {
  if (message.length < KEY_LEN + TAG_LEN) return null;
  const ephemeral = Buffer.from(message.subarray(0, KEY_LEN));
  let remoteEphemeral: KeyObject;
  try {
    remoteEphemeral = x25519PublicKeyObject(ephemeral);
  } catch {
    return null;
  }
  let h = state.hash;
  let ck = state.chainKey;
  h = hash(h, ephemeral);
  ck = kdf1(ck, ephemeral);
  const ee = dh(state.ephemeralPrivate, remoteEphemeral);
  if (!ee) return null;
  ck = kdf1(ck, ee);
  const se = dh(local.privateKey, remoteEphemeral);
  if (!se) return null;
  ck = kdf1(ck, se);
  const [ck2, tau, k] = kdf3(ck, remote.psk);
  ck = ck2;
  h = hash(h, tau);
  const encryptedPayload = message.subarray(KEY_LEN);
  const payload = aeadOpen(local.suite.cipher, k, encryptedPayload, h);
  if (!payload) return null;
  h = hash(h, encryptedPayload);
  const [initiatorToResponder, responderToInitiator] = kdf2(ck, EMPTY);
  return { keys: { sendKey: initiatorToResponder, recvKey: responderToInitiator, handshakeHash: h }, payload };
}

export { ZERO_PSK };
