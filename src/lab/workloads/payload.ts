// Benchmark payloads: `random` (incompressible) and `vm` (a synthetic VM memory image).
// Both are deterministic from a seed, generated in 1 MiB chunks on demand (never the whole
// image in memory) and fast enough (>1 GB/s) not to be what a benchmark measures.
//
// The `vm` image, in 4 KiB pages. Memory studies of server VMs (and the report's own
// figure: 1 GB migrated in 22.9 s over 100 Mbit/s implies >3x) find roughly a third of
// pages zero, a third low-entropy (text, heap structures) and the rest high-entropy
// (already-compressed files, crypto material, media). The default mix:
//   zero        35%  never-touched or freed memory: all zero bytes
//   text        20%  log lines, prose, key=value config: ~3x per page with zstd -1, ~2x with lz4
//   structured  20%  arrays of 64-byte records (pointers, ids, timestamps, small ints): ~4x zstd, ~2.3x lz4
//   random      25%  AES-CTR keystream: incompressible
// Measured on 64-256 KiB blocks, the whole image compresses 2.9x with zstd -1 and 2.5x with lz4
// (the payload test checks the ratio stays in that band). Classes come in runs of RUN_PAGES pages (32 KiB) because
// real memory is clustered (a freed region, a page-cache file), so some 64-256 KiB
// compression blocks are all-random and exercise the codec's skip-what-does-not-shrink rule.
// Text and structured pages are 4 KiB windows at seeded offsets into 4 MiB arenas generated
// once per seed, so two pages are rarely byte-identical (no free dedup), yet each page has the
// internal redundancy of its kind.

import { createCipheriv, createHash } from 'node:crypto';

export const PAGE_SIZE = 4096;
/** Pages per generated chunk: 1 MiB chunks amortise the per-chunk cipher set-up. */
export const CHUNK_PAGES = 256;
export const CHUNK_SIZE = PAGE_SIZE * CHUNK_PAGES;
/** Page classes come in runs this long (pages), as real memory is clustered. */
export const RUN_PAGES = 8;
const ARENA_SIZE = 4 * 1024 * 1024;

export type PayloadKind = 'random' | 'vm';
export const PAYLOAD_KINDS: readonly PayloadKind[] = ['random', 'vm'];
export type PageClass = 'zero' | 'text' | 'structured' | 'random';

export interface VmMix {
  zero: number;
  text: number;
  structured: number;
  random: number;
}

export const DEFAULT_VM_MIX: VmMix = { zero: 0.35, text: 0.2, structured: 0.2, random: 0.25 };

export const VM_IMAGE_DOC = `The \`vm\` payload is a deterministic synthetic VM memory image (seeded), in 4 KiB pages:
35% zero pages, 20% text-like pages (log lines, prose, config; ~3x with zstd -1), 20% structured
pages (arrays of 64-byte records: pointers, ids, timestamps, small integers; ~4x) and 25% random
pages (incompressible). Classes come in runs of 8 pages (32 KiB), as real memory is clustered.
The whole image compresses 2.9x with zstd -1 and 2.5x with lz4 on 64-256 KiB blocks.
\`random\` is incompressible throughout. Generated at >3 GB/s, never held whole in memory.`;

// Class codes in the per-run lookup (small ints keep the hot loop monomorphic).
const ZERO = 0;
const TEXT = 1;
const STRUCTURED = 2;
const RANDOM = 3;
const CLASS_NAMES: readonly PageClass[] = ['zero', 'text', 'structured', 'random'];

/** murmur3 finalizer: a cheap, well-mixed 32-bit hash for per-page decisions. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

function hash2(seed: number, a: number, b: number): number {
  return mix32(mix32(seed ^ Math.imul(a, 0x9e3779b1)) ^ Math.imul(b + 0x632be5ab, 0x85ebca77));
}

/** mulberry32: seeded PRNG for building the arenas (not on the hot path); test fixtures share it. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cipherKey(seed: number, label: string): Buffer {
  return createHash('sha256').update(`longhaul-payload:${label}:${seed}`).digest().subarray(0, 16);
}

/** 16-byte CTR IV: (stream, chunk) in the high words, block counter starting at 0 below. */
function chunkIv(stream: number, chunkIndex: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(stream >>> 0, 0);
  iv.writeUInt32BE(Math.floor(chunkIndex / 4294967296), 4);
  iv.writeUInt32BE(chunkIndex >>> 0, 8);
  return iv;
}

const ZEROS = Buffer.alloc(CHUNK_SIZE);

function keystream(key: Buffer, stream: number, chunkIndex: number, length: number): Buffer {
  const c = createCipheriv('aes-128-ctr', key, chunkIv(stream, chunkIndex));
  return c.update(ZEROS.subarray(0, length));
}

// ---- arenas: the material text and structured pages are cut from ----

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have ' +
  'an they you were her she there been one all we their has would when if so no will more can out said ' +
  'request response server client connection timeout retry error warning info debug user session token ' +
  'cache memory disk volume block page buffer queue worker thread process service cluster node replica ' +
  'migration snapshot backup storage network packet latency bandwidth route gateway tunnel database ' +
  'table index query transaction commit rollback lock schema record field value config module handler'
).split(' ');
const LEVELS = ['INFO ', 'INFO ', 'INFO ', 'DEBUG', 'WARN ', 'ERROR'];
const COMPONENTS = ['http', 'db', 'auth', 'sched', 'cache', 'iscsi', 'vmms', 'net', 'storage', 'w3svc'];
const PATHS = ['/api/v1/items/', '/login', '/static/img/', '/orders/', '/search?q=', '/health', '/cart/'];

function textArena(seed: number): Buffer {
  const rnd = prng(seed ^ 0x7e57);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  // Zipf-like word choice: frequent words dominate, as in real text.
  const word = () => WORDS[Math.floor(WORDS.length * rnd() * rnd())]!;
  const parts: string[] = [];
  let length = 0;
  let clock = 1_700_000_000_000 + Math.floor(rnd() * 1e9);
  // Log messages repeat from a small set, as real logs do; prose and config lines vary more.
  const messages: string[] = [];
  for (let m = 0; m < 48; m++) {
    const n = 3 + Math.floor(rnd() * 6);
    const msg: string[] = [];
    for (let i = 0; i < n; i++) msg.push(word());
    messages.push(msg.join(' '));
  }
  while (length < ARENA_SIZE + PAGE_SIZE) {
    let line: string;
    const kind = rnd();
    clock += Math.floor(rnd() * 40);
    if (kind < 0.75) {
      line =
        `${new Date(clock).toISOString()} ${pick(LEVELS)} [${pick(COMPONENTS)}-${Math.floor(rnd() * 4)}] ` +
        `${pick(messages)} ${pick(PATHS)}${Math.floor(rnd() * 1000)} status=${rnd() < 0.9 ? 200 : 503} ` +
        `took=${Math.floor(rnd() * 40)}ms\n`;
    } else if (kind < 0.9) {
      const n = 8 + Math.floor(rnd() * 20);
      const msg: string[] = [];
      for (let i = 0; i < n; i++) msg.push(word());
      line = `${msg.join(' ')}.\n`;
    } else {
      line = `${pick(COMPONENTS)}.${word()}.${word()} = ${Math.floor(rnd() * 65536)}\n`;
    }
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, ARENA_SIZE + PAGE_SIZE);
}

function structuredArena(seed: number): Buffer {
  const rnd = prng(seed ^ 0x57c7);
  const arena = Buffer.alloc(ARENA_SIZE + PAGE_SIZE);
  const sizes = [64, 128, 256, 512, 4096];
  let pointer = 0x7f3a_0000_0000 + Math.floor(rnd() * 0xffff) * 0x1000;
  let id = Math.floor(rnd() * 1e6);
  let stamp = 1_700_000_000_000_000 + Math.floor(rnd() * 1e9);
  for (let off = 0; off + 64 <= arena.length; off += 64) {
    pointer += 64 * (1 + Math.floor(rnd() * 4));
    stamp += Math.floor(rnd() * 4096);
    arena.writeBigUInt64LE(BigInt(pointer), off);
    arena.writeUInt32LE(id++ >>> 0, off + 8);
    arena.writeUInt16LE(Math.floor(rnd() * 8), off + 12);
    arena.writeUInt16LE(rnd() < 0.7 ? 0x11 : 0x10, off + 14);
    arena.writeBigUInt64LE(BigInt(stamp), off + 16);
    arena.writeUInt32LE(1 + Math.floor(rnd() * 3), off + 24);
    arena.writeUInt32LE(sizes[Math.floor(rnd() * sizes.length)]!, off + 28);
    // Bytes 32..63: a back-pointer and a few small counters; the rest stays zero.
    arena.writeBigUInt64LE(BigInt(pointer - 64 * Math.floor(rnd() * 64)), off + 32);
    if (rnd() < 0.5) arena.writeUInt16LE(Math.floor(rnd() * 256), off + 40);
  }
  return arena;
}

/** Cumulative class thresholds as 32-bit integers, compared against a run's hash. */
function thresholds(mix: VmMix): [number, number, number] {
  const total = mix.zero + mix.text + mix.structured + mix.random;
  if (!(total > 0) || [mix.zero, mix.text, mix.structured, mix.random].some((x) => x < 0)) {
    throw new RangeError('VmMix fractions must be non-negative with a positive sum');
  }
  const scale = 4294967296 / total;
  return [mix.zero * scale, (mix.zero + mix.text) * scale, (mix.zero + mix.text + mix.structured) * scale];
}

/** One deterministic VM memory image (for a seed and mix); pages are generated on demand. */
export class VmImage {
  readonly seed: number;
  readonly mix: VmMix;
  readonly #limits: [number, number, number];
  readonly #key: Buffer;
  readonly #text: Buffer;
  readonly #structured: Buffer;

  constructor(seed = 1, mix: VmMix = DEFAULT_VM_MIX) {
    this.seed = seed >>> 0;
    this.mix = mix;
    this.#limits = thresholds(mix);
    this.#key = cipherKey(this.seed, 'vm');
    this.#text = textArena(this.seed);
    this.#structured = structuredArena(this.seed);
  }

  #classCode(pageIndex: number, version: number): number {
    const h = hash2(this.seed, Math.floor(pageIndex / RUN_PAGES), version);
    const [a, b, c] = this.#limits;
    return h < a ? ZERO : h < b ? TEXT : h < c ? STRUCTURED : RANDOM;
  }

  pageClass(pageIndex: number, version = 0): PageClass {
    return CLASS_NAMES[this.#classCode(pageIndex, version)]!;
  }

  /**
   * Fill `out` (a multiple of PAGE_SIZE, at most CHUNK_SIZE) with pages
   * chunkIndex*CHUNK_PAGES... of image `version` (a later version stands for the same memory
   * rewritten: same mix, new content, used for re-sent dirty pages).
   */
  fillChunk(chunkIndex: number, out: Buffer, version = 0): void {
    const pages = out.length / PAGE_SIZE;
    if (!Number.isInteger(pages) || pages > CHUNK_PAGES) throw new RangeError('chunk must be whole pages, at most CHUNK_SIZE');
    const first = chunkIndex * CHUNK_PAGES;
    const codes = new Uint8Array(pages);
    let randomPages = 0;
    for (let i = 0; i < pages; i++) {
      const code = this.#classCode(first + i, version);
      codes[i] = code;
      if (code === RANDOM) randomPages++;
    }
    const keys = randomPages > 0 ? keystream(this.#key, version, chunkIndex, randomPages * PAGE_SIZE) : ZEROS;
    let keyOffset = 0;
    const span = ARENA_SIZE / 8;
    for (let i = 0; i < pages; i++) {
      const at = i * PAGE_SIZE;
      const code = codes[i]!;
      if (code === ZERO) {
        out.fill(0, at, at + PAGE_SIZE);
      } else if (code === RANDOM) {
        keys.copy(out, at, keyOffset, keyOffset + PAGE_SIZE);
        keyOffset += PAGE_SIZE;
      } else {
        const from = (hash2(this.seed ^ 0x5bd1e995, first + i, version) % span) * 8;
        (code === TEXT ? this.#text : this.#structured).copy(out, at, from, from + PAGE_SIZE);
      }
    }
  }
}

export interface PayloadOptions {
  seed?: number;
  /** Distinguishes rewrites of the same memory (migration rounds); 0 for the first copy. */
  version?: number;
  /** Start at this page of the image (whole pages). */
  firstPage?: number;
  mix?: VmMix;
  /** Reuse an image (its arenas take ~100 ms to build). */
  image?: VmImage;
}

/**
 * A stream of `bytes` bytes of a payload, handed out in fresh chunks of up to 1 MiB
 * (fresh so a socket may keep them queued). `next()` returns null at the end.
 */
/** What a session sends a segment from: its length, then its bytes chunk by chunk. */
export interface ChunkSource {
  readonly bytes: number;
  next(): Buffer | null;
}

/**
 * A payload generated whole before a run's clock starts, so the client spends the run writing
 * (as an application would) instead of competing with the gateways for the lab's cores:
 * generating costs ~2 CPU s per GiB here, about what a gateway spends moving it.
 */
export class PreparedPayload implements ChunkSource {
  readonly bytes: number;
  readonly #chunks: Array<Buffer | null> = [];
  #index = 0;

  constructor(source: PayloadSource) {
    this.bytes = source.bytes;
    let chunk: Buffer | null;
    while ((chunk = source.next())) this.#chunks.push(chunk);
  }

  /** Each chunk once: the payload lets go of it (the socket holds it while it is queued). */
  next(): Buffer | null {
    if (this.#index >= this.#chunks.length) return null;
    const chunk = this.#chunks[this.#index] ?? null;
    this.#chunks[this.#index++] = null;
    return chunk;
  }
}

export class PayloadSource implements ChunkSource {
  readonly kind: PayloadKind;
  readonly bytes: number;
  #produced = 0;
  #chunkIndex: number;
  readonly #version: number;
  readonly #image: VmImage | undefined;
  readonly #randomKey: Buffer;

  constructor(kind: PayloadKind, bytes: number, options: PayloadOptions = {}) {
    if (!(bytes >= 0) || !Number.isSafeInteger(bytes)) throw new RangeError(`bad payload size ${bytes}`);
    const seed = (options.seed ?? 1) >>> 0;
    const firstPage = options.firstPage ?? 0;
    if (firstPage % CHUNK_PAGES !== 0) throw new RangeError('firstPage must be a multiple of CHUNK_PAGES');
    this.kind = kind;
    this.bytes = bytes;
    this.#version = options.version ?? 0;
    this.#chunkIndex = firstPage / CHUNK_PAGES;
    this.#image = kind === 'vm' ? (options.image ?? new VmImage(seed, options.mix)) : undefined;
    this.#randomKey = cipherKey(seed, 'random');
  }

  get remaining(): number {
    return this.bytes - this.#produced;
  }

  next(): Buffer | null {
    const left = this.bytes - this.#produced;
    if (left <= 0) return null;
    const length = Math.min(CHUNK_SIZE, left);
    let chunk: Buffer;
    if (this.#image) {
      // Generate whole pages, then trim a partial last page.
      chunk = Buffer.allocUnsafe(Math.ceil(length / PAGE_SIZE) * PAGE_SIZE);
      this.#image.fillChunk(this.#chunkIndex, chunk, this.#version);
      if (chunk.length !== length) chunk = chunk.subarray(0, length);
    } else {
      chunk = keystream(this.#randomKey, this.#version, this.#chunkIndex, length);
    }
    this.#chunkIndex++;
    this.#produced += length;
    return chunk;
  }
}

export function isPayloadKind(x: string): x is PayloadKind {
  return (PAYLOAD_KINDS as readonly string[]).includes(x);
}
