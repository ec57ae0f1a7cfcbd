// `npm run fuzz:crypto [-- COUNT SEED]`: throws COUNT (default 1M) mutated datagrams at a live
// SecureEndpoint pair while a transfer runs, checking after every batch that no association state
// changed and that the transfer arrives intact; reports rate and heap.
import assert from 'node:assert/strict';
import { fuzzSetup, mutator } from './fuzz-harness.ts';
import { handle } from './pair.ts';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? Date.now() % 100_000);
const BATCH = 1000;
const { pair, corpus } = fuzzSetup(seed);
const mutate = mutator(seed + 1);
const heapStart = process.memoryUsage().heapUsed;
let heapMax = heapStart;
const started = performance.now();
for (let done = 0, batch = 0; done < count; batch++) {
  const snapA = pair.a.ep.debugSnapshot();
  const snapB = pair.b.ep.debugSnapshot();
  for (let i = 0; i < BATCH && done < count; i++, done++) {
    const t = mutate(corpus);
    const r = handle(t.side.ep, t.datagram, t.from, pair.now);
    assert.notEqual(r.kind, 'data', `seed ${seed} datagram ${done}`);
  }
  assert.equal(pair.a.ep.debugSnapshot(), snapA, `seed ${seed} batch ${batch}`);
  assert.equal(pair.b.ep.debugSnapshot(), snapB, `seed ${seed} batch ${batch}`);
  const chunk = new Uint8Array(1200).fill(batch & 255);
  const { result } = pair.transfer(batch % 2 ? pair.a : pair.b, chunk);
  assert.ok(result?.kind === 'data' && Buffer.from(result.plaintext).equals(chunk), `transfer at batch ${batch}`);
  if (batch % 100 === 0) heapMax = Math.max(heapMax, process.memoryUsage().heapUsed);
}
const seconds = (performance.now() - started) / 1000;
const stats = { a: pair.a.ep.stats(), b: pair.b.ep.stats() };
console.log(
  JSON.stringify({
    seed,
    datagrams: count,
    seconds: +seconds.toFixed(2),
    perSecond: Math.round(count / seconds),
    heapStartMB: +(heapStart / 2 ** 20).toFixed(1),
    heapMaxMB: +(heapMax / 2 ** 20).toFixed(1),
    dropped: {
      malformed: stats.a.malformed + stats.b.malformed,
      unknownIndex: stats.a.unknownIndex + stats.b.unknownIndex,
      authFailures: stats.a.authFailures + stats.b.authFailures,
      replays: stats.a.replays + stats.b.replays,
      tooOld: stats.a.tooOld + stats.b.tooOld,
      invalidMac1: stats.a.invalidMac1 + stats.b.invalidMac1,
      staleTimestamps: stats.b.staleTimestamps,
      cookiesSent: stats.b.cookiesSent,
    },
  }),
);
