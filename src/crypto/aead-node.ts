// PacketAead for AES-256-GCM over node:crypto: the fallback when the OpenSSL addon is not built
// (sodium-native offers AES-256-GCM only on some CPUs and not in its portable build, so it is no
// fallback here). Correct but slow: node:crypto has no reusable cipher context, so every packet
// builds a Cipher/Decipher object (~4 us per 1400-byte packet against ~0.25 us through the addon) and
// allocates its output. Same bytes as the addon (test/crypto/aead-backend.test.ts).
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { AEAD_KEY_LEN, AEAD_TAG_LEN, openTarget, packetAt, runsByPacket, sealedEnd, type AeadKey, type PacketAead } from './aead.ts';

interface NodeKey {
  key: KeyObject | null; // null once freed
}

// Shared scratch: the packet path is synchronous, so one nonce buffer serves every key.
const nonce = Buffer.alloc(12);

/** Noise's AESGCM nonce: 4 zero bytes || the counter as a 64-bit big-endian integer. */
function setNonce(counter: number): void {
  const lo = counter >>> 0;
  nonce.writeUInt32BE((counter - lo) / 2 ** 32, 4);
  nonce.writeUInt32BE(lo, 8);
}

function keyOf(k: AeadKey): KeyObject {
  const key = (k as unknown as NodeKey).key;
  if (key === null) throw new Error('aead key used after free');
  return key;
}

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.length);

const seal: PacketAead['seal'] = (k, counter, buf, headerLen, plaintext, at) => {
  const packet = packetAt(buf, at);
  const end = sealedEnd(packet, headerLen, plaintext.length);
  setNonce(counter);
  const c = createCipheriv('aes-256-gcm', keyOf(k), nonce, { authTagLength: AEAD_TAG_LEN });
  c.setAAD(packet.subarray(0, headerLen));
  // update() returns a new buffer, so sealing in place (plaintext = the packet's body) is safe.
  const body = c.update(plaintext);
  c.final();
  packet.set(body, headerLen);
  packet.set(c.getAuthTag(), headerLen + plaintext.length);
  return end;
};

const open: PacketAead['open'] = (k, counter, packet, headerLen, out) => {
  const key = keyOf(k);
  const target = openTarget(packet, headerLen, out);
  if (target === null) return -1;
  const plainLen = target.length;
  setNonce(counter);
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AEAD_TAG_LEN });
  d.setAAD(packet.subarray(0, headerLen));
  d.setAuthTag(asBuffer(packet.subarray(headerLen + plainLen)));
  const body = d.update(packet.subarray(headerLen, headerLen + plainLen));
  try {
    d.final();
  } catch {
    // Never leave unauthenticated plaintext behind (the other backends zero it too).
    body.fill(0);
    target.fill(0);
    return -1;
  }
  target.set(body);
  return plainLen;
};

export const nodeAesGcmAead: PacketAead = {
  name: 'node',
  cipher: 'aes-256-gcm',

  create(key) {
    if (key.length !== AEAD_KEY_LEN) throw new RangeError('key: 32 bytes');
    const k: NodeKey = { key: createSecretKey(Buffer.from(key)) };
    return k as unknown as AeadKey;
  },

  seal,
  open,
  ...runsByPacket(seal, open),

  free(k) {
    (k as unknown as NodeKey).key = null; // KeyObjects cannot be wiped; dropping the reference is all node offers
  },
};
