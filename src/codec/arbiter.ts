// `auto`'s check against sending raw, by measurement: compression must never make a transfer
// slower than `none`.
//
// The adaptive policy (adaptive.ts) models each codec's throughput from its measured speed, its
// wire ratio and a guessed cost of the rest of the pipeline. The model cannot see what a
// compressed block costs elsewhere: the peer gateway decompresses it, and in the lab (and on
// any shared host) every CPU second the codec takes is one the other processes on the machine
// do not get. Measured in the lab on the 1 Gbit/s baseline link with the vm payload: zstd 1 by
// the model's choice moved 593 Mbit/s of source data, `none` 731 (bench/results/
// datapath-2026-12-05.md, with node:zlib's set-up per call; without it, zstd moves more than raw
// there: datapath-2026-12-06.md §15-17). What is scarce is read off the transfer itself, per
// output window:
//
// - Sending raw, the link is the limit when the transport sends at LINK_FULL of the link's
//   estimated rate or more: then compression can only add (the link carries more source bytes
//   per second), and the model's choice takes over. (The transport's send rate, not the
//   encoder's output rate: the send buffers between them, 16 MiB, take a second or more of the
//   encoder's output on a 100 Mbit/s link before the link sets the pace.)
// - Compressing, the link is the limit when the transport still sends at LINK_FULL of the link:
//   the model's choice stays. Below that the CPU is the limit, and compression pays only if it
//   moves more source bytes per second than raw would: a trial sends raw for a while, and the
//   setting that moved more (by SWITCH_MARGIN) is kept. After every trial the next decision
//   waits longer (the hold doubles up to MAX_HOLD_MS), so noise cannot make it flap.
//
// Source bytes moved are the transport's send rate times the window's source bytes per wire
// byte, both over the arbiter's own window (see #moved and ARBITER_WINDOW_MS).
//
// The start follows the model's figures (see the constructor); a compressed start holds like a
// switch to the codec. Two windows in a row that show the CPU as the limit while compressing
// (windows in which the link's estimate still grows fast do not count) first turn the slow-link
// levels off, unless they are off already (a compressed start runs without them); two more, once
// the hold is over, and a trial of raw starts. Known gap:
// on a path where raw is CPU-bound short of the link and compression would cut the CPU per byte
// (nearly all zero pages), raw stays; trying the codec there cost the common case (the lab's
// 1 Gbit/s links, where the codec was slower under node:zlib) a trial's worth of throughput every
// few seconds.

import type { PathMemory } from './path-memory.ts';
import type { ArbiterCounters } from './stats.ts';

/**
 * The arbiter's windows (wall time). Half the policy's output window: a decision takes five of
 * them from the start of a transfer (two that show the CPU as the limit, one to settle, two to
 * measure raw), and at 1 Gbit/s with 500 ms windows that was 2.5 s compressed where raw was
 * faster: most of a 256 MiB transfer. 250 ms still spans ~30 MB at 1 Gbit/s and ~10 round trips
 * on the lab's mpls link.
 */
export const ARBITER_WINDOW_MS = 250;
/** A challenger must move this much more source data per second to replace the setting in use. */
export const ARBITER_SWITCH_MARGIN = 0.03;
/**
 * The link counts as the limit at this share of its estimated rate: transport and IP headers
 * take ~4% of it, and the estimate is a windowed maximum that jitter inflates by 10-20% (on the
 * lab's mpls link, raw data filling it was sent at 0.87-0.95 of the estimate, zstd 7 that left
 * it short at 0.64-0.82: the threshold sits in their overlap; raw at 1 Gbit/s in the lab, CPU-bound,
 * runs at ~0.55-0.73 of its estimate, below it).
 */
export const LINK_FULL = 0.75;
/** Hold after a trial before the setting in use is challenged again (doubles while it keeps winning). */
export const ARBITER_MIN_HOLD_MS = 4000;
export const ARBITER_MAX_HOLD_MS = 64000;
const TRIAL_SETTLE_WINDOWS = 1;
const TRIAL_MEASURE_WINDOWS = 2;
/**
 * A window counts as evidence of the CPU as the limit only once the link's estimate has grown by
 * less than this factor since the window before: BBR's own test for the end of its start-up.
 */
const ESTIMATE_SETTLED_GROWTH = 1.25;
/** Windows in a row that must show the CPU as the limit before a trial of raw starts. */
const CONFIRM_WINDOWS = 2;
/**
 * Compressed data that left the link short turns the slow-link levels off this long: on the
 * lab's mpls link zstd 7 held the transport at 70-82 Mbit/s of the 100 (the gateways share two
 * cores with the emulator and the applications) where zstd 3 filled it.
 */
export const SLOW_LEVELS_OFF_MS = 30000;
/**
 * Compressed output above this share of the input saves little wire; a tie then goes to `none`
 * (incompressible data: the cut at entropy changes and the spot checks still cost CPU).
 */
const USELESS_WIRE_RATIO = 0.9;

export type ArbiterChoice = 'model' | 'none';

/** The link over one window: its estimated rate at the window's end and the transport's send rate over it (bits/s). */
export interface LinkWindow {
  rateBps: number;
  sendingBps: number;
}

interface Window {
  /** Source bytes the transport moved (see #moved). */
  movedBytes: number;
  inBytes: number;
  outBytes: number;
  ms: number;
}

export class CompressionArbiter {
  #choice: ArbiterChoice;
  /** Raw on trial against the model's choice, or false between trials. */
  #trial = false;
  #trialWindows = 0;
  #trialMoved = 0;
  #trialMs = 0;
  #holdMs = ARBITER_MIN_HOLD_MS;
  #nextTrialAt = 0;
  /** Consecutive windows that argue for a switch. */
  #streak = 0;
  /** The last windows with the model's choice in use (newest last). */
  #recent: Window[] = [];
  #slowLevelsOffUntil = -Infinity;
  /** The link's estimated rate at the last window (0: none yet). */
  #lastRateBps = 0;
  #inherited = false;
  /** Where this arbiter's verdicts go for the path's other streams (null: kept to itself). */
  readonly #memory: PathMemory | null;
  /** Shared counters (status), or null. */
  readonly #counters: ArbiterCounters | null;
  /** Trials run and switches made (status, tests). */
  trials = 0;
  switches = 0;

  /** False for a while after compressed data left the link short (see SLOW_LEVELS_OFF_MS). */
  slowLevelsAllowed(nowMs: number): boolean {
    return nowMs >= this.#slowLevelsOffUntil;
  }

  /**
   * `initial`: the setting to start with. The encoder starts with the model's choice (at its
   * fast levels) when the model's figures say the CPU keeps up with the link, else raw: on a slow
   * link the first seconds fill the send buffers (tens of MiB), and filling them raw cost the
   * lab's mpls runs a fifth of their throughput.
   *
   * `memory`: the path's shared memory (path-memory.ts). While a verdict another stream's arbiter
   * reached there still stands, this one starts from it instead of `initial`, on the same hold:
   * it neither repeats the measurement nor challenges the verdict before the other would have.
   */
  constructor(initial: ArbiterChoice = 'none', nowMs = 0, memory: PathMemory | null = null, counters: ArbiterCounters | null = null) {
    this.#memory = memory;
    this.#counters = counters;
    const verdict = memory?.verdictAt(nowMs) ?? null;
    this.#choice = verdict?.choice ?? initial;
    if (verdict !== null) {
      this.#inherited = true;
      if (counters !== null) counters.startsFromPath++;
      this.#holdMs = verdict.holdMs;
      this.#nextTrialAt = verdict.untilMs;
    }
    // A start that compresses does so at the fast levels: the link's rate is not known yet.
    if (this.#choice === 'model') this.#slowLevelsOffUntil = nowMs + SLOW_LEVELS_OFF_MS;
    // A compressed start is a decision like a switch to the codec: it stands for the shortest hold
    // before raw is tried. A trial costs three windows at the losing setting, and since zstd runs
    // without node:zlib's per-call set-up (zstd-native.ts) it is raw that loses on the lab's 1 Gbit/s
    // links: a trial ~1 s into a 256 MiB transfer (2.4 s) sent a third of it raw, 12% slower than a
    // fixed zstd (bench/results/datapath-2026-12-06.md §17).
    if (this.#choice === 'model' && verdict === null) this.#nextTrialAt = nowMs + this.#holdMs;
  }

  /** True if this arbiter started from a verdict on the path's memory (status, tests). */
  get inherited(): boolean {
    return this.#inherited;
  }

  /** What the encoder uses now: the model's choice, or `none`. */
  get current(): ArbiterChoice {
    return this.#trial ? 'none' : this.#choice;
  }

  /** The setting in use between trials. */
  get choice(): ArbiterChoice {
    return this.#choice;
  }

  /**
   * One output window closed: `inBytes` source bytes became `outBytes` wire bytes in `ms`.
   * `link`: the link's estimated rate and the transport's send rate then (null: unknown).
   */
  observeWindow(inBytes: number, outBytes: number, ms: number, nowMs: number, link: LinkWindow | null): void {
    if (!(ms > 0)) return;
    const linkFull = link !== null && link.rateBps > 0 && link.sendingBps >= LINK_FULL * link.rateBps;
    // The transport's estimate still rising fast (its start-up: on the lab's mpls link the first
    // round trips sent at half the estimate while it doubled) says nothing about the CPU.
    const growing = link !== null && !(link.rateBps <= ESTIMATE_SETTLED_GROWTH * this.#lastRateBps);
    if (link !== null) this.#lastRateBps = link.rateBps;
    const moved = CompressionArbiter.#moved(inBytes, outBytes, ms, link);
    if (this.#trial) {
      this.#trialWindows++;
      if (this.#trialWindows <= TRIAL_SETTLE_WINDOWS) return;
      this.#trialMoved += moved;
      this.#trialMs += ms;
      if (this.#trialWindows < TRIAL_SETTLE_WINDOWS + TRIAL_MEASURE_WINDOWS) return;
      this.#judge(nowMs);
      return;
    }
    if (this.#choice === 'none') {
      // Raw fills the link: compressing can only add (not before the hold after a lost trial).
      if (linkFull && nowMs >= this.#nextTrialAt) this.#switchTo('model', nowMs);
      return;
    }
    this.#recent.push({ movedBytes: moved, inBytes, outBytes, ms });
    if (this.#recent.length > TRIAL_MEASURE_WINDOWS) this.#recent.shift();
    // Compressed and still filling the link: the link is the limit, compression is what lifts it.
    if (linkFull) this.#streak = 0;
    else if (!growing) this.#streak++;
    if (this.#streak < CONFIRM_WINDOWS) return;
    if (nowMs >= this.#slowLevelsOffUntil) {
      // First the cheaper answer: the fast levels. Raw is tried only if they leave the link short
      // too (a trial of raw on a slow link costs seconds of its time: the lab's mpls runs lost 11%).
      this.#slowLevelsOffUntil = nowMs + SLOW_LEVELS_OFF_MS;
      this.#streak = 0;
      this.#recent = [];
      return;
    }
    this.#slowLevelsOffUntil = nowMs + SLOW_LEVELS_OFF_MS;
    if (nowMs < this.#nextTrialAt || this.#recent.length < TRIAL_MEASURE_WINDOWS) return;
    this.#trial = true;
    this.#trialWindows = 0;
    this.#trialMoved = 0;
    this.#trialMs = 0;
    this.trials++;
    if (this.#counters !== null) this.#counters.trials++;
  }

  // Source bytes that went onto the link in a window: the transport's send rate times the
  // window's source bytes per wire byte. Not the encoder's own input: at the start of a transfer
  // the encoder fills the send buffers (16 MiB) far faster than the transport drains them
  // (compressing at 1 Gbit/s in the lab: 600-900 Mbit/s of source in, 40-80 Mbit/s sent), and a
  // trial of raw then meets full buffers: judged by its input, raw lost to a setting that moved
  // a third of its throughput. Without a reading of the transport, the input is all there is.
  static #moved(inBytes: number, outBytes: number, ms: number, link: { sendingBps: number } | null): number {
    if (link === null || !(link.sendingBps > 0) || !(outBytes > 0)) return inBytes;
    return ((link.sendingBps * ms) / 8000) * (inBytes / outBytes);
  }

  #switchTo(choice: ArbiterChoice, nowMs: number): void {
    this.#choice = choice;
    this.#streak = 0;
    this.#recent = [];
    this.switches++;
    if (this.#counters !== null) {
      if (choice === 'none') this.#counters.toRaw++;
      else this.#counters.toCodec++;
    }
    this.#nextTrialAt = nowMs + this.#holdMs;
    this.#memory?.recordVerdict(choice, this.#holdMs, nowMs);
  }

  // Raw against the model's choice, both while the CPU is the limit: source bytes per second.
  #judge(nowMs: number): void {
    let moved = 0;
    let inBytes = 0;
    let outBytes = 0;
    let ms = 0;
    for (const w of this.#recent) {
      moved += w.movedBytes;
      inBytes += w.inBytes;
      outBytes += w.outBytes;
      ms += w.ms;
    }
    this.#trial = false;
    const model = ms > 0 ? moved / ms : 0;
    const raw = this.#trialMs > 0 ? this.#trialMoved / this.#trialMs : 0;
    const ratio = inBytes > 0 ? outBytes / inBytes : 1;
    const rawWins = raw > model * (1 + ARBITER_SWITCH_MARGIN) || (ratio > USELESS_WIRE_RATIO && raw >= model * (1 - ARBITER_SWITCH_MARGIN));
    // Either way the question is settled for longer: a path that keeps giving the same answer
    // (or flips between the two on noise) is asked less and less often.
    this.#holdMs = Math.min(this.#holdMs * 2, ARBITER_MAX_HOLD_MS);
    if (rawWins) {
      this.#switchTo('none', nowMs);
      return;
    }
    this.#streak = 0;
    this.#recent = [];
    this.#nextTrialAt = nowMs + this.#holdMs;
    this.#memory?.recordVerdict('model', this.#holdMs, nowMs);
  }
}
