// PacketAead over sodium-native (libsodium's crypto_aead_chacha20poly1305_ietf): the ChaCha20-Poly1305
// fallback when the OpenSSL addon is not built. Same bytes as the addon (test/crypto/aead-backend.test.ts).
import { AEAD_KEY_LEN, openTarget, packetAt, runsByPacket, sealedEnd, type AeadKey, type PacketAead } from './aead.ts';
import { sodium } from './sodium.ts';

interface SodiumKey {
  key: Buffer | null; // null once freed
}

// Shared scratch: the packet path is synchronous, so one nonce buffer serves every key.
const nonce = Buffer.alloc(12);

function setNonce(counter: number): void {
  const lo = counter >>> 0;
  nonce.writeUInt32LE(lo, 4);
  nonce.writeUInt32LE((counter - lo) / 2 ** 32, 8);
}

function keyOf(k: AeadKey): Buffer {
  const key = (k as unknown as SodiumKey).key;
  if (key === null) throw new Error('aead key used after free');
  return key;
}

const seal: PacketAead['seal'] = (k, counter, buf, headerLen, plaintext, at) => {
  const packet = packetAt(buf, at);
  const end = sealedEnd(packet, headerLen, plaintext.length);
  setNonce(counter);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
    packet.subarray(headerLen, end),
    plaintext,
    packet.subarray(0, headerLen),
    null,
    nonce,
    keyOf(k),
  );
  return end;
};

const open: PacketAead['open'] = (k, counter, packet, headerLen, out) => {
  const key = keyOf(k);
  // libsodium checks the tag before decrypting and allows m == c; on failure it zeroes m.
  const m = openTarget(packet, headerLen, out);
  if (m === null) return -1;
  setNonce(counter);
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, packet.subarray(headerLen), packet.subarray(0, headerLen), nonce, key);
  } catch {
    return -1;
  }
  return m.length;
};

export const sodiumAead: PacketAead = {
  name: 'sodium',
  cipher: 'chacha20-poly1305',

  create(key) {
    if (key.length !== AEAD_KEY_LEN) throw new RangeError('key: 32 bytes');
    const k: SodiumKey = { key: Buffer.from(key) };
    return k as unknown as AeadKey;
  },

  seal,
  open,
  ...runsByPacket(seal, open),

  free(k) {
    const s = k as unknown as SodiumKey;
    if (s.key !== null) sodium.sodium_memzero(s.key);
    s.key = null;
  },
};
