// DoS protection in front of the handshake, as WireGuard's mac1/mac2 (WireGuard paper, section 5.4).
//
// mac1 = MAC(HASH("mac1----" || receiver static pub), message up to mac1)
//   Anyone who knows the receiver's public key can compute it; it makes a responder drop garbage
//   and scans after one BLAKE2b, before any Diffie-Hellman.
// mac2 = MAC(cookie, message up to mac2), cookie = MAC(R, source address), R rotated every 2 min.
//   Proves the initiator receives packets at its source address. A responder under load answers
//   an initiation without a valid mac2 with a 64-byte cookie reply (less than the 148 bytes
//   received: no amplification) and keeps nothing: the cookie is recomputed from R on return.
// The cookie travels encrypted (XChaCha20-Poly1305, key HASH("cookie--" || responder static pub),
// AAD = the initiation's mac1), so only the initiator that sent that initiation can use it.
import { equalBytes, hash, mac, MAC_LEN, type RandomFill } from './primitives.ts';
import { sodium } from './sodium.ts';
import { COOKIE_REPLY, INITIATION, MSG_COOKIE_REPLY, readU32, writeU32 } from './wire.ts';

const LABEL_MAC1 = Buffer.from('mac1----');
const LABEL_COOKIE = Buffer.from('cookie--');
const COOKIE_NONCE_LEN = 24;

export function mac1KeyFor(staticPublic: Uint8Array): Buffer {
  return hash(LABEL_MAC1, staticPublic);
}

export function cookieKeyFor(staticPublic: Uint8Array): Buffer {
  return hash(LABEL_COOKIE, staticPublic);
}

/** Writes mac1 (and mac2 when a cookie is known, zeros otherwise) into a handshake message. */
export function writeMacs(msg: Buffer, mac1Offset: number, mac1Key: Uint8Array, cookie: Uint8Array | null): void {
  const mac2Offset = mac1Offset + MAC_LEN;
  mac(msg.subarray(mac1Offset, mac2Offset), mac1Key, msg.subarray(0, mac1Offset));
  if (cookie) mac(msg.subarray(mac2Offset, mac2Offset + MAC_LEN), cookie, msg.subarray(0, mac2Offset));
  else msg.fill(0, mac2Offset, mac2Offset + MAC_LEN);
}

/** Responder side: validates macs and issues cookie replies. Holds only global state (R). */
export class CookieChecker {
  readonly #mac1Key: Buffer;
  readonly #cookieKey: Buffer;
  readonly #secret = Buffer.alloc(32);
  #secretBornAt = -Infinity;
  readonly #scratch = Buffer.alloc(MAC_LEN);
  readonly #cookie = Buffer.alloc(MAC_LEN);
  readonly #localPublic: Uint8Array;
  readonly #random: RandomFill;
  readonly #secretLifetimeMs: number;

  constructor(localPublic: Uint8Array, random: RandomFill, secretLifetimeMs: number) {
    this.#localPublic = localPublic;
    this.#mac1Key = mac1KeyFor(localPublic);
    this.#cookieKey = cookieKeyFor(localPublic);
    this.#random = random;
    this.#secretLifetimeMs = secretLifetimeMs;
  }

  mac1Valid(msg: Uint8Array, mac1Offset: number): boolean {
    mac(this.#scratch, this.#mac1Key, msg.subarray(0, mac1Offset));
    return equalBytes(this.#scratch, msg.subarray(mac1Offset, mac1Offset + MAC_LEN));
  }

  mac2Valid(msg: Uint8Array, mac2Offset: number, source: string, now: number): boolean {
    this.#computeCookie(source, now);
    mac(this.#scratch, this.#cookie, msg.subarray(0, mac2Offset));
    return equalBytes(this.#scratch, msg.subarray(mac2Offset, mac2Offset + MAC_LEN));
  }

  /** A fresh 64-byte cookie reply to an initiation from `source`. */
  cookieReply(initiation: Uint8Array, source: string, now: number): Buffer {
    this.#computeCookie(source, now);
    const out = Buffer.alloc(COOKIE_REPLY.size);
    out[0] = MSG_COOKIE_REPLY;
    writeU32(out, COOKIE_REPLY.receiverIndex, readU32(initiation, INITIATION.senderIndex));
    const nonce = out.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.nonce + COOKIE_NONCE_LEN);
    this.#random(nonce);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.subarray(COOKIE_REPLY.encryptedCookie),
      this.#cookie,
      initiation.subarray(INITIATION.mac1, INITIATION.mac2),
      null,
      nonce,
      this.#cookieKey,
    );
    return out;
  }

  get publicKey(): Uint8Array {
    return this.#localPublic;
  }

  #computeCookie(source: string, now: number): void {
    if (now - this.#secretBornAt >= this.#secretLifetimeMs || now < this.#secretBornAt) {
      this.#random(this.#secret);
      this.#secretBornAt = now;
    }
    mac(this.#cookie, this.#secret, Buffer.from(source));
  }
}

/** Initiator side: decrypts a cookie reply for the initiation whose mac1 was `sentMac1`. */
export function openCookieReply(cookieKey: Uint8Array, reply: Uint8Array, sentMac1: Uint8Array): Buffer | null {
  const cookie = Buffer.alloc(MAC_LEN);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      cookie,
      null,
      reply.subarray(COOKIE_REPLY.encryptedCookie, COOKIE_REPLY.size),
      sentMac1,
      reply.subarray(COOKIE_REPLY.nonce, COOKIE_REPLY.nonce + COOKIE_NONCE_LEN),
      cookieKey,
    );
  } catch {
    return null; // forged or corrupted
  }
  return cookie;
}
