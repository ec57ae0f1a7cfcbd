// Chooses the per-packet AEAD backend once per process: OpenSSL (native/lh_aead.c) when the addon
// loads and agrees with libsodium on a known input, sodium-native otherwise. A fallback is said
// once on stderr (a process warning), since it costs ~0.7 us per packet on each side; the choice
// is in SecureEndpoint.stats().aeadBackend (and so in the gateway's status).
import { AEAD_TAG_LEN, type PacketAead } from './aead.ts';
import { loadOpensslAead, type OpensslAeadLoad } from './aead-openssl.ts';
import { sodiumAead } from './aead-sodium.ts';

export interface AeadChoice {
  aead: PacketAead;
  /** Why the fallback was taken; null when OpenSSL is in use. */
  fallbackReason: string | null;
}

let chosen: AeadChoice | null = null;

/** The backend SecureEndpoints use unless one is injected (chosen on first use, then fixed). */
export function defaultPacketAead(): PacketAead {
  if (chosen === null) {
    chosen = pickAead(loadOpensslAead());
    if (chosen.fallbackReason !== null) {
      const why = chosen.fallbackReason.split('\n')[0]; // a failed require appends its stack
      process.emitWarning(`packet AEAD: sodium-native in use, slower than OpenSSL (npm run build:native): ${why}`, { code: 'LONGHAUL_AEAD_FALLBACK' });
    }
  }
  return chosen.aead;
}

/** OpenSSL if it loaded and passes the self-check, sodium otherwise (pure: no caching, no output). */
export function pickAead(openssl: OpensslAeadLoad): AeadChoice {
  if (!openssl.ok) return { aead: sodiumAead, fallbackReason: openssl.error };
  const disagreement = agreesWithSodium(openssl.aead);
  if (disagreement !== null) return { aead: sodiumAead, fallbackReason: disagreement };
  return { aead: openssl.aead, fallbackReason: null };
}

/**
 * Seals one packet with both backends and opens it with the candidate: catches an addon built
 * against an OpenSSL that behaves differently from the node binary's. Null when they agree.
 */
export function agreesWithSodium(candidate: PacketAead): string | null {
  const key = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const header = 16;
  const counter = 2 ** 40 + 3; // both nonce words non-zero
  const plaintext = new Uint8Array(300).map((_, i) => i ^ 0x5a);
  const mine = new Uint8Array(header + plaintext.length + AEAD_TAG_LEN).fill(0xc3, 0, header);
  const reference = Uint8Array.from(mine);
  const k = candidate.create(key);
  const ref = sodiumAead.create(key);
  try {
    candidate.seal(k, counter, mine, header, plaintext);
    sodiumAead.seal(ref, counter, reference, header, plaintext);
    if (!mine.every((v, i) => v === reference[i])) return 'self-check: output differs from libsodium';
    if (candidate.open(k, counter, mine, header, null) !== plaintext.length) return 'self-check: cannot open its own packet';
    if (!plaintext.every((v, i) => v === mine[header + i])) return 'self-check: opened to different bytes';
    return null;
  } catch (err) {
    return `self-check: ${(err as Error).message}`;
  } finally {
    candidate.free(k);
    sodiumAead.free(ref);
  }
}
