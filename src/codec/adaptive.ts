// The `auto` mode's choice of codec and level: compress only while the link, not the CPU,
// is the bottleneck.
//
// For each rung k of a ladder ordered by cost (none, lz4, zstd -1, zstd 1, zstd 3) we keep
// two measured estimates: speed_k, application bytes compressed per CPU second, and
// wire_k, wire bytes per application byte (1 when a block was sent raw). The single-threaded
// gateway moves application bytes at about
//
//     T_k = min(speed_k * CPU_SHARE, linkBytesPerSecond / wire_k)       (T_none = link rate)
//
// CPU-bound on the left, link-bound on the right. We use the rung with the largest T_k.
// Estimates start from priors measured on the project machine (bench/results/codec-*) and are
// updated by an EWMA from every block actually compressed. Only the current rung is
// measured continuously, so the choice moves one rung at a time and every
// EXPLORE_INTERVAL blocks one block is compressed with a neighbouring rung to refresh its
// estimates (that block is sent like any other; the cost is a little CPU).

import type { CodecSetting } from './codecs.ts';

/**
 * Fraction of one core compression may use. The same thread also packetizes, encrypts and
 * makes a syscall per datagram, and the peer must decompress; half a core leaves room for that.
 */
export const DEFAULT_CPU_SHARE = 0.5;
/** Until the gateway reports a rate, assume the fastest lab link (1 Gbit/s): cheap codecs first. */
export const DEFAULT_LINK_RATE_BPS = 1e9;
/** Compress one block with a neighbouring rung this often (~3% of blocks). */
export const EXPLORE_INTERVAL = 32;
/** A more expensive rung must promise this much more throughput before we move up to it. */
export const SWITCH_UP_MARGIN = 0.05;
/** A cheaper rung within this much of the current throughput is preferred (less CPU, less latency). */
export const SWITCH_DOWN_TOLERANCE = 0.02;
/** EWMA weight of one full-size sample; smaller blocks weigh proportionally less. */
const EWMA_WEIGHT = 0.25;
const EWMA_FULL_SAMPLE_BYTES = 64 * 1024;

export interface Rung {
  /** null = send raw. */
  setting: CodecSetting | null;
  /** Prior: application bytes per CPU second. */
  speedBytesPerSec: number;
  /** Prior: wire bytes per application byte (for the vm payload). */
  wireRatio: number;
}

/**
 * Priors from `npm run bench:codec` on the project machine (2-core AMD EPYC, 256 KiB blocks,
 * vm payload, 80% rule applied). Only starting points: measurements replace them within a
 * few blocks.
 */
export const DEFAULT_LADDER: readonly Rung[] = [
  { setting: null, speedBytesPerSec: Infinity, wireRatio: 1 },
  { setting: { codec: 'lz4', level: 0 }, speedBytesPerSec: 700e6, wireRatio: 0.45 },
  { setting: { codec: 'zstd', level: -1 }, speedBytesPerSec: 500e6, wireRatio: 0.4 },
  { setting: { codec: 'zstd', level: 1 }, speedBytesPerSec: 350e6, wireRatio: 0.36 },
  { setting: { codec: 'zstd', level: 3 }, speedBytesPerSec: 200e6, wireRatio: 0.34 },
];

export interface AdaptivePolicyOptions {
  ladder?: readonly Rung[];
  cpuShare?: number;
  linkRateBps?: number;
}

interface Estimate {
  nsPerByte: number;
  wireRatio: number;
}

export class AdaptivePolicy {
  private readonly ladder: readonly Rung[];
  private readonly estimates: Estimate[];
  private readonly cpuShare: number;
  private linkBytesPerSec: number;
  private current: number;
  private blocksSinceExplore = 0;
  private exploreUpNext = true;

  constructor(options: AdaptivePolicyOptions = {}) {
    this.ladder = options.ladder ?? DEFAULT_LADDER;
    if (this.ladder.length === 0 || this.ladder[0]!.setting !== null) throw new Error('ladder must start with none');
    this.cpuShare = options.cpuShare ?? DEFAULT_CPU_SHARE;
    this.linkBytesPerSec = (options.linkRateBps ?? DEFAULT_LINK_RATE_BPS) / 8;
    this.estimates = this.ladder.map((r) => ({ nsPerByte: 1e9 / r.speedBytesPerSec, wireRatio: r.wireRatio }));
    this.current = 0;
    this.current = this.bestFromPriors();
  }

  setLinkRateBps(bps: number): void {
    if (!(bps > 0) || !Number.isFinite(bps)) return;
    this.linkBytesPerSec = bps / 8;
    // A big rate change can move the optimum several rungs; jump there using current estimates.
    this.current = this.bestFromPriors();
  }

  /** Index of the rung now preferred (without exploration). */
  get currentRung(): number {
    return this.current;
  }

  get currentSetting(): CodecSetting | null {
    return this.ladder[this.current]!.setting;
  }

  /** The rung to use for the next block: usually the current one, sometimes a neighbour to measure it. */
  nextRung(): number {
    if (++this.blocksSinceExplore < EXPLORE_INTERVAL) return this.current;
    this.blocksSinceExplore = 0;
    const up = this.current + 1 < this.ladder.length ? this.current + 1 : -1;
    const down = this.current - 1 >= 1 ? this.current - 1 : -1; // rung 0 (none) has nothing to measure
    this.exploreUpNext = !this.exploreUpNext;
    const pick = this.exploreUpNext ? (up >= 0 ? up : down) : (down >= 0 ? down : up);
    return pick >= 0 ? pick : this.current;
  }

  settingOf(rung: number): CodecSetting | null {
    return this.ladder[rung]!.setting;
  }

  /** Feed one compression attempt: bytes in, bytes that went on the wire for it, CPU ms spent. */
  record(rung: number, appBytes: number, wireBytes: number, cpuMs: number): void {
    if (rung === 0 || appBytes <= 0) return;
    const e = this.estimates[rung]!;
    const weight = EWMA_WEIGHT * Math.min(1, appBytes / EWMA_FULL_SAMPLE_BYTES);
    // A clock that did not advance would claim infinite speed; count at least 1 ns.
    const nsPerByte = Math.max(cpuMs * 1e6, 1) / appBytes;
    e.nsPerByte += weight * (nsPerByte - e.nsPerByte);
    e.wireRatio += weight * (wireBytes / appBytes - e.wireRatio);
    this.reconsider();
  }

  /** Modelled throughput (application bytes/s) of a rung under current estimates. */
  throughput(rung: number): number {
    if (rung === 0) return this.linkBytesPerSec;
    const e = this.estimates[rung]!;
    const cpuBound = (1e9 / e.nsPerByte) * this.cpuShare;
    const linkBound = this.linkBytesPerSec / Math.max(e.wireRatio, 1e-6);
    return Math.min(cpuBound, linkBound);
  }

  estimate(rung: number): { speedBytesPerSec: number; wireRatio: number } {
    if (rung === 0) return { speedBytesPerSec: Infinity, wireRatio: 1 };
    const e = this.estimates[rung]!;
    return { speedBytesPerSec: 1e9 / e.nsPerByte, wireRatio: e.wireRatio };
  }

  private reconsider(): void {
    const here = this.throughput(this.current);
    if (this.current > 0 && this.throughput(this.current - 1) >= here * (1 - SWITCH_DOWN_TOLERANCE)) {
      this.current--;
    } else if (this.current + 1 < this.ladder.length && this.throughput(this.current + 1) > here * (1 + SWITCH_UP_MARGIN)) {
      this.current++;
    }
  }

  private bestFromPriors(): number {
    let best = 0;
    let bestThroughput = this.throughput(0);
    for (let k = 1; k < this.ladder.length; k++) {
      const t = this.throughput(k);
      if (t > bestThroughput * (1 + SWITCH_UP_MARGIN)) {
        best = k;
        bestThroughput = t;
      }
    }
    return best;
  }
}
