// Cryptographic building blocks of the handshake: Noise's HASH/HMAC/HKDF over SHA-256,
// X25519 through node:crypto KeyObjects, AES-256-GCM or ChaCha20-Poly1305 for handshake payloads
// (node:crypto: a handful per handshake), keyed BLAKE2b-128 for mac1/mac2/cookies (sodium:
// cheap enough to run on every flood packet), and TAI64N timestamps.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomFillSync,
  type KeyObject,
} from 'node:crypto';
import type { PacketCipher } from './aead.ts';
import { sodium } from './sodium.ts';

export const KEY_LEN = 32;
export const HASH_LEN = 32;
export const TAG_LEN = 16;
export const MAC_LEN = 16;
export const TIMESTAMP_LEN = 12;

/** Fills `out` with random bytes. Injectable so tests and the simulator are reproducible. */
export type RandomFill = (out: Uint8Array) => void;
export const systemRandom: RandomFill = (out) => {
  randomFillSync(out);
};

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

export function x25519PrivateKeyObject(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function x25519PublicFromPrivate(privateKey: KeyObject): Buffer {
  const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - KEY_LEN));
}

/** X25519; null when the result is all zero (low-order public key), which Noise peers must reject. */
export function dh(privateKey: KeyObject, publicKey: KeyObject): Buffer | null {
  try {
    return diffieHellman({ privateKey, publicKey });
  } catch {
    return null; // OpenSSL refuses all-zero shared secrets
  }
}

export function hash(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

const NO_INFO = Buffer.alloc(0);

/**
 * Noise HKDF (spec section 4.3): temp = HMAC(ck, input), out_i = HMAC(temp, out_{i-1} || i).
 * That is RFC 5869 HKDF with salt = ck and empty info, so node's native hkdfSync computes it
 * (4x faster than three createHmac calls; the Cacophony vector test pins the equivalence).
 */
function noiseHkdf(chainingKey: Uint8Array, input: Uint8Array, outputs: number): Buffer {
  return Buffer.from(hkdfSync('sha256', input, chainingKey, NO_INFO, outputs * HASH_LEN));
}

export function kdf1(chainingKey: Uint8Array, input: Uint8Array): Buffer {
  return noiseHkdf(chainingKey, input, 1);
}

export function kdf2(chainingKey: Uint8Array, input: Uint8Array): [Buffer, Buffer] {
  const out = noiseHkdf(chainingKey, input, 2);
  return [out.subarray(0, HASH_LEN), out.subarray(HASH_LEN)];
}

export function kdf3(chainingKey: Uint8Array, input: Uint8Array): [Buffer, Buffer, Buffer] {
  const out = noiseHkdf(chainingKey, input, 3);
  return [out.subarray(0, HASH_LEN), out.subarray(HASH_LEN, 2 * HASH_LEN), out.subarray(2 * HASH_LEN)];
}

// Handshake AEAD: every handshake key encrypts exactly one message, so the Noise nonce is 0 (all
// zero bytes in either cipher's nonce layout). `cipher` is also node:crypto's name for it.
const ZERO_NONCE = Buffer.alloc(12);

export function aeadSeal(cipher: PacketCipher, key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const c =
    cipher === 'aes-256-gcm'
      ? createCipheriv('aes-256-gcm', key, ZERO_NONCE, { authTagLength: TAG_LEN })
      : createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LEN });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

/** null when the tag does not verify. */
export function aeadOpen(cipher: PacketCipher, key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null {
  if (sealed.length < TAG_LEN) return null;
  const bodyLen = sealed.length - TAG_LEN;
  const d =
    cipher === 'aes-256-gcm'
      ? createDecipheriv('aes-256-gcm', key, ZERO_NONCE, { authTagLength: TAG_LEN })
      : createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LEN });
  d.setAAD(ad, { plaintextLength: bodyLen });
  d.setAuthTag(sealed.subarray(bodyLen));
  const body = d.update(sealed.subarray(0, bodyLen));
  try {
    d.final();
  } catch {
    return null;
  }
  return body;
}

/** Keyed BLAKE2b-128 (WireGuard uses keyed BLAKE2s-128; node:crypto offers neither keyed form). */
export function mac(out: Uint8Array, key: Uint8Array, input: Uint8Array): void {
  sodium.crypto_generichash(out, input, key);
}

/** Constant-time equality for equal-length byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b);
}

/**
 * TAI64N label (8-byte big-endian 2^62 + seconds, 4-byte big-endian nanoseconds) for a wall-clock
 * time in ms. Big-endian so that byte order equals time order.
 */
export function tai64n(out: Uint8Array, wallClockMs: number): void {
  const seconds = Math.floor(wallClockMs / 1000);
  const nanos = Math.floor((wallClockMs - seconds * 1000) * 1e6);
  const view = new DataView(out.buffer, out.byteOffset, TIMESTAMP_LEN);
  view.setUint32(0, 0x40000000 + Math.floor(seconds / 2 ** 32));
  view.setUint32(4, seconds >>> 0);
  view.setUint32(8, Math.min(nanos, 999_999_999));
}
