// Test data for the codec: deterministic from a seed, small enough for unit tests.
import { gzipSync } from 'node:zlib';
import { PayloadSource, prng } from '../../src/lab/workloads/payload.ts';

export { prng };

export function randomBytes(length: number, seed = 1): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (rnd() * 256) | 0;
  return out;
}

export function zeros(length: number): Uint8Array {
  return new Uint8Array(length);
}

const WORDS = 'the quick brown fox jumps over lazy dog request response error warning cache page block'.split(' ');

export function textLike(length: number, seed = 1): Uint8Array {
  const rnd = prng(seed);
  let s = '';
  while (s.length < length) s += `${WORDS[(rnd() * WORDS.length) | 0]}${rnd() < 0.1 ? '\n' : ' '}`;
  return new TextEncoder().encode(s.slice(0, length));
}

export function vmImage(length: number, seed = 1): Uint8Array {
  const source = new PayloadSource('vm', length, { seed });
  const out = new Uint8Array(length);
  let at = 0;
  for (let c = source.next(); c; c = source.next()) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** gzip output of text: high entropy, so it does not compress again. */
export function alreadyCompressed(length: number, seed = 1): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  let round = 0;
  while (total < length) {
    const z = gzipSync(randomishText(64 * 1024, seed + round++));
    parts.push(z);
    total += z.length;
  }
  return concat(parts).subarray(0, length);
}

// Text with enough variety that gzip output is dense (not a few repeated back-references).
function randomishText(length: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = 32 + ((rnd() * 90) | 0);
  return out;
}

/** Bytes of which `randomFraction` is random and the rest zero, in 1 KiB stripes: compresses to about randomFraction. */
export function partlyRandom(length: number, randomFraction: number, seed = 1): Uint8Array {
  const noise = randomBytes(length, seed);
  const out = new Uint8Array(length);
  const stripe = 1024;
  for (let at = 0; at < length; at += stripe) {
    const randomPart = Math.round(Math.min(stripe, length - at) * randomFraction);
    out.set(noise.subarray(at, at + randomPart), at);
  }
  return out;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
