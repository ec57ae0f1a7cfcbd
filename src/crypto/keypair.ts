// A keypair: one handshake's per-direction keys, and the data message (type 4) they protect:
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

/** Seals `plaintext` under the next counter into a new buffer. The caller has checked the counter limit. */
export function sealData(kp: Keypair, plaintext: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(DATA_OVERHEAD + plaintext.length);
  const counter = kp.sendCounter++;
  writeU32(out, 0, MSG_DATA);
  writeU32(out, DATA.receiverIndex, kp.remoteIndex);
  const lo = counter >>> 0;
  writeU32(out, DATA.counter, lo);
  writeU32(out, DATA.counter + 4, (counter - lo) / 2 ** 32);
  kp.aead.seal(kp.sendKey, counter, out, DATA.headerSize, plaintext);
  return out;
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

/** Counter of a data message (any length >= header). */
export function dataCounter(datagram: Uint8Array): number {
  return readU32(datagram, DATA.counter) + readU32(datagram, DATA.counter + 4) * 2 ** 32;
}
