// The `auto` mode's choice of codec and level: compress only while the link, not the CPU,
// is the bottleneck.
//
// For each rung k of a ladder (none, lz4, zstd -1, 1, 3, then zstd 5 and 7 for slow links)
// we estimate c_k, CPU seconds per application byte compressed, and wire_k, wire bytes per
// application byte (80% rule applied; none: c = 0, wire = 1). Every wire byte also costs the
// rest of the single-threaded gateway p seconds of CPU (packetizing, encryption, a syscall per
// datagram), so compressing saves CPU downstream as well as spending it. The gateway then
// moves application bytes at about
//
//     T_k = min(cpuShare / (c_k + wire_k * p), linkBytesPerSecond / wire_k)
//
// (CPU-bound on the left, link-bound on the right), and we use the rung with the largest
// T_k; rungs within SWITCH_DOWN_TOLERANCE of the best count as equal and the one with the
// least CPU per application byte (c_k + wire_k * p) wins. Moving to a rung that costs more
// CPU needs a SWITCH_UP_MARGIN gain (no flapping). So compression is skipped only when it
// costs more CPU than it saves while the CPU, not the link, is the bottleneck.
//
// Slow-link rungs (`needsHeadroom`: zstd 5, 7) take part only while their CPU rate clears
// cpuMargin times what the link needs (cpuShare / (c_k + wire_k * p) >= cpuMargin x link /
// wire_k): the gateway shares the machine (in the lab: two cores for both gateways, the
// emulator, client and sink), codec timings are noisy, and the gateway compresses on its event
// loop. So on a 100 Mbit/s link the strongest level whose speed clears the margin wins (zstd 7
// on the project machine), and on fast links, or when the margin is not met, the choice is the
// one the base ladder (none .. zstd 3) gives, as before.
//
// cpuShare: the fraction of a core the gateway's thread gets. The encoder estimates it from the
// machine's load average (min(1, cores / load)), so on a saturated machine the slow-link rungs
// drop out first.
//
// Measured headroom (observeLoad). The margin above rests on modelled figures (a CPU share from
// the machine-wide load average, a guessed pipeline cost p), and on the lab's mpls link it sat
// right at the edge between zstd 5 and 7: two runs a few minutes apart chose differently (wire
// 0.39 vs 0.37 of source, 36.9 s vs 34.7 s). Once the encoder measures its own thread, a
// slow-link rung is judged by what it would do to that thread instead: busy = the event loop's
// busy share of wall time (all of the gateway's work, whatever preempts it), codecBusy = the part
// spent compressing. Moving from the rung in use (a) to rung k changes only the codec part,
// scaled by the paired-probe relation of CPU per byte, times the application rate the link then
// takes (wire_a / wire_k):
//
//     busy_k = busy + codecBusy x ((ns_k / ns_a) x (wire_a / wire_k) - 1)
//
// A slow-link rung above the one in use is admitted while busy_k <= HEADROOM_BUSY_ADMIT; the rung
// in use and those below it stay while busy_k <= HEADROOM_BUSY_KEEP (hysteresis: no flapping on
// noise). An admitted rung leaves the thread idle half the time, so the link, not the CPU, is
// the limit, and it is modelled as link-bound: among admitted rungs the smallest wire ratio wins.
// The base ladder (none .. zstd 3) keeps the modelled choice: on a CPU-bound 1 Gbit/s path the
// loop is busy and no slow-link rung is admitted.
//
// The link rate is the transport's estimate, but never below what the encoder itself put out
// over the last OUTPUT_WINDOW_MS: the link evidently carried that. This breaks a loop seen in
// the lab: a dip in the estimate (app-limited samples, a loaded machine) picks a slow level,
// the slow level starves the transport, which keeps the estimate low. With the floor, a level
// that makes the encoder itself the bottleneck shows up as output above the estimate, and the
// margin moves the choice back down.
//
// When the best rung is link-bound, rungs differ only in wire ratio (measured on the same
// blocks, not noisy CPU timings), and 1% of wire is 1% of the transfer time, so the
// tolerances shrink to LINK_BOUND_TOLERANCE.
//
// Compressibility changes from block to block far more than codecs differ (a zero page vs a
// log page), so rungs are never compared on different data. The rung in use is measured on
// every block (EWMA). The others are modelled as the current rung times a relation learned
// from paired measurements: every EXPLORE_INTERVAL blocks one block is also compressed with a
// neighbouring rung, and (neighbour / current) CPU time and wire bytes feed decayed sums per
// adjacent pair. The block sends the smaller result, so a probe costs only CPU (~3%).
// Priors for everything come from `npm run bench:codec` on the project machine.

import type { CodecSetting } from './codecs.ts';

/** Fraction of a core the gateway's thread gets (it is single-threaded). */
export const DEFAULT_CPU_SHARE = 1;
/**
 * p: CPU ns the rest of the gateway spends per wire byte, until the gateway reports a
 * measurement. bench/results/gateway-2026-11-25.md measured 6.2 ns per byte (plaintext) and
 * 14.2 ns (encrypted) for the whole sending gateway, part of which (the TCP read) is per
 * application byte, not per wire byte; 8 ns is in between.
 */
export const DEFAULT_WIRE_CPU_NS_PER_BYTE = 8;
/**
 * A slow-link rung takes part only while its CPU rate is at least this many times what the
 * link needs (headroom for the machine's other work, timing noise and the event loop).
 */
export const DEFAULT_CPU_MARGIN = 3;
/** Until the gateway reports a rate, assume the fastest lab link (1 Gbit/s): cheap codecs first. */
export const DEFAULT_LINK_RATE_BPS = 1e9;
/**
 * The encoder's output rate is measured over windows this long (wall time): short, because a
 * stream that starts on a low estimate runs its first window on a slow level; long enough to
 * average the bursts in which the gateway refills its send backlog.
 */
export const OUTPUT_WINDOW_MS = 500;
/** Probe a neighbouring rung on one block in this many (~3% extra CPU). */
export const EXPLORE_INTERVAL = 32;
/** A costlier rung must promise this much more throughput before we move to it. */
export const SWITCH_UP_MARGIN = 0.05;
/** Rungs within this fraction of the best throughput count as equal; the cheapest wins. */
export const SWITCH_DOWN_TOLERANCE = 0.02;
/**
 * Both tolerances when the best rung is link-bound: its advantage is wire ratio alone
 * (zstd 7 sends ~3% less than zstd 1 on the vm payload), which the 2% and 5% above would hide.
 * Adjacent slow-link levels differ by ~1% (zstd 5 vs 7) or less (a zstd 9 rung, tried: 0.6%
 * less than 7, which at 0.5% flipped every few seconds on probe noise), so half of that.
 */
export const LINK_BOUND_TOLERANCE = 0.0025;
/**
 * A slow-link rung above the one in use is admitted while it is predicted to keep the gateway's
 * event loop busy at most this share of wall time: half the time idle is room for bursts (the
 * gateway compresses a refill of its send backlog in one turn), ACK processing and timing noise.
 * On the lab's mpls link the sending gateway was ~35% busy at zstd 7 (12.3 CPU s in 36.5 s).
 */
export const HEADROOM_BUSY_ADMIT = 0.5;
/** The rung in use (and those below it) stays while the loop is busy at most this share. */
export const HEADROOM_BUSY_KEEP = 0.65;
/** EWMA weight of one load window (OUTPUT_WINDOW_MS): the busy share averages over ~2 s. */
const LOAD_EWMA_WEIGHT = 0.25;
/** EWMA weight of one 64 KiB sample of the rung in use; smaller blocks weigh proportionally less. */
const EWMA_WEIGHT = 0.1;
const EWMA_FULL_SAMPLE_BYTES = 64 * 1024;
/**
 * Decay of the paired sums per probe: the relation reflects roughly the last 10 probes of a pair
 * (one in 64 blocks: ~40 MiB of data). One 64 KiB block says little about how two levels compare
 * (zstd 9 vs 7 differs by -3% to +1% from block to block); 5 probes let the modelled 0.6% drift
 * across the link-bound tolerance.
 */
const PAIR_DECAY = 0.9;
/**
 * A CPU-time sample is clamped to within this factor of the estimate: the first call into a
 * codec (lazy loading, cold caches) and preemption on a shared machine produce samples 10x
 * off, which would otherwise knock the choice off its rung for many blocks.
 */
const MAX_SAMPLE_DEVIATION = 4;

/**
 * Byte counts over windows of wall time (OUTPUT_WINDOW_MS unless given): the encoder's output
 * rate here, its input and output rates for the check against raw (arbiter.ts).
 */
export class ByteWindow {
  readonly lengthMs: number;
  #startMs = -1;
  #in = 0;
  #out = 0;
  /** The window the last add() closed: bytes in and out over closedMs. */
  closedIn = 0;
  closedOut = 0;
  closedMs = 0;

  constructor(lengthMs = OUTPUT_WINDOW_MS) {
    this.lengthMs = lengthMs;
  }

  /** Counts bytes at wall time nowMs; true when this closed the window (see closed*). */
  add(inBytes: number, outBytes: number, nowMs: number): boolean {
    if (this.#startMs < 0 || nowMs < this.#startMs) {
      this.#startMs = nowMs;
      this.#in = 0;
      this.#out = 0;
    }
    this.#in += inBytes;
    this.#out += outBytes;
    const elapsed = nowMs - this.#startMs;
    if (elapsed < this.lengthMs) return false;
    this.closedIn = this.#in;
    this.closedOut = this.#out;
    this.closedMs = elapsed;
    this.#startMs = nowMs;
    this.#in = 0;
    this.#out = 0;
    return true;
  }
}

export interface Rung {
  /** null = send raw. */
  setting: CodecSetting | null;
  /** Prior: application bytes per CPU second. */
  speedBytesPerSec: number;
  /** Prior: wire bytes per application byte (vm payload, 80% rule). */
  wireRatio: number;
  /** A slow-link rung: used only while its CPU rate clears the margin over the link's need. */
  needsHeadroom?: boolean;
}

/**
 * Priors: bench/results/codec-2026-11-25.md and codec-2026-11-26.md (2-core AMD EPYC, vm
 * payload, 64 KiB blocks: the gateway's blocks are socket reads). Only starting points;
 * measurements replace them within a few blocks. zstd 5 and 7 exist for slow links: 1.7% and
 * 3.2% less wire than zstd 1 at a half and a quarter of its speed (the lab's seed-1 image, 256
 * MiB in 64 KiB blocks: zstd 1 0.355, 5 0.349, 7 0.345, 9 0.342). The ladder stops at 7: zstd 9
 * saves another 0.6% for 50% more CPU on the gateway's event loop (up to 32 socket reads per
 * turn: ~14 ms of zstd 9 during which no ACK is read nor packet paced). In the lab's mpls runs
 * with a zstd 9 rung the link was busy 85-89% of the time against 94-95% without it, but those
 * runs also met more load from other users of the machine, so that is a hint, not a measurement.
 * Above 9 the speed falls off a cliff (zstd 11: ~80 MB/s, zstd 12: ~60 MB/s).
 */
export const DEFAULT_LADDER: readonly Rung[] = [
  { setting: null, speedBytesPerSec: Infinity, wireRatio: 1 },
  { setting: { codec: 'lz4', level: 0 }, speedBytesPerSec: 420e6, wireRatio: 0.395 },
  { setting: { codec: 'zstd', level: -1 }, speedBytesPerSec: 660e6, wireRatio: 0.34 },
  { setting: { codec: 'zstd', level: 1 }, speedBytesPerSec: 800e6, wireRatio: 0.343 },
  { setting: { codec: 'zstd', level: 3 }, speedBytesPerSec: 670e6, wireRatio: 0.34 },
  { setting: { codec: 'zstd', level: 5 }, speedBytesPerSec: 370e6, wireRatio: 0.337, needsHeadroom: true },
  { setting: { codec: 'zstd', level: 7 }, speedBytesPerSec: 215e6, wireRatio: 0.332, needsHeadroom: true },
];

export interface AdaptivePolicyOptions {
  ladder?: readonly Rung[];
  cpuShare?: number;
  /** Headroom a `needsHeadroom` rung needs over the link (default DEFAULT_CPU_MARGIN; 1 = none). */
  cpuMargin?: number;
  linkRateBps?: number;
  wireCpuNsPerByte?: number;
}

/** What to do with the next block: compress with `rung`, and also with `probe` (-1: no probe). */
export interface BlockPlan {
  rung: number;
  probe: number;
}

interface Estimate {
  nsPerByte: number;
  wireRatio: number;
}

// Decayed sums of paired measurements of rung k (lo) and k+1 (hi) on the same blocks.
interface PairSums {
  loNs: number;
  hiNs: number;
  loWire: number;
  hiWire: number;
}

export class AdaptivePolicy {
  readonly #ladder: readonly Rung[];
  #cpuShare: number;
  readonly #cpuMargin: number;
  #linkBytesPerSec: number;
  #wireNsPerByte: number;
  /** Measured estimate of the rung in use (or of rung 1 while the choice is none). */
  readonly #measured: Estimate[];
  /** pairs[k]: rung k+1 relative to rung k, for k >= 1. */
  readonly #pairs: PairSums[];
  #current = 0;
  /** Wire bytes/s the encoder put out over the last complete window (0: none yet). */
  #outputBytesPerSec = 0;
  readonly #outputWindow = new ByteWindow();
  #blocksSinceExplore = 0;
  #exploreUpNext = true;
  /**
   * Smoothed event-loop busy share and its codec part (observeLoad); negative until measured.
   * Not integers from the start, so V8 stores them as doubles and the first fractional share
   * does not change the policy's hidden class mid-transfer (transport/packet.ts newHeader).
   */
  #busy = -1.5;
  #codecBusy = -0;

  constructor(options: AdaptivePolicyOptions = {}) {
    this.#ladder = options.ladder ?? DEFAULT_LADDER;
    if (this.#ladder.length < 2 || this.#ladder[0]!.setting !== null || this.#ladder.slice(1).some((r) => r.setting === null)) {
      throw new Error('ladder must be none followed by at least one codec');
    }
    this.#cpuShare = options.cpuShare ?? DEFAULT_CPU_SHARE;
    this.#cpuMargin = Math.max(1, options.cpuMargin ?? DEFAULT_CPU_MARGIN);
    this.#linkBytesPerSec = (options.linkRateBps ?? DEFAULT_LINK_RATE_BPS) / 8;
    this.#wireNsPerByte = options.wireCpuNsPerByte ?? DEFAULT_WIRE_CPU_NS_PER_BYTE;
    this.#measured = this.#ladder.map((r) => ({ nsPerByte: 1e9 / r.speedBytesPerSec, wireRatio: r.wireRatio }));
    // Seed each relation with the priors, as if one 64 KiB block had been probed.
    this.#pairs = this.#ladder.map((r, k) => {
      const next = this.#ladder[k + 1];
      if (k === 0 || !next) return { loNs: 1, hiNs: 1, loWire: 1, hiWire: 1 };
      const b = EWMA_FULL_SAMPLE_BYTES;
      return {
        loNs: (1e9 / r.speedBytesPerSec) * b,
        hiNs: (1e9 / next.speedBytesPerSec) * b,
        loWire: r.wireRatio * b,
        hiWire: next.wireRatio * b,
      };
    });
    this.#choose(true);
  }

  setLinkRateBps(bps: number): void {
    if (!(bps > 0) || !Number.isFinite(bps)) return;
    this.#linkBytesPerSec = bps / 8;
    this.#choose(false);
  }

  get linkRateBps(): number {
    return this.#linkBytesPerSec * 8;
  }

  /** The rate the model uses: the estimate, floored by the encoder's own recent output rate. */
  get effectiveLinkRateBps(): number {
    return this.#effectiveLinkBytesPerSec() * 8;
  }

  /** Wire bytes the encoder just put out, at wall time nowMs; closes a window every OUTPUT_WINDOW_MS. */
  observeOutput(wireBytes: number, nowMs: number): void {
    const w = this.#outputWindow;
    if (!w.add(0, wireBytes, nowMs)) return;
    this.#outputBytesPerSec = (w.closedOut * 1000) / w.closedMs;
    this.#choose(false);
  }

  #effectiveLinkBytesPerSec(): number {
    return Math.max(this.#linkBytesPerSec, this.#outputBytesPerSec);
  }

  /**
   * The fraction of a core the gateway's thread gets (0..1], e.g. from the machine's load: on
   * a saturated machine every rung's CPU-bound rate shrinks and the slow levels lose first.
   */
  setCpuShare(share: number): void {
    if (!(share > 0) || !Number.isFinite(share)) return;
    const next = Math.min(share, 1);
    if (next === this.#cpuShare) return;
    this.#cpuShare = next;
    this.#choose(false);
  }

  /**
   * One window's measurement of the gateway's thread: `busy`, the share of wall time its event
   * loop was busy (0..1), and `codecBusy`, the share spent inside compression calls. Once
   * given, slow-link rungs are judged by the busy share they would cause (see the top).
   */
  observeLoad(busy: number, codecBusy: number): void {
    if (!(busy >= 0) || !(codecBusy >= 0) || !Number.isFinite(busy) || !Number.isFinite(codecBusy)) return;
    const b = Math.min(busy, 1);
    const c = Math.min(codecBusy, b);
    if (this.#busy < 0) {
      this.#busy = b;
      this.#codecBusy = c;
    } else {
      this.#busy += LOAD_EWMA_WEIGHT * (b - this.#busy);
      this.#codecBusy += LOAD_EWMA_WEIGHT * (c - this.#codecBusy);
    }
    this.#choose(false);
  }

  /** The smoothed busy share of the gateway's event loop (null until measured). */
  get loopBusy(): number | null {
    return this.#busy < 0 ? null : this.#busy;
  }

  /** The loop's busy share predicted with `rung` in use (null until measured). */
  predictedBusy(rung: number): number | null {
    if (this.#busy < 0) return null;
    const anchor = this.#anchor();
    if (rung === anchor || this.#codecBusy === 0) return this.#busy;
    const a = this.estimate(anchor);
    const k = this.estimate(rung);
    const codecNs = (e: { speedBytesPerSec: number }) => 1e9 / e.speedBytesPerSec;
    const scale = rung === 0 ? 0 : (codecNs(k) / codecNs(a)) * (a.wireRatio / Math.max(k.wireRatio, 1e-6));
    return Math.max(0, this.#busy + this.#codecBusy * (scale - 1));
  }

  get currentCpuShare(): number {
    return this.#cpuShare;
  }

  /**
   * Whether the slow-link rungs may be chosen. The encoder's arbiter turns them off for a while
   * when compressed data left the link short of full (the CPU, not the link, was the limit):
   * the thread's own load (observeLoad) does not show a machine whose other processes are
   * starved.
   */
  setSlowLevelsAllowed(allowed: boolean): void {
    if (allowed === this.#slowLevelsAllowed) return;
    this.#slowLevelsAllowed = allowed;
    this.#choose(false);
  }

  #slowLevelsAllowed = true;

  /** p: the rest of the gateway's CPU per wire byte (ns), e.g. its CPU time / bytes sent. */
  setWireCpuNsPerByte(ns: number): void {
    if (!(ns >= 0) || !Number.isFinite(ns)) return;
    this.#wireNsPerByte = ns;
    this.#choose(false);
  }

  get wireCpuNsPerByte(): number {
    return this.#wireNsPerByte;
  }

  /** The rung in use (0 = none). */
  get currentRung(): number {
    return this.#current;
  }

  settingOf(rung: number): CodecSetting | null {
    return this.#ladder[rung]!.setting;
  }

  /** Usually the current rung alone; every EXPLORE_INTERVAL blocks also a neighbour to measure. */
  plan(): BlockPlan {
    if (++this.#blocksSinceExplore < EXPLORE_INTERVAL) return { rung: this.#current, probe: -1 };
    this.#blocksSinceExplore = 0;
    // While sending raw, the probe is simply compressing this block with the cheapest codec.
    if (this.#current === 0) return { rung: 1, probe: -1 };
    const up = this.#current + 1 < this.#ladder.length ? this.#current + 1 : -1;
    const down = this.#current - 1 >= 1 ? this.#current - 1 : -1;
    this.#exploreUpNext = !this.#exploreUpNext;
    const probe = this.#exploreUpNext ? (up >= 0 ? up : down) : down >= 0 ? down : up;
    return { rung: this.#current, probe };
  }

  /** One block compressed with `rung`: application bytes, wire bytes (80% rule applied), CPU ms. */
  record(rung: number, appBytes: number, wireBytes: number, cpuMs: number): void {
    if (rung === 0 || appBytes <= 0) return;
    if (rung !== this.#anchor()) return; // only the anchor is measured absolutely; others via pairs
    const e = this.#measured[rung]!;
    const weight = EWMA_WEIGHT * Math.min(1, appBytes / EWMA_FULL_SAMPLE_BYTES);
    // A clock that did not advance would claim infinite speed; count at least 1 ns.
    const sample = Math.max(cpuMs * 1e6, 1) / appBytes;
    const clamped = Math.min(Math.max(sample, e.nsPerByte / MAX_SAMPLE_DEVIATION), e.nsPerByte * MAX_SAMPLE_DEVIATION);
    e.nsPerByte += weight * (clamped - e.nsPerByte);
    e.wireRatio += weight * (wireBytes / appBytes - e.wireRatio);
    this.#choose(false);
  }

  /** The same block compressed with the current rung and with the neighbour `probe`. */
  recordPair(
    rung: number,
    probe: number,
    appBytes: number,
    rungWire: number,
    rungCpuMs: number,
    probeWire: number,
    probeCpuMs: number,
  ): void {
    if (appBytes <= 0 || rung < 1 || probe < 1 || Math.abs(rung - probe) !== 1) return;
    const lo = Math.min(rung, probe);
    const p = this.#pairs[lo]!;
    const loNs = Math.max((rung === lo ? rungCpuMs : probeCpuMs) * 1e6, 1);
    let hiNs = Math.max((rung === lo ? probeCpuMs : rungCpuMs) * 1e6, 1);
    const relation = p.hiNs / p.loNs;
    hiNs = Math.min(Math.max(hiNs, (loNs * relation) / MAX_SAMPLE_DEVIATION), loNs * relation * MAX_SAMPLE_DEVIATION);
    p.loNs = p.loNs * PAIR_DECAY + loNs;
    p.hiNs = p.hiNs * PAIR_DECAY + hiNs;
    p.loWire = p.loWire * PAIR_DECAY + (rung === lo ? rungWire : probeWire);
    p.hiWire = p.hiWire * PAIR_DECAY + (rung === lo ? probeWire : rungWire);
    this.record(rung, appBytes, rungWire, rungCpuMs);
  }

  /** Modelled speed and wire ratio of a rung, from the anchor's measurement and the pair relations. */
  estimate(rung: number): { speedBytesPerSec: number; wireRatio: number } {
    if (rung === 0) return { speedBytesPerSec: Infinity, wireRatio: 1 };
    const anchor = this.#anchor();
    let ns = this.#measured[anchor]!.nsPerByte;
    let wire = this.#measured[anchor]!.wireRatio;
    for (let k = anchor; k < rung; k++) {
      const p = this.#pairs[k]!;
      ns *= p.hiNs / p.loNs;
      wire *= p.hiWire / p.loWire;
    }
    for (let k = anchor - 1; k >= rung; k--) {
      const p = this.#pairs[k]!;
      ns *= p.loNs / p.hiNs;
      wire *= p.loWire / p.hiWire;
    }
    return { speedBytesPerSec: 1e9 / ns, wireRatio: Math.min(wire, 1) };
  }

  /** Modelled throughput (application bytes/s) of a rung. */
  throughput(rung: number): number {
    const wire = Math.max(this.estimate(rung).wireRatio, 1e-6);
    const linkRate = this.#effectiveLinkBytesPerSec() / wire;
    // Admitted by measurement: the thread stays half idle with it, so the link is the limit.
    if (this.#judgedByLoad(rung)) return linkRate;
    return Math.min(this.cpuRate(rung), linkRate);
  }

  // A slow-link rung once the thread's load is measured: judged by predictedBusy, not the model.
  #judgedByLoad(rung: number): boolean {
    return this.#busy >= 0 && this.#ladder[rung]!.needsHeadroom === true;
  }

  /** Application bytes/s the CPU share allows with this rung (codec plus pipeline). */
  cpuRate(rung: number): number {
    const cpuNs = this.cpuNsPerAppByte(rung);
    return cpuNs > 0 ? (this.#cpuShare * 1e9) / cpuNs : Infinity;
  }

  /** True if the rung's CPU rate is at least cpuMargin times what the link needs. */
  clearsMargin(rung: number): boolean {
    const wire = Math.max(this.estimate(rung).wireRatio, 1e-6);
    return this.cpuRate(rung) >= (this.#cpuMargin * this.#effectiveLinkBytesPerSec()) / wire;
  }

  /** True if the link, not the CPU, bounds this rung. */
  linkBound(rung: number): boolean {
    return this.#judgedByLoad(rung) || this.cpuKeepsUp(rung);
  }

  /**
   * True if the rung's CPU rate (measured codec speed plus the pipeline's cost per wire byte)
   * covers what the link can carry: by the figures alone, not by the thread's measured load. The
   * load says whether this thread has time to spare, not whether the machine has (in the lab the
   * gateways share two cores with the emulator and the applications).
   */
  cpuKeepsUp(rung: number): boolean {
    const wire = Math.max(this.estimate(rung).wireRatio, 1e-6);
    return this.cpuRate(rung) >= this.#effectiveLinkBytesPerSec() / wire;
  }

  /**
   * Base rungs always; slow-link rungs while they clear the margin, or, once the thread's load is
   * measured, while the busy share they would cause stays under HEADROOM_BUSY_ADMIT (rungs above
   * the one in use) or HEADROOM_BUSY_KEEP (the one in use and below).
   */
  eligible(rung: number): boolean {
    if (this.#ladder[rung]!.needsHeadroom !== true) return true;
    if (!this.#slowLevelsAllowed) return false;
    if (!this.#judgedByLoad(rung)) return this.clearsMargin(rung);
    const limit = rung > this.#current ? HEADROOM_BUSY_ADMIT : HEADROOM_BUSY_KEEP;
    return this.predictedBusy(rung)! <= limit;
  }

  /** CPU ns per application byte with this rung: compression plus the pipeline's cost of its wire bytes. */
  cpuNsPerAppByte(rung: number): number {
    const e = this.estimate(rung);
    const codecNs = rung === 0 ? 0 : 1e9 / e.speedBytesPerSec;
    return codecNs + e.wireRatio * this.#wireNsPerByte;
  }

  // The rung measured absolutely: the one in use, or the cheapest codec while sending raw.
  #anchor(): number {
    return this.#current === 0 ? 1 : this.#current;
  }

  #choose(initial: boolean): void {
    const n = this.#ladder.length;
    const throughputs: number[] = [];
    let best = 0;
    for (let k = 0; k < n; k++) {
      throughputs.push(this.eligible(k) ? this.throughput(k) : -1);
      if (throughputs[k]! > throughputs[best]!) best = k;
    }
    const linkBound = this.linkBound(best);
    const downTolerance = linkBound ? LINK_BOUND_TOLERANCE : SWITCH_DOWN_TOLERANCE;
    const upMargin = linkBound ? LINK_BOUND_TOLERANCE : SWITCH_UP_MARGIN;
    // Among rungs as good as the best, the cheapest in CPU.
    let pick = best;
    for (let k = 0; k < n; k++) {
      if (throughputs[k]! >= throughputs[best]! * (1 - downTolerance) && this.#cpuCost(k) < this.#cpuCost(pick)) pick = k;
    }
    if (pick === this.#current) return;
    // A rung that lost its eligibility (a slow-link rung on a faster link) is left at once.
    const here = this.eligible(this.#current) ? throughputs[this.#current]! : -1;
    const cheaper = this.#cpuCost(pick) < this.#cpuCost(this.#current);
    const worthIt = here < 0 || throughputs[pick]! > here * (1 + upMargin) || (cheaper && throughputs[pick]! >= here * (1 - downTolerance));
    if (!initial && !worthIt) return;
    // The measured load moves with the choice as predicted, so the next decision does not act on
    // windows of the old rung (a busy share lagging behind a step down would cascade further).
    if (this.#busy >= 0) {
      const before = this.#busy;
      this.#busy = this.predictedBusy(pick)!;
      this.#codecBusy = Math.max(0, this.#codecBusy + (this.#busy - before));
    }
    // The new anchor starts its measurement from the model, not from a stale value.
    const nextAnchor = pick === 0 ? 1 : pick;
    const e = this.estimate(nextAnchor);
    this.#measured[nextAnchor] = { nsPerByte: 1e9 / e.speedBytesPerSec, wireRatio: e.wireRatio };
    this.#current = pick;
  }

  #cpuCost(rung: number): number {
    return this.cpuNsPerAppByte(rung);
  }
}
