// Shared by fuzz.test.ts and fuzz-run.ts: a live SecureEndpoint pair, a corpus of valid datagrams of
// every message type, and mutators. Everything is seeded so a failure replays from its seed.
import { handle, Pair, seededRandom } from './pair.ts';
import type { Side } from './pair.ts';

export interface Target {
  side: Side;
  from: string;
  datagram: Uint8Array;
}

/** An established pair (a handshake that needed a cookie) and valid datagrams towards each side. */
export function fuzzSetup(seed: number): { pair: Pair; corpus: Target[] } {
  const pair = new Pair({ seed, limits: { handshakesPerSecondBeforeCookies: 0, minInitiationIntervalMs: 0 } });
  const corpus: Target[] = [];
  // Record every datagram the handshake exchanges.
  const init1 = pair.a.ep.connect(pair.a.peer, pair.b.address, pair.now);
  corpus.push({ side: pair.b, from: pair.a.address, datagram: init1 });
  const cookie = handle(pair.b.ep, init1, pair.a.address, pair.now);
  if (cookie.kind !== 'reply') throw new Error('expected a cookie reply');
  corpus.push({ side: pair.a, from: pair.b.address, datagram: cookie.data });
  handle(pair.a.ep, cookie.data, pair.b.address, pair.now);
  const init2 = pair.a.ep.pollTransmit()!.data;
  corpus.push({ side: pair.b, from: pair.a.address, datagram: init2 });
  const response = handle(pair.b.ep, init2, pair.a.address, pair.now);
  if (response.kind !== 'reply') throw new Error('expected a response');
  corpus.push({ side: pair.a, from: pair.b.address, datagram: response.data });
  handle(pair.a.ep, response.data, pair.b.address, pair.now);
  const keepalive = pair.a.ep.pollTransmit()!.data;
  corpus.push({ side: pair.b, from: pair.a.address, datagram: keepalive });
  handle(pair.b.ep, keepalive, pair.a.address, pair.now);
  for (const s of [pair.a, pair.b]) while (s.ep.pollEvent());
  for (let i = 0; i < 16; i++) {
    for (const from of [pair.a, pair.b]) {
      const size = [0, 1, 40, 200, 1200, 1400][i % 6]!;
      const d = from.ep.seal(from.peer, new Uint8Array(size).fill(i), pair.now)!;
      const to = pair.other(from);
      handle(to.ep, d, from.address, pair.now); // delivered: every copy from now on is a replay
      corpus.push({ side: to, from: from.address, datagram: d });
    }
  }
  return { pair, corpus };
}

/**
 * Seeded byte mutator: 1-4 of bit flips, byte overwrites, truncation, extension, splices with
 * `other`, fresh counters (reach the AEAD), internal copies, or pure noise.
 */
export function byteMutator(seed: number): { mutate(base: Uint8Array, other: Uint8Array): Uint8Array; next(n: number): number } {
  const rnd = seededRandom(seed);
  const word = new Uint8Array(4);
  const next = (n: number) => {
    rnd(word);
    return (((word[0]! | (word[1]! << 8) | (word[2]! << 16)) >>> 0) + word[3]! * 2 ** 24) % n;
  };
  const mutate = (base: Uint8Array, other: Uint8Array): Uint8Array => {
    let d = Uint8Array.from(base);
    const ops = 1 + next(4);
    for (let k = 0; k < ops; k++) {
      switch (next(8)) {
        case 7:
          if (d.length >= 16) d[8 + next(6)] = next(256);
          break; // fresh counter: reaches the AEAD
        case 0:
          if (d.length) d[next(d.length)]! ^= 1 << next(8);
          break;
        case 1:
          if (d.length) d[next(d.length)] = next(256);
          break;
        case 2:
          d = d.subarray(0, next(d.length + 1));
          break;
        case 3: {
          const e = new Uint8Array(d.length + 1 + next(64));
          e.set(d);
          rnd(e.subarray(d.length));
          d = e;
          break;
        }
        case 4: {
          const at = next(Math.min(d.length, other.length) + 1);
          d = Uint8Array.from([...d.subarray(0, at), ...other.subarray(at)]);
          break;
        }
        case 5: {
          d = new Uint8Array(next(1500));
          rnd(d);
          if (d.length && next(2)) d[0] = 1 + next(4);
          if (d.length > 3 && next(2)) d.fill(0, 1, 4);
          break;
        }
        default:
          if (d.length > 8) {
            const i = next(d.length - 4);
            d.copyWithin(i, next(d.length - 4), d.length);
          }
          break;
      }
    }
    return d;
  };
  return { mutate, next };
}

/** Mutations of corpus entries, addressed like the originals (sometimes from another source). */
export function mutator(seed: number): (corpus: Target[]) => Target {
  const m = byteMutator(seed);
  return (corpus) => {
    const base = corpus[m.next(corpus.length)]!;
    const d = m.mutate(base.datagram, corpus[m.next(corpus.length)]!.datagram);
    return { side: base.side, from: m.next(8) === 0 ? '203.0.113.7:1' : base.from, datagram: d };
  };
}
