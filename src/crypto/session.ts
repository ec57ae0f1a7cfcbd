// Per-direction session keys and the per-packet path (message type 4):
//
//   0       4               8                       16
//   | 4 0 0 0 | receiver index | counter (u64 LE)     | AEAD(payload)              | tag (16) |
//
// AEAD = AES-256-GCM or ChaCha20-Poly1305 (configured); nonce = 4 zero bytes || counter, big-endian
// for AES-256-GCM and little-endian for ChaCha20-Poly1305 (Noise's layouts; the backend builds it);
// AAD = the 16-byte header. The backend (aead-backend.ts) is OpenSSL through native/lh_aead.c,
// ~0.25 us (AES-256-GCM) or ~0.95 us (ChaCha20-Poly1305) per 1400-byte seal; without the addon
// sodium-native (~1.7 us, ChaCha) or node:crypto (~4 us, AES-GCM).
import type { AeadKey, PacketAead } from './aead.ts';
import { ReplayWindow } from './replay-window.ts';
import { DATA, DATA_OVERHEAD, MSG_DATA, readU32, writeU32 } from './wire.ts';

/** One handshake's keys, in one of a peer's slots (current/previous/next). */
export class Keypair {
  readonly aead: PacketAead;
  readonly sendKey: AeadKey;
  readonly recvKey: AeadKey;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly createdAt: number;
  readonly isInitiator: boolean;
  sendCounter = 0;
  /** Last time a packet was sealed under these keys (set by the endpoint). */
  lastSealAt = -Infinity;
  /** The timer-driven rekey check for these keys has run (it runs once). */
  rekeyTimerDone = false;
  readonly replay = new ReplayWindow();

  /**
   * Loads the raw keys into `aead` and zeroes the caller's copies, so key bytes live only in the
   * backend's contexts from here on.
   */
  constructor(
    aead: PacketAead,
    sendKey: Uint8Array,
    recvKey: Uint8Array,
    localIndex: number,
    remoteIndex: number,
    createdAt: number,
    isInitiator: boolean,
  ) {
    this.aead = aead;
    this.sendKey = aead.create(sendKey);
    this.recvKey = aead.create(recvKey);
    sendKey.fill(0);
    recvKey.fill(0);
    this.localIndex = localIndex;
    this.remoteIndex = remoteIndex;
    this.createdAt = createdAt;
    this.isInitiator = isInitiator;
  }

  /** Wipes the keys; the keypair must not be used afterwards. */
  wipe(): void {
    this.aead.free(this.sendKey);
    this.aead.free(this.recvKey);
  }
}

/**
 * Seals `plaintext` under the next counter. The caller has checked the counter limit.
 * With `into` (large enough, not overlapping `plaintext`) the message is written there and a
 * view of it returned: a sender that may reuse its send buffer saves an allocation per packet.
 */
export function sealData(kp: Keypair, plaintext: Uint8Array, into?: Buffer): Buffer {
  const size = DATA_OVERHEAD + plaintext.length;
  const out = into !== undefined && into.length >= size ? into : Buffer.allocUnsafe(size);
  sealDataAt(kp, plaintext, out, 0);
  return out.length === size ? out : out.subarray(0, size);
}

/**
 * Seals `plaintext` under the next counter into out[at, at + DATA_OVERHEAD + plaintext.length)
 * (the caller has checked the counter limit and the room) and returns the message's length.
 * No allocation: the gateway seals straight into its send queue.
 */
export function sealDataAt(kp: Keypair, plaintext: Uint8Array, out: Uint8Array, at: number): number {
  const counter = kp.sendCounter++;
  writeU32(out, at, MSG_DATA);
  writeU32(out, at + DATA.receiverIndex, kp.remoteIndex);
  const lo = counter >>> 0;
  writeU32(out, at + DATA.counter, lo);
  writeU32(out, at + DATA.counter + 4, (counter - lo) / 2 ** 32);
  return kp.aead.seal(kp.sendKey, counter, out, DATA.headerSize, plaintext, at);
}

/**
 * Seals `count` data messages laid back to back in buf from byte `at` (message i is lens[from + i]
 * bytes: header room, plaintext, tag room) under the next counters, in place and in one AEAD
 * call. The caller has checked the counter limit and the room.
 */
export function sealDataRun(kp: Keypair, buf: Uint8Array, lens: Int32Array, from: number, count: number, at: number): void {
  kp.aead.sealRun(kp.sendKey, buf, lens, from, count, at, MSG_DATA, kp.remoteIndex, kp.sendCounter);
  kp.sendCounter += count;
}

export type OpenFailure = 'auth-failed' | 'duplicate' | 'too-old' | 'counter-limit';

/** Counter of a data message (any length >= header). */
export function dataCounter(datagram: Uint8Array): number {
  return readU32(datagram, DATA.counter) + readU32(datagram, DATA.counter + 4) * 2 ** 32;
}

/**
 * Authenticates and decrypts a data message addressed to `kp`. Nothing in `kp` changes unless the
 * tag verifies and the counter is fresh.
 * `inPlace`: the plaintext is decrypted over the ciphertext and returned as a view of `datagram`
 * (no allocation, no copy); the caller must own `datagram`. On a bad tag the payload bytes are
 * zeroed (the datagram is dropped).
 */
export function openData(kp: Keypair, datagram: Uint8Array, rejectAfterMessages: number, inPlace = false): Uint8Array | OpenFailure {
  const counter = dataCounter(datagram);
  if (counter >= rejectAfterMessages) return 'counter-limit';
  const verdict = kp.replay.check(counter);
  if (verdict !== 'fresh') return verdict;
  const out = inPlace ? null : Buffer.allocUnsafe(datagram.length - DATA_OVERHEAD);
  const n = kp.aead.open(kp.recvKey, counter, datagram, DATA.headerSize, out);
  if (n < 0) return 'auth-failed';
  kp.replay.accept(counter);
  return out ?? datagram.subarray(DATA.payload, DATA.payload + n);
}
