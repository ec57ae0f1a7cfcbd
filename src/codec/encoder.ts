// Application bytes -> framed compression blocks. Sans-IO: the gateway passes whatever the
// socket had ready and writes the result into a transport stream. Never holds data back
// to fill a block, so interactive traffic gains no latency.

import { availableParallelism, loadavg } from 'node:os';
import { performance as nodePerformance } from 'node:perf_hooks';
import { AdaptivePolicy, ByteWindow, OUTPUT_WINDOW_MS } from './adaptive.ts';
import { ARBITER_WINDOW_MS, CompressionArbiter, type LinkWindow } from './arbiter.ts';
import type { PathMemory } from './path-memory.ts';
import type { Rung } from './adaptive.ts';
import { BACKOFF_FAILURES_BEFORE_PAUSE, CompressionBackoff } from './backoff.ts';
import { EntropySplitter } from './entropy-split.ts';
import {
  CODEC_LZ4,
  CODEC_NONE,
  CODEC_ZSTD,
  DEFAULT_MAX_BLOCK_SIZE,
  MAX_CONFIGURABLE_BLOCK_SIZE,
  headerLength,
  writeBlockHeader,
} from './block-format.ts';
import type { CodecId } from './block-format.ts';
import { codecId, compressWith } from './codecs.ts';
import { isLentCompressed, releaseCompressed } from './zstd-native.ts';
import type { CodecSetting } from './codecs.ts';
import { CodecStats } from './stats.ts';

export type CompressionMode = 'auto' | 'lz4' | 'zstd' | 'none';
export const COMPRESSION_MODES: readonly CompressionMode[] = ['auto', 'lz4', 'zstd', 'none'];

/** The 80% rule: a block whose compressed payload is larger than this fraction of the original goes raw. */
export const MAX_COMPRESSED_FRACTION = 0.8;
/**
 * Blocks shorter than this are sent raw without trying: a keystroke or a small RPC saves a
 * few bytes at best, and zstd's per-call set-up costs more than sending them.
 */
export const MIN_COMPRESS_SIZE = 64;
/** Level for mode 'zstd' (fixed): zstd's default, a good ratio at a few hundred MB/s. */
export const DEFAULT_ZSTD_LEVEL = 3;
/**
 * Blocks are cut at entropy changes (entropy-split.ts) while the setting is zstd at this level
 * or above: the slow-link levels, where the link, not the CPU, is the limit. The cut costs
 * ~15 us per 64 KiB block (measured on the project machine), 5% of zstd 7's time and 20% of
 * zstd 1's, and saves 1.2-4% of zstd 7's output on the vm image depending on where the reads
 * fall (src/codec/entropy-split.ts).
 */
export const SPLIT_MIN_ZSTD_LEVEL = 5;
/**
 * One high-entropy piece in this many is compressed anyway, in case the sampling misjudges a
 * kind of data (e.g. a short random string repeated): a spot check that compresses under the
 * 80% rule turns the raw shortcut off for SHORTCUT_OFF_BYTES.
 */
export const SPOT_CHECK_INTERVAL = 16;
export const SHORTCUT_OFF_BYTES = 8 * 1024 * 1024;

export interface BlockEncoderOptions {
  mode?: CompressionMode;
  /** Largest original size per block; must not exceed the peer decoder's limit. Default 256 KiB. */
  maxBlockSize?: number;
  /** Level for mode 'zstd'. */
  zstdLevel?: number;
  /**
   * Monotonic wall clock in ms (the encoder's output rate); default performance.now. Given
   * without `cpuNow`, it also times the codec (tests).
   */
  now?: () => number;
  /**
   * CPU clock in ms for timing the codec; default this process's CPU time (user + system).
   * CPU, not wall, time: 'auto' accounts for a busy machine once, through the CPU share, not
   * again through codec calls stretched by preemption.
   */
  cpuNow?: () => number;
  /** Shared counters (e.g. one per connection); default a fresh CodecStats. */
  stats?: CodecStats;
  /** Initial link rate for 'auto' (bits/s); update it with setLinkRateBps. */
  linkRateBps?: number;
  /**
   * 'auto': the link now, read once per output window: its estimated rate and the rate the
   * transport is actually sending at (bits/s, 0 while unknown; a gateway's bandwidth estimate and
   * measured send rate). Without it the arbiter (checkAgainstRaw) never sees the link full.
   */
  linkNow?: () => LinkNow;
  /**
   * 'auto': check the model's choice against sending raw by measurement (arbiter.ts; default
   * true). Off, the model alone decides (tests of the model, comparisons).
   */
  checkAgainstRaw?: boolean;
  /**
   * 'auto': the fraction of a core the gateway's thread gets. Default: estimated from the
   * machine's 1-minute load average, min(1, cores / load), re-read once a second (tests and
   * benchmarks fix it for repeatable choices).
   */
  cpuShare?: number;
  cpuMargin?: number;
  /**
   * 'auto': cumulative event-loop times in ms ({ active, idle }, as performance.eventLoopUtilization
   * returns them), read once per output window to measure how busy the gateway's thread is
   * (AdaptivePolicy.observeLoad). Default: this process's event loop when the clocks are real (no
   * `now` given); null turns the measurement off (the modelled margin decides alone).
   */
  loopTimes?: (() => LoopTimes) | null;
  /** Cut blocks at entropy changes at the slow-link zstd levels (default true; false for comparisons). */
  entropySplit?: boolean;
  /** Initial CPU ns the rest of the gateway spends per wire byte; update with setWireCpuNsPerByte. */
  wireCpuNsPerByte?: number;
  ladder?: readonly Rung[];
  /**
   * What the path's other encoders learned (path-memory.ts): the arbiter's standing verdict, and
   * whether the path's recent blocks were incompressible. One per association; default none.
   */
  pathMemory?: PathMemory;
}

export interface LinkNow {
  /** The transport's estimate of the link's rate (bits/s). */
  rateBps: number;
  /** Wire bytes the transport has sent on this link so far (the send rate is taken over each window). */
  sentBytes: number;
}

export interface LoopTimes {
  active: number;
  idle: number;
}

/**
 * A load window longer than this many output windows spans a pause in the data (encode() was
 * not called): its idle time says nothing about the load while data flows, so it is skipped.
 */
const MAX_LOAD_WINDOWS = 4;

/** Windows sampled across a block to class it random-looking (see #looksLikeThePathsFailures): ~4 us per 64 KiB. */
const RANDOM_SAMPLE_WINDOWS = 8;
/** One sampler for every encoder: it keeps no state between calls that matters, and the thread is one. */
const RANDOM_SAMPLER = new EntropySplitter();

function settingName(setting: CodecSetting | null): string {
  return setting === null ? 'none' : setting.codec === 'zstd' ? `zstd:${setting.level}` : setting.codec;
}

interface PendingBlock {
  codec: CodecId;
  original: Uint8Array;
  /** Compressed payload, or null for a raw block (payload = original). */
  payload: Uint8Array | null;
}

export class BlockEncoder {
  readonly stats: CodecStats;
  readonly mode: CompressionMode;
  readonly maxBlockSize: number;
  readonly #fixedSetting: CodecSetting | null;
  readonly #policy: AdaptivePolicy | null;
  /** 'auto': the measured check against sending raw (arbiter.ts), made at the first block; null when off. */
  #arbiter: CompressionArbiter | null = null;
  readonly #checkAgainstRaw: boolean;
  /** 'auto': the link's rate and the send rate now (LinkNow), read once per output window. */
  readonly #linkNow: (() => LinkNow) | null;
  /** The arbiter's windows: source and wire bytes (ms, this.#now()). */
  readonly #arbiterWindow = new ByteWindow(ARBITER_WINDOW_MS);
  /** The last link reading, and when (ms, this.#now()): null before the first block. */
  #lastLink: { sentBytes: number; atMs: number } | null = null;
  readonly #backoff = new CompressionBackoff();
  readonly #pathMemory: PathMemory | null;
  /**
   * Made the first time a slow-link level is in force: most streams never need it, and each
   * holds 1.4 KB (5000 connections: 7 MB per gateway).
   */
  #splitter: EntropySplitter | null = null;
  readonly #entropySplit: boolean;
  #highEntropyPieces = 0;
  /** Bytes of high-entropy pieces still to be compressed rather than sent raw (a spot check compressed). */
  #shortcutOffBytes = 0;
  readonly #now: () => number;
  readonly #cpuNow: () => number;
  /** Duration of the last timedCompress call (a field, so the hot path returns one value). */
  #lastCpuMs = 0;
  /** 'auto' with no fixed cpuShare: when the load average was last read (ms, this.#now()). */
  readonly #shareFromLoad: boolean;
  #lastShareReadMs = -Infinity;
  readonly #loopTimes: (() => LoopTimes) | null;
  /** Loop times and shared codec CPU ms at the last load reading (null: none yet). */
  #lastLoop: LoopTimes | null = null;
  #lastCodecCpuMs = 0;
  /** A first load window has passed (it is not measured). */
  #loadWarm = false;

  constructor(options: BlockEncoderOptions = {}) {
    this.mode = options.mode ?? 'auto';
    this.maxBlockSize = options.maxBlockSize ?? DEFAULT_MAX_BLOCK_SIZE;
    if (!Number.isInteger(this.maxBlockSize) || this.maxBlockSize < 1 || this.maxBlockSize > MAX_CONFIGURABLE_BLOCK_SIZE) {
      throw new RangeError(`maxBlockSize must be an integer in [1, ${MAX_CONFIGURABLE_BLOCK_SIZE}]`);
    }
    this.stats = options.stats ?? new CodecStats();
    this.#now = options.now ?? (() => performance.now());
    this.#cpuNow = options.cpuNow ?? (options.now !== undefined ? options.now : processCpuMs);
    this.#fixedSetting =
      this.mode === 'lz4'
        ? { codec: 'lz4', level: 0 }
        : this.mode === 'zstd'
          ? { codec: 'zstd', level: options.zstdLevel ?? DEFAULT_ZSTD_LEVEL }
          : null;
    this.#entropySplit = options.entropySplit !== false;
    this.#linkNow = options.linkNow ?? null;
    this.#pathMemory = options.pathMemory ?? null;
    this.#checkAgainstRaw = this.mode === 'auto' && options.checkAgainstRaw !== false;
    this.#shareFromLoad = this.mode === 'auto' && options.cpuShare === undefined;
    this.#loopTimes =
      this.mode !== 'auto'
        ? null
        : options.loopTimes !== undefined
          ? options.loopTimes
          : options.now === undefined
            ? () => nodePerformance.eventLoopUtilization()
            : null;
    this.#policy =
      this.mode === 'auto'
        ? new AdaptivePolicy({
            linkRateBps: options.linkRateBps,
            cpuShare: options.cpuShare,
            cpuMargin: options.cpuMargin,
            ladder: options.ladder,
            wireCpuNsPerByte: options.wireCpuNsPerByte,
          })
        : null;
  }

  /** The transport's bandwidth estimate (bits/s); steers the 'auto' choice. */
  setLinkRateBps(bps: number): void {
    this.#policy?.setLinkRateBps(bps);
  }

  /**
   * The gateway's own CPU cost per wire byte (ns: its process CPU time / bytes it sent, codec
   * time excluded); steers 'auto'. A fast pipeline makes 'none' win sooner on fast links.
   */
  setWireCpuNsPerByte(ns: number): void {
    this.#policy?.setWireCpuNsPerByte(ns);
  }

  /**
   * True while blocks are being compressed (a codec is chosen and the back-off is not pausing):
   * only then do larger blocks pay, so only then is it worth gathering reads into them.
   */
  get compressing(): boolean {
    return this.#settingInForce() !== null && !this.#backoff.pausing;
  }

  /**
   * The codec setting new blocks get: the fixed one, or auto's: the model's choice while the
   * arbiter's measurements say compression pays (arbiter.ts), else none.
   */
  #settingInForce(): CodecSetting | null {
    const policy = this.#policy;
    if (!policy) return this.#fixedSetting;
    const arbiter = this.#arbiterFor(policy);
    return arbiter === null || arbiter.current === 'model' ? policy.settingOf(policy.currentRung) : null;
  }

  // Made at the first block, with the link as it is known then (see CompressionArbiter's constructor).
  #arbiterFor(policy: AdaptivePolicy): CompressionArbiter | null {
    if (this.#arbiter === null && this.#checkAgainstRaw) {
      const link = this.#readLink();
      if (link !== null && link.rateBps > 0) policy.setLinkRateBps(link.rateBps);
      const rung = policy.currentRung;
      this.#arbiter = new CompressionArbiter(
        rung !== 0 && policy.cpuKeepsUp(rung) ? 'model' : 'none',
        this.#now(),
        this.#pathMemory,
        this.stats.arbiter,
      );
      policy.setSlowLevelsAllowed(this.#arbiter.slowLevelsAllowed(this.#now()));
    }
    return this.#arbiter;
  }

  /** 'auto': the arbiter's state (null otherwise), for status and tests. */
  get arbiterState(): { current: 'model' | 'none'; trials: number; switches: number; inherited: boolean } | null {
    const a = this.#arbiter;
    return a === null ? null : { current: a.current, trials: a.trials, switches: a.switches, inherited: a.inherited };
  }

  /** The adaptive policy, for status output and tests (null unless mode is 'auto'). */
  get adaptive(): AdaptivePolicy | null {
    return this.#policy;
  }

  /**
   * Frames all of `data` as blocks of at most maxBlockSize and returns them as one buffer
   * (empty for empty input). Does not keep a reference to `data`.
   */
  encode(data: Uint8Array): Uint8Array {
    if (data.length === 0) return new Uint8Array(0);
    const { blocks, total } = this.#encodeBlocks(data);
    const out = new Uint8Array(total);
    let at = 0;
    for (const block of blocks) {
      const payload = block.payload ?? block.original;
      at = writeBlockHeader(out, at, block.codec, block.original.length, payload.length);
      out.set(payload, at);
      at += payload.length;
      if (block.payload !== null) releaseCompressed(block.payload);
    }
    return out;
  }

  /**
   * encode() as a list of parts to send in order (each block's header, then its payload), without
   * copying: a raw block's payload is a view of `data`, which must stay unchanged until the parts
   * are sent. A gateway writes them straight into its stream, saving a copy of every byte (and
   * the allocation behind it) when blocks go raw. A compressed payload may be a view of a pooled
   * buffer: give each part to releaseEncodedPart() once its bytes are copied elsewhere (one never
   * given back is collected like any buffer).
   */
  encodeParts(data: Uint8Array): Uint8Array[] {
    if (data.length === 0) return [];
    const { blocks } = this.#encodeBlocks(data);
    const parts: Uint8Array[] = [];
    for (const block of blocks) {
      const payload = block.payload ?? block.original;
      const header = new Uint8Array(headerLength(block.codec, block.original.length, payload.length));
      writeBlockHeader(header, 0, block.codec, block.original.length, payload.length);
      parts.push(header, payload);
    }
    return parts;
  }

  // The blocks `data` becomes, with the stats and policy bookkeeping of one encode.
  #encodeBlocks(data: Uint8Array): { blocks: PendingBlock[]; total: number } {
    const blocks: PendingBlock[] = [];
    let total = 0;
    const splitter = this.#splitsNow() ? (this.#splitter ??= new EntropySplitter()) : null;
    for (let offset = 0; offset < data.length; offset += this.maxBlockSize) {
      const slice = data.subarray(offset, Math.min(offset + this.maxBlockSize, data.length));
      const pieces = splitter ? splitter.split(slice) : 1;
      let start = 0;
      for (let i = 0; i < pieces; i++) {
        const end = splitter ? splitter.ends[i]! : slice.length;
        const piece = start === 0 && end === slice.length ? slice : slice.subarray(start, end);
        const block = splitter?.highEntropy[i] ? this.#encodeHighEntropy(piece) : this.#encodeBlock(piece);
        const payloadLength = block.payload ? block.payload.length : block.original.length;
        total += headerLength(block.codec, block.original.length, payloadLength) + payloadLength;
        blocks.push(block);
        start = end;
      }
    }
    const s = this.stats.encode;
    s.bytesIn += data.length;
    s.bytesOut += total;
    if (this.#policy) {
      const nowMs = this.#now();
      this.#policy.observeOutput(total, nowMs);
      if (nowMs - this.#lastShareReadMs >= OUTPUT_WINDOW_MS || nowMs < this.#lastShareReadMs) this.#readLoad(this.#policy, nowMs);
      this.#observeWindow(this.#policy, data.length, total, nowMs);
    }
    s.blocks += blocks.length;
    // The choice now in force (not a probe's).
    this.stats.setting = settingName(this.#settingInForce());
    return { blocks, total };
  }

  // The arbiter's windows (ARBITER_WINDOW_MS).
  #observeWindow(policy: AdaptivePolicy, inBytes: number, outBytes: number, nowMs: number): void {
    const w = this.#arbiterWindow;
    // A window much longer than one spans a pause in the data: it says nothing about throughput.
    if (!w.add(inBytes, outBytes, nowMs)) return;
    const link = this.#readLink();
    if (w.closedMs > MAX_LOAD_WINDOWS * w.lengthMs) return;
    if (link !== null && link.rateBps > 0) policy.setLinkRateBps(link.rateBps);
    if (this.#arbiter !== null) {
      this.#arbiter.observeWindow(w.closedIn, w.closedOut, w.closedMs, nowMs, link);
      policy.setSlowLevelsAllowed(this.#arbiter.slowLevelsAllowed(nowMs));
    }
  }

  // The link's estimated rate and the transport's send rate since the last reading (0 at the
  // first reading; null without a link to read), taken over this window: the gateway's
  // once-a-second sample read 0-50 Mbit/s in the first windows of a transfer already filling the
  // link, and sent the lab's mpls runs into a trial of raw that cost them a tenth of their
  // throughput.
  #readLink(): LinkWindow | null {
    const link = this.#linkNow?.();
    if (link === undefined) return null;
    const nowMs = this.#now();
    const last = this.#lastLink;
    this.#lastLink = { sentBytes: link.sentBytes, atMs: nowMs };
    const sendingBps = last !== null && nowMs > last.atMs ? ((link.sentBytes - last.sentBytes) * 8000) / (nowMs - last.atMs) : 0;
    return { rateBps: link.rateBps, sendingBps };
  }

  // Once per output window: the machine's load average (CPU share) and this thread's busy share.
  #readLoad(policy: AdaptivePolicy, nowMs: number): void {
    const elapsed = nowMs - this.#lastShareReadMs;
    this.#lastShareReadMs = nowMs;
    if (this.#shareFromLoad) policy.setCpuShare(cpuShareFromLoad(loadavg()[0] ?? 0, availableParallelism()));
    if (!this.#loopTimes) return;
    const loop = this.#loopTimes();
    const prev = this.#lastLoop;
    // Codec time from the shared counters: every stream's encoder runs on this one thread.
    const codecMs = this.stats.encode.cpuMs - this.#lastCodecCpuMs;
    // Made as doubles (-0) then set: loop times in whole milliseconds would give the object a
    // small-integer shape that the first fractional reading changes (transport/packet.ts newHeader).
    const last = { active: -0, idle: -0 };
    last.active = loop.active;
    last.idle = loop.idle;
    this.#lastLoop = last;
    this.#lastCodecCpuMs = this.stats.encode.cpuMs;
    // No reading before the second window: the first spans the transfer's start (the send
    // backlog filled as fast as the CPU allows, code warming up), whose busy share (~100% in the
    // lab) would keep the slow-link rungs out for seconds of a link-bound transfer.
    if (!prev || !(elapsed > 0) || elapsed > MAX_LOAD_WINDOWS * OUTPUT_WINDOW_MS || !this.#loadWarm) {
      this.#loadWarm = prev !== null;
      return;
    }
    const active = loop.active - prev.active;
    const wall = active + (loop.idle - prev.idle);
    if (wall > 0 && active >= 0) policy.observeLoad(active / wall, Math.max(0, codecMs) / wall);
    this.stats.loopBusy = policy.loopBusy;
  }

  // True while the setting in force is a slow-link zstd level (see SPLIT_MIN_ZSTD_LEVEL).
  #splitsNow(): boolean {
    if (!this.#entropySplit) return false;
    const setting = this.#settingInForce();
    return setting !== null && setting.codec === 'zstd' && setting.level >= SPLIT_MIN_ZSTD_LEVEL;
  }

  // A piece the splitter found high-entropy: raw without trying, but for spot checks.
  #encodeHighEntropy(original: Uint8Array): PendingBlock {
    if (this.#shortcutOffBytes > 0 || ++this.#highEntropyPieces % SPOT_CHECK_INTERVAL === 0) {
      // A spot check leaves the back-off alone: it is already rare, and a failing one must not
      // pause the compressible pieces around it.
      const spotCheck = this.#shortcutOffBytes <= 0;
      this.#shortcutOffBytes = Math.max(0, this.#shortcutOffBytes - original.length);
      const block = this.#encodeBlock(original, spotCheck);
      if (block.codec !== CODEC_NONE) this.#shortcutOffBytes = SHORTCUT_OFF_BYTES;
      return block;
    }
    return this.#raw(original, 'blocksRawHighEntropy');
  }

  #encodeBlock(original: Uint8Array, bypassBackoff = false): PendingBlock {
    const s = this.stats.encode;
    let rung = -1;
    let probe = -1;
    let setting: CodecSetting | null;
    const arbiter = this.#policy ? this.#arbiterFor(this.#policy) : null;
    if (arbiter !== null && arbiter.current === 'none') {
      setting = null;
    } else if (this.#policy) {
      const plan = this.#policy.plan();
      rung = plan.rung;
      probe = plan.probe;
      setting = this.#policy.settingOf(rung);
    } else {
      setting = this.#fixedSetting;
    }
    if (setting === null || original.length < MIN_COMPRESS_SIZE) {
      return this.#raw(original, 'blocksRawByChoice');
    }
    if (!bypassBackoff && this.#looksLikeThePathsFailures(original)) {
      // Not tried: random-looking data on a path whose other streams' blocks all failed. Counts
      // as this stream's failure (its pause starts at once), not as the path's: nothing measured.
      this.#backoff.recordFailure();
      this.#backoff.inheritFailures(this.#pathMemory!.failStreak + 1);
      return this.#raw(original, 'blocksRawHighEntropy');
    }
    if (!bypassBackoff && !this.#backoff.shouldTry(original.length)) {
      return this.#raw(original, 'blocksRawBackoff');
    }
    const limit = original.length * MAX_COMPRESSED_FRACTION;
    let compressed = this.#timedCompress(setting, original);
    const cpuMs = this.#lastCpuMs;
    if (probe >= 0 && this.#policy) {
      const probeSetting = this.#policy.settingOf(probe)!;
      const probed = this.#timedCompress(probeSetting, original);
      const wire = (c: Uint8Array) => (c.length <= limit ? c.length : original.length);
      this.#policy.recordPair(rung, probe, original.length, wire(compressed), cpuMs, wire(probed), this.#lastCpuMs);
      // Both are valid encodings of the block: send the smaller one.
      if (probed.length < compressed.length) {
        releaseCompressed(compressed);
        compressed = probed;
        setting = probeSetting;
      } else {
        releaseCompressed(probed);
      }
    } else {
      this.#policy?.record(rung, original.length, compressed.length <= limit ? compressed.length : original.length, cpuMs);
    }
    // The path's streak before this block: a failure on a path whose last blocks all failed
    // pauses this stream at once, as if it had seen them (inheritFailures counts only others').
    const pathFailures = this.#pathMemory?.failStreak ?? 0;
    this.#pathMemory?.recordAttempt(compressed.length <= limit);
    if (compressed.length > limit) {
      releaseCompressed(compressed);
      if (!bypassBackoff) {
        this.#backoff.recordFailure();
        this.#backoff.inheritFailures(pathFailures + 1);
      }
      return this.#raw(original, 'blocksRawIncompressible');
    }
    if (!bypassBackoff) this.#backoff.recordSuccess();
    this.stats.countBlock(settingName(setting), original.length, compressed.length);
    const id = codecId(setting.codec);
    if (id === CODEC_LZ4) s.blocksLz4++;
    else if (id === CODEC_ZSTD) s.blocksZstd++;
    return { codec: id, original, payload: compressed };
  }

  // A block sent as it is, counted under `why`.
  #raw(
    original: Uint8Array,
    why: 'blocksRawByChoice' | 'blocksRawHighEntropy' | 'blocksRawBackoff' | 'blocksRawIncompressible',
  ): PendingBlock {
    const s = this.stats.encode;
    s.blocksRaw++;
    s[why]++;
    this.stats.countBlock('none', original.length, original.length);
    return { codec: CODEC_NONE, original, payload: null };
  }

  // A block worth not compressing at all: the path's last blocks all failed the 80% rule (on
  // other streams: BACKOFF_FAILURES_BEFORE_PAUSE in a row) and this one samples as random. Each
  // of 5000 concurrent echo connections of random data otherwise compressed its first block to
  // find out: 64 KiB of lz4 output each, garbage that raised the sending gateway's peak RSS from
  // ~245 to 284-300 MiB. Data that samples compressible is tried as usual.
  #looksLikeThePathsFailures(block: Uint8Array): boolean {
    const path = this.#pathMemory;
    if (path === null || path.failStreak < BACKOFF_FAILURES_BEFORE_PAUSE || this.#backoff.pausing) return false;
    return RANDOM_SAMPLER.sampledHighEntropy(block, RANDOM_SAMPLE_WINDOWS);
  }

  // The call's CPU time, but never more than its wall time: the process CPU clock also runs for
  // the process's other threads (V8's concurrent GC and compiler threads, busiest at start-up),
  // and a single-threaded call cannot use more CPU than the time it took. Inflated samples made
  // zstd look slow in lab transfers, and 'auto' sent blocks raw or with lz4 by choice: up to 207
  // raw and 297 lz4 blocks of 64 KiB in 1 GiB runs before (2.3% more wire in one mpls run), none
  // in six runs since (the 5-6 raw-by-choice left are the workload's sub-64-byte reads).
  // (No wall reading when the two clocks are one function: tests count clock reads.)
  #timedCompress(setting: CodecSetting, data: Uint8Array): Uint8Array {
    const wallToo = this.#cpuNow !== this.#now;
    const started = this.#cpuNow();
    const wallStarted = wallToo ? this.#now() : 0;
    const out = compressWith(setting, data);
    const cpuMs = this.#cpuNow() - started;
    this.#lastCpuMs = wallToo ? Math.min(cpuMs, this.#now() - wallStarted) : cpuMs;
    this.stats.encode.cpuMs += this.#lastCpuMs;
    return out;
  }
}

/** A part from encodeParts() is no longer used (its bytes were copied): its buffer may be reused. */
export function releaseEncodedPart(part: Uint8Array): void {
  releaseCompressed(part);
}

/**
 * The part views a pooled buffer (of a whole block's bound, whatever the part's length): a caller
 * that would keep it for long copies it out and releases it.
 */
export function isPooledPart(part: Uint8Array): boolean {
  return isLentCompressed(part);
}

/**
 * The share of a core one thread gets on a machine with `cores` cores and `load` runnable
 * tasks on average (the thread itself included): all of one while load <= cores.
 */
export function cpuShareFromLoad(load: number, cores: number): number {
  if (!(cores > 0) || !(load > cores)) return 1;
  return cores / load;
}

/**
 * This process's CPU time in ms (user + system, ~2 us a call). Not threadCpuUsage: per-thread
 * times are sampled at the scheduler tick, so most 0.1-0.5 ms compress calls would read 0.
 */
function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
