// Chooses the per-packet AEAD backend once per process and cipher: OpenSSL (native/lh_aead.c)
// when the addon loads and agrees with the reference implementation on a known input; otherwise
// sodium-native for ChaCha20-Poly1305 and node:crypto for AES-256-GCM. A fallback is said once per
// cipher on stderr (a process warning), since it costs ~0.7 us (sodium) to ~4 us (node:crypto)
// more per packet on each side; the choice is in SecureEndpoint.stats().aeadBackend (and so in
// the gateway's status).
import { AEAD_TAG_LEN, type PacketAead, type PacketCipher } from './aead.ts';
import { nodeAesGcmAead } from './aead-node.ts';
import { loadOpensslAead, type OpensslAeadLoad } from './aead-openssl.ts';
import { sodiumAead } from './aead-sodium.ts';

export interface AeadChoice {
  aead: PacketAead;
  /** Why the fallback was taken; null when OpenSSL is in use. */
  fallbackReason: string | null;
}

/** The backend used without the addon: the reference the addon is checked against. */
export const REFERENCE_AEAD: Record<PacketCipher, PacketAead> = {
  'aes-256-gcm': nodeAesGcmAead,
  'chacha20-poly1305': sodiumAead,
};

const chosen = new Map<PacketCipher, AeadChoice>();

/** The backend SecureEndpoints use for `cipher` unless one is injected (chosen on first use, then fixed). */
export function defaultPacketAead(cipher: PacketCipher): PacketAead {
  let choice = chosen.get(cipher);
  if (choice === undefined) {
    choice = pickAead(loadOpensslAead(), cipher);
    chosen.set(cipher, choice);
    if (choice.fallbackReason !== null) {
      const why = choice.fallbackReason.split('\n')[0]; // a failed require appends its stack
      const slower = cipher === 'aes-256-gcm' ? 'node:crypto per packet, ~15x slower' : 'sodium-native, ~2x slower';
      process.emitWarning(`packet AEAD ${cipher}: ${slower} than OpenSSL (npm run build:native): ${why}`, {
        code: 'LONGHAUL_AEAD_FALLBACK',
      });
    }
  }
  return choice.aead;
}

/** OpenSSL if it loaded and passes the self-check, the reference backend otherwise (pure: no caching, no output). */
export function pickAead(openssl: OpensslAeadLoad, cipher: PacketCipher): AeadChoice {
  const reference = REFERENCE_AEAD[cipher];
  if (!openssl.ok) return { aead: reference, fallbackReason: openssl.error };
  const candidate = openssl.aeads[cipher];
  const disagreement = agreesWithReference(candidate);
  if (disagreement !== null) return { aead: reference, fallbackReason: disagreement };
  return { aead: candidate, fallbackReason: null };
}

/**
 * Seals one packet with the candidate and the reference backend of its cipher and opens it with the
 * candidate: catches an addon built against an OpenSSL that behaves differently from the node
 * binary's. Null when they agree.
 */
export function agreesWithReference(candidate: PacketAead): string | null {
  const referenceAead = REFERENCE_AEAD[candidate.cipher];
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const header = 16;
  const counter = 2 ** 40 + 3; // both nonce words non-zero, so the byte order matters
  const plaintext = new Uint8Array(300).map((_, i) => i ^ 0x5a);
  const mine = new Uint8Array(header + plaintext.length + AEAD_TAG_LEN).fill(0xc3, 0, header);
  const reference = Uint8Array.from(mine);
  const k = candidate.create(key);
  const ref = referenceAead.create(key);
  try {
    candidate.seal(k, counter, mine, header, plaintext);
    referenceAead.seal(ref, counter, reference, header, plaintext);
    if (!mine.every((v, i) => v === reference[i])) return `self-check: output differs from ${referenceAead.name}`;
    if (candidate.open(k, counter, mine, header, null) !== plaintext.length) return 'self-check: cannot open its own packet';
    if (!plaintext.every((v, i) => v === mine[header + i])) return 'self-check: opened to different bytes';
    return null;
  } catch (err) {
    return `self-check: ${(err as Error).message}`;
  } finally {
    candidate.free(k);
    referenceAead.free(ref);
  }
}
