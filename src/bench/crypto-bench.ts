// Packet-protection benchmark: seal+open of 1400-byte datagrams per core through a SecureEndpoint
// pair (the gateway's per-packet path), seal-only and open-only, the same AEAD through node:crypto
// for reference, and full handshakes per second.
// Run under the bench lock: `flock /tmp/longhaul-bench.lock npm run bench:crypto [-- --seconds 3]`.
// Writes bench/results/crypto-<date>.json and .md.
import { execSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { generateStaticKeyPair } from '../crypto/keys.ts';
import { peerIdOf, SecureEndpoint } from '../crypto/secure-endpoint.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' }, // per measurement; 5 measurements, bounded
    size: { type: 'string', default: '1400' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const SECONDS = Math.min(Number(args.seconds), 30);
const SIZE = Number(args.size);
const A_ADDR = '198.18.1.2:4500';
const B_ADDR = '198.18.2.2:4500';

function establishedPair(): { a: SecureEndpoint; b: SecureEndpoint; aPeer: string; bPeer: string } {
  const ka = generateStaticKeyPair();
  const kb = generateStaticKeyPair();
  const a = new SecureEndpoint({ staticKey: ka, peers: [{ publicKey: kb.publicKey }] });
  const b = new SecureEndpoint({ staticKey: kb, peers: [{ publicKey: ka.publicKey }] });
  const aPeer = peerIdOf(kb.publicKey);
  const bPeer = peerIdOf(ka.publicKey);
  handshake(a, b, aPeer, 0);
  return { a, b, aPeer, bPeer };
}

function handshake(a: SecureEndpoint, b: SecureEndpoint, aPeer: string, now: number): void {
  const r = b.handleDatagram(a.connect(aPeer, B_ADDR, now), A_ADDR, now);
  if (r.kind !== 'reply') throw new Error(`handshake: expected a response, got ${r.kind}`);
  a.handleDatagram(r.data, B_ADDR, now);
  const confirm = a.pollTransmit();
  if (!confirm || b.handleDatagram(confirm.data, A_ADDR, now).kind !== 'handled') throw new Error('handshake: no confirmation');
  while (a.pollEvent() || b.pollEvent());
}

/** Runs `step` in batches until `SECONDS` elapse; returns operations per second. */
function measure(step: () => void): number {
  for (let i = 0; i < 2000; i++) step(); // warm-up
  let n = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  let t = start;
  while (t < end) {
    for (let i = 0; i < 500; i++) step();
    n += 500;
    t = performance.now();
  }
  return n / ((t - start) / 1000);
}

const payload = randomBytes(SIZE);

const sealOpen = (() => {
  const { a, b, aPeer } = establishedPair();
  return measure(() => {
    const d = a.seal(aPeer, payload, 1)!;
    const r = b.handleDatagram(d, A_ADDR, 1);
    if (r.kind !== 'data') throw new Error(`open failed: ${r.kind}`);
  });
})();

const sealOnly = (() => {
  const { a, aPeer } = establishedPair();
  return measure(() => { a.seal(aPeer, payload, 1); });
})();

const openOnly = (() => {
  // Pre-seal a pool; a fresh pair per pass keeps every counter fresh for the replay window.
  const POOL = 200_000;
  let pair = establishedPair();
  let pool: Uint8Array[] = [];
  let i = 0;
  const refill = () => {
    pair = establishedPair();
    pool = [];
    for (let k = 0; k < POOL; k++) pool.push(pair.a.seal(pair.aPeer, payload, 1)!);
    i = 0;
  };
  refill();
  let n = 0;
  let elapsed = 0;
  while (elapsed < SECONDS * 1000) {
    const start = performance.now();
    for (; i < pool.length; i++) pair.b.handleDatagram(pool[i]!, A_ADDR, 1);
    elapsed += performance.now() - start;
    n += pool.length;
    refill();
  }
  return n / (elapsed / 1000);
})();

const nodeCryptoSealOpen = (() => {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const aad = Buffer.alloc(16);
  let counter = 0;
  return measure(() => {
    nonce.writeUInt32LE(counter++ >>> 0, 4);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: payload.length });
    const body = Buffer.concat([c.update(payload), c.final()]);
    const tag = c.getAuthTag();
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAAD(aad, { plaintextLength: body.length });
    d.setAuthTag(tag);
    d.update(body);
    d.final();
  });
})();

const handshakes = (() => {
  const { a, b, aPeer } = establishedPair();
  let now = 0;
  // minInitiationIntervalMs (20 ms) applies per peer on virtual time, so advance the clock.
  return measure(() => { now += 25; handshake(a, b, aPeer, now); });
})();

const cpu = os.cpus()[0]?.model ?? 'unknown';
let nproc = os.availableParallelism();
try { nproc = Number(execSync('nproc').toString().trim()); } catch { /* os value stands */ }
const date = new Date().toISOString();
const round = (x: number) => Math.round(x);
const result = {
  bench: 'crypto',
  date,
  machine: { nproc, cpu, node: process.version, loadavg: os.loadavg().map((x) => +x.toFixed(2)) },
  params: { datagramBytes: SIZE, secondsPerMeasurement: SECONDS, overheadBytes: SecureEndpoint.OVERHEAD },
  results: {
    sealOpenPacketsPerSecond: round(sealOpen),
    sealOpenGbitPerSecond: +((sealOpen * SIZE * 8) / 1e9).toFixed(2),
    sealPacketsPerSecond: round(sealOnly),
    openPacketsPerSecond: round(openOnly),
    nodeCryptoSealOpenPacketsPerSecond: round(nodeCryptoSealOpen),
    handshakesPerSecond: round(handshakes),
  },
};
const md = `# Crypto benchmark (${date})

Machine: ${nproc} cores, ${cpu}, Node ${process.version}, load ${result.machine.loadavg.join(' ')} (shared box: expect noise).
Datagram payload ${SIZE} bytes, +${SecureEndpoint.OVERHEAD} bytes protection overhead; ${SECONDS} s per measurement, one core.

| measurement | per second |
|---|---|
| seal + open (SecureEndpoint pair, sodium-native) | ${result.results.sealOpenPacketsPerSecond} packets (${result.results.sealOpenGbitPerSecond} Gbit/s of payload) |
| seal only | ${result.results.sealPacketsPerSecond} packets |
| open only (handleDatagram) | ${result.results.openPacketsPerSecond} packets |
| seal + open, node:crypto createCipheriv (reference) | ${result.results.nodeCryptoSealOpenPacketsPerSecond} packets |
| full handshakes (initiation, response, confirmation; both sides on one core) | ${result.results.handshakesPerSecond} |
`;
mkdirSync(args.out, { recursive: true });
const stamp = date.slice(0, 10);
writeFileSync(`${args.out}/crypto-${stamp}.json`, JSON.stringify(result, null, 2) + '\n');
writeFileSync(`${args.out}/crypto-${stamp}.md`, md);
process.stdout.write(md);
