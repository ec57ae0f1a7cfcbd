// Packet-protection benchmark, per cipher and AEAD backend (AES-256-GCM: OpenSSL addon, node:crypto
// fallback; ChaCha20-Poly1305: OpenSSL addon, sodium-native fallback): the bare AEAD's seal and
// open of 1400-byte packets per core, then seal+open, seal-only and open-only through a
// SecureEndpoint pair one datagram at a time (sealRun of one in a send queue, a receive batch of one),
// and in the gateway's runs of 64;
// ChaCha20-Poly1305 through node:crypto's createCipheriv for reference, and full handshakes per
// second per cipher.
// Run under the bench lock: `flock /tmp/longhaul-bench.lock npm run bench:crypto [-- --seconds 3]`.
// Writes bench/results/crypto-<date>.json and .md.
import { execSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { PACKET_CIPHERS, type PacketAead, type PacketCipher } from '../crypto/aead.ts';
import { REFERENCE_AEAD } from '../crypto/aead-backend.ts';
import { loadOpensslAead } from '../crypto/aead-openssl.ts';
import { generateStaticKeyPair } from '../crypto/keys.ts';
import { peerIdOf, SecureEndpoint } from '../crypto/secure-endpoint.ts';
import { benchCommand, positiveIntArg, positiveNumberArg } from './args.ts';

const args = benchCommand(
  'bench:crypto',
  'packet protection per cipher and AEAD backend: seal/open per packet, SecureEndpoint pairs, handshakes per second; writes OUT/crypto-<date>.{json,md}',
)
  // Per measurement; 23 measurements (four backends), bounded.
  .option('--seconds <s>', 'seconds per measurement (at most 30)', positiveNumberArg, 2)
  .option('--size <bytes>', 'packet size', positiveIntArg, 1400)
  .option('--out <dir>', 'results directory', 'bench/results')
  .parse()
  .opts<{ seconds: number; size: number; out: string }>();
const SECONDS = Math.min(args.seconds, 30);
const SIZE = args.size;
const A_ADDR = '198.18.1.2:4500';
const B_ADDR = '198.18.2.2:4500';

function establishedPair(aead: PacketAead | PacketCipher): { a: SecureEndpoint; b: SecureEndpoint; aPeer: string; bPeer: string } {
  const ka = generateStaticKeyPair();
  const kb = generateStaticKeyPair();
  const crypto = typeof aead === 'string' ? { cipher: aead } : { aead };
  const a = new SecureEndpoint({ staticKey: ka, peers: [{ publicKey: kb.publicKey }], ...crypto });
  const b = new SecureEndpoint({ staticKey: kb, peers: [{ publicKey: ka.publicKey }], ...crypto });
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

/** CPU seconds of this process (user + system): on a shared box, time spent descheduled is not ours. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs `step` in batches until `SECONDS` of CPU time elapse; returns operations per CPU second. */
function measure(step: () => void): number {
  for (let i = 0; i < 2000; i++) step(); // warm-up
  let n = 0;
  const start = cpuSeconds();
  const end = start + SECONDS;
  let t = start;
  while (t < end) {
    for (let i = 0; i < 500; i++) step();
    n += 500;
    t = cpuSeconds();
  }
  return n / (t - start);
}

const payload = randomBytes(SIZE);
const round = (x: number) => Math.round(x);

const HEADER = 16;

/** The bare AEAD: seal into one packet buffer; open a sealed packet into a separate buffer. */
function bareAead(aead: PacketAead): { seal: number; open: number } {
  const key = aead.create(randomBytes(32));
  const packet = Buffer.alloc(HEADER + SIZE + 16);
  let counter = 0;
  const seal = measure(() => {
    aead.seal(key, counter++, packet, HEADER, payload);
  });
  aead.seal(key, 7, packet, HEADER, payload);
  const out = Buffer.alloc(SIZE);
  const open = measure(() => {
    if (aead.open(key, 7, packet, HEADER, out) !== SIZE) throw new Error('bare open failed');
  });
  aead.free(key);
  return { seal, open };
}

/**
 * SecureEndpoint pair, one datagram at a time: sealRun of one datagram in place in a send queue
 * (as the gateway seals, with runs of one), and handleDatagram + openDeferred of a receive batch of one.
 */
function endpoints(aead: PacketAead): { sealOpen: number; seal: number; open: number } {
  // Datagrams go back to back into a queue the size of the gateway's (2 MiB), from its start again when full.
  const queue = Buffer.allocUnsafe(2 * 1024 * 1024);
  const datagram = SIZE + SecureEndpoint.OVERHEAD;
  const lens = new Int32Array([datagram]);
  for (let at = 0; at + datagram <= queue.length; at += datagram) queue.set(payload, at + SecureEndpoint.HEADER_ROOM);
  let at = 0;
  const nextAt = (): number => {
    at = at + 2 * datagram > queue.length ? 0 : at + datagram;
    return at;
  };
  // Sealing in place overwrites the slot's plaintext with ciphertext: the cost does not depend on the bytes.
  const received = Buffer.allocUnsafe(datagram);
  let delivered = 0;
  const deliver = (): void => {
    delivered++;
  };
  const sealOpen = (() => {
    const { a, b, aPeer } = establishedPair(aead);
    return measure(() => {
      const start = nextAt();
      a.sealRun(aPeer, queue, lens, 0, 1, start, 1);
      received.set(queue.subarray(start, start + datagram)); // the kernel's copy
      const before = delivered;
      b.handleDatagram(received, A_ADDR, 1);
      b.openDeferred(deliver);
      if (delivered !== before + 1) throw new Error('open failed');
    });
  })();
  const seal = (() => {
    const { a, aPeer } = establishedPair(aead);
    return measure(() => {
      a.sealRun(aPeer, queue, lens, 0, 1, nextAt(), 1);
    });
  })();
  const open = (() => {
    // Pre-seal a pool; a fresh pair per pass keeps every counter fresh for the replay window.
    const POOL = 100_000;
    let pair = establishedPair(aead);
    let pool: Uint8Array[] = [];
    let i = 0;
    const refill = () => {
      pair = establishedPair(aead);
      pool = [];
      for (let k = 0; k < POOL; k++) pool.push(pair.a.seal(pair.aPeer, payload, 1)!);
      i = 0;
    };
    refill();
    let n = 0;
    let elapsed = 0;
    while (elapsed < SECONDS) {
      const start = cpuSeconds();
      for (; i < pool.length; i++) {
        pair.b.handleDatagram(pool[i]!, A_ADDR, 1);
        pair.b.openDeferred(deliver);
      }
      elapsed += cpuSeconds() - start;
      n += pool.length;
      refill();
    }
    return n / elapsed;
  })();
  return { sealOpen, seal, open };
}

/**
 * The gateway's batched path: SecureEndpoint.sealRun over a send queue's run of RUN datagrams,
 * and handleDatagram + openDeferred over a receive batch of RUN (packets per second).
 */
const RUN = 64;
function endpointRuns(aead: PacketAead): { seal: number; open: number } {
  const datagram = SIZE + SecureEndpoint.OVERHEAD;
  const queue = Buffer.alloc(RUN * datagram);
  const lens = new Int32Array(RUN).fill(datagram);
  for (let k = 0; k < RUN; k++) queue.set(payload, k * datagram + SecureEndpoint.HEADER_ROOM);
  const seal = (() => {
    const { a, aPeer } = establishedPair(aead);
    return (
      RUN *
      measure(() => {
        a.sealRun(aPeer, queue, lens, 0, RUN, 0, 1);
      })
    );
  })();
  const open = (() => {
    // Pre-sealed batches; a fresh pair per pass keeps every counter fresh for the replay window.
    const BATCHES = 1500;
    let pair = establishedPair(aead);
    let pool: Buffer[] = [];
    const refill = () => {
      pair = establishedPair(aead);
      pool = [];
      for (let k = 0; k < BATCHES; k++) {
        const batch = Buffer.alloc(RUN * datagram);
        for (let j = 0; j < RUN; j++) batch.set(payload, j * datagram + SecureEndpoint.HEADER_ROOM);
        pair.a.sealRun(pair.aPeer, batch, lens, 0, RUN, 0, 1);
        pool.push(batch);
      }
    };
    let n = 0;
    let elapsed = 0;
    let delivered = 0;
    const deliver = (): void => {
      delivered++;
    };
    while (elapsed < SECONDS) {
      refill();
      const start = cpuSeconds();
      for (const batch of pool) {
        for (let j = 0; j < RUN; j++) pair.b.handleDatagram(batch.subarray(j * datagram, (j + 1) * datagram), A_ADDR, 1);
        pair.b.openDeferred(deliver);
      }
      elapsed += cpuSeconds() - start;
      n += pool.length * RUN;
    }
    if (delivered !== n) throw new Error(`deferred open delivered ${delivered} of ${n}`);
    return n / elapsed;
  })();
  return { seal, open };
}

const openssl = loadOpensslAead();
const backends: PacketAead[] = PACKET_CIPHERS.flatMap((c) => (openssl.ok ? [openssl.aeads[c], REFERENCE_AEAD[c]] : [REFERENCE_AEAD[c]]));
if (!openssl.ok) process.stderr.write(`${openssl.error}: measuring the fallbacks only\n`);
const perBackend = backends.map((aead) => ({
  cipher: aead.cipher,
  backend: aead.name,
  bare: bareAead(aead),
  endpoint: endpoints(aead),
  runs: endpointRuns(aead),
}));

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

const handshakes = PACKET_CIPHERS.map((cipher) => {
  const { a, b, aPeer } = establishedPair(cipher);
  let now = 0;
  // minInitiationIntervalMs (20 ms) applies per peer on virtual time, so advance the clock.
  return {
    cipher,
    perSecond: round(
      measure(() => {
        now += 25;
        handshake(a, b, aPeer, now);
      }),
    ),
  };
});

const cpu = os.cpus()[0]?.model ?? 'unknown';
let nproc = os.availableParallelism();
try {
  nproc = Number(execSync('nproc').toString().trim());
} catch {
  /* os value stands */
}
const date = new Date().toISOString();
const micros = (perSecond: number) => +(1e6 / perSecond).toFixed(3);
const result = {
  bench: 'crypto',
  date,
  machine: { nproc, cpu, node: process.version, openssl: process.versions.openssl, loadavg: os.loadavg().map((x) => +x.toFixed(2)) },
  params: { datagramBytes: SIZE, secondsPerMeasurement: SECONDS, overheadBytes: SecureEndpoint.OVERHEAD },
  results: {
    backends: perBackend.map((b) => ({
      cipher: b.cipher,
      backend: b.backend,
      bareSealPacketsPerSecond: round(b.bare.seal),
      bareSealMicrosPerPacket: micros(b.bare.seal),
      bareOpenPacketsPerSecond: round(b.bare.open),
      bareOpenMicrosPerPacket: micros(b.bare.open),
      sealOpenPacketsPerSecond: round(b.endpoint.sealOpen),
      sealOpenGbitPerSecond: +((b.endpoint.sealOpen * SIZE * 8) / 1e9).toFixed(2),
      sealPacketsPerSecond: round(b.endpoint.seal),
      sealMicrosPerPacket: micros(b.endpoint.seal),
      openPacketsPerSecond: round(b.endpoint.open),
      openMicrosPerPacket: micros(b.endpoint.open),
      runSealPacketsPerSecond: round(b.runs.seal),
      runSealMicrosPerPacket: micros(b.runs.seal),
      runOpenPacketsPerSecond: round(b.runs.open),
      runOpenMicrosPerPacket: micros(b.runs.open),
    })),
    nodeCryptoSealOpenPacketsPerSecond: round(nodeCryptoSealOpen),
    handshakesPerSecond: handshakes,
  },
};
const rows = result.results.backends
  .map(
    (b) =>
      `| ${b.cipher} | ${b.backend} | ${b.bareSealPacketsPerSecond} (${b.bareSealMicrosPerPacket} us) | ${b.bareOpenPacketsPerSecond} (${b.bareOpenMicrosPerPacket} us) | ` +
      `${b.sealPacketsPerSecond} (${b.sealMicrosPerPacket} us) | ${b.openPacketsPerSecond} (${b.openMicrosPerPacket} us) | ` +
      `${b.sealOpenPacketsPerSecond} (${b.sealOpenGbitPerSecond} Gbit/s) | ${b.runSealPacketsPerSecond} (${b.runSealMicrosPerPacket} us) | ${b.runOpenPacketsPerSecond} (${b.runOpenMicrosPerPacket} us) |`,
  )
  .join('\n');
const md = `# Crypto benchmark (${date})

Machine: ${nproc} cores, ${cpu}, Node ${process.version} (OpenSSL ${process.versions.openssl}), load ${result.machine.loadavg.join(' ')} (shared box: expect noise).
Datagram payload ${SIZE} bytes, +${SecureEndpoint.OVERHEAD} bytes protection overhead; ${SECONDS} CPU seconds per measurement, one core.
Packets per CPU second (CPU microseconds per packet): time the process was not running is not counted. "bare": the backend's seal / open (into a separate buffer) alone;
"endpoint": SecureEndpoint.sealRun of one datagram in place in a send queue / handleDatagram + openDeferred of a receive batch of one, one AEAD call per packet;
"runs": sealRun over a send queue's run of ${RUN} datagrams / handleDatagram + openDeferred over a receive batch of ${RUN}, one AEAD call per run
(opened out of place into the endpoint's plaintext slab, as the gateway runs it).

| cipher | AEAD backend | bare seal | bare open | endpoint seal | endpoint open | endpoint seal + open | runs: seal | runs: open |
|---|---|---|---|---|---|---|---|---|
${rows}

| reference | per second |
|---|---|
| ChaCha20-Poly1305 seal + open, node:crypto createCipheriv per packet | ${result.results.nodeCryptoSealOpenPacketsPerSecond} packets |
${handshakes.map((h) => `| full handshakes, ${h.cipher} (initiation, response, confirmation; both sides on one core) | ${h.perSecond} |`).join('\n')}
`;
mkdirSync(args.out, { recursive: true });
const stamp = date.slice(0, 10);
writeFileSync(`${args.out}/crypto-${stamp}.json`, `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(`${args.out}/crypto-${stamp}.md`, md);
process.stdout.write(md);
