import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AdaptivePolicy,
  DEFAULT_LADDER,
  EXPLORE_INTERVAL,
  HEADROOM_BUSY_ADMIT,
  HEADROOM_BUSY_KEEP,
  LINK_BOUND_TOLERANCE,
  OUTPUT_WINDOW_MS,
} from '../../src/codec/adaptive.ts';
import type { Rung } from '../../src/codec/adaptive.ts';
import { BlockDecoder } from '../../src/codec/decoder.ts';
import { BlockEncoder, type BlockEncoderOptions, cpuShareFromLoad, type LinkNow } from '../../src/codec/encoder.ts';
import { ARBITER_WINDOW_MS } from '../../src/codec/arbiter.ts';
import { textLike } from './fixtures.ts';

const KiB = 1024;
const text64 = textLike(64 * KiB, 2);
// A machine where LZ4 is fast and zstd slow, so the three regimes are distinct.
const LADDER: Rung[] = [
  { setting: null, speedBytesPerSec: Infinity, wireRatio: 1 },
  { setting: { codec: 'lz4', level: 0 }, speedBytesPerSec: 1000e6, wireRatio: 0.5 },
  { setting: { codec: 'zstd', level: 1 }, speedBytesPerSec: 200e6, wireRatio: 0.35 },
];

const zstdRung = (level: number) => DEFAULT_LADDER.findIndex((r) => r.setting?.codec === 'zstd' && r.setting.level === level);
const ZSTD5 = zstdRung(5);
const ZSTD7 = zstdRung(7);

function settingOfLevel(policy: AdaptivePolicy): number | undefined {
  const s = policy.settingOf(policy.currentRung);
  return s?.codec === 'zstd' ? s.level : undefined;
}

function settingName(policy: AdaptivePolicy): string {
  const s = policy.settingOf(policy.currentRung);
  return s === null ? 'none' : s.codec === 'zstd' ? `zstd:${s.level}` : s.codec;
}

describe('AdaptivePolicy', () => {
  it('models throughput as min(CPU share / (codec + wire x pipeline CPU), link / wire ratio)', () => {
    const codecOnly = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 1e9, cpuShare: 0.5, cpuMargin: 1, wireCpuNsPerByte: 0 });
    assert.equal(codecOnly.throughput(0), 125e6);
    assert.equal(codecOnly.throughput(1), Math.min(500e6, 125e6 / 0.5));
    assert.equal(codecOnly.throughput(2), Math.min(100e6, 125e6 / 0.35));
    // lz4 1 ns + 0.5 x 4 ns; zstd 5 ns + 0.35 x 4 ns; none 4 ns per byte.
    const withPipeline = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 1e9, cpuShare: 1, cpuMargin: 1, wireCpuNsPerByte: 4 });
    assert.equal(withPipeline.throughput(0), Math.min(1e9 / 4, 125e6));
    assert.ok(Math.abs(withPipeline.throughput(1) - Math.min(1e9 / 3, 250e6)) < 1);
    assert.ok(Math.abs(withPipeline.throughput(2) - Math.min(1e9 / 6.4, 125e6 / 0.35)) < 1);
  });

  it('a slow-link rung takes part only while its CPU rate clears the margin over the link', () => {
    // lz4 as a slow-link rung: 1000 MB/s of CPU at half a core = 500 MB/s.
    const ladder: Rung[] = [LADDER[0]!, { ...LADDER[1]!, needsHeadroom: true }];
    const policy = new AdaptivePolicy({ ladder, linkRateBps: 1e9, cpuShare: 0.5, cpuMargin: 3, wireCpuNsPerByte: 0 });
    // 1 Gbit/s at wire 0.5 needs 250 MB/s: 500 < 3 x 250, so lz4 sits out although it would be faster.
    assert.equal(policy.throughput(1), 250e6);
    assert.equal(policy.linkBound(1), true);
    assert.equal(policy.clearsMargin(1), false);
    assert.equal(policy.eligible(1), false);
    assert.equal(settingName(policy), 'none');
    // 100 Mbit/s needs 25 MB/s: 500 >= 75.
    policy.setLinkRateBps(100e6);
    assert.equal(policy.clearsMargin(1), true);
    assert.equal(settingName(policy), 'lz4');
    // A base rung (no needsHeadroom) is always eligible, margin or not.
    const base = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 1e9, cpuShare: 0.5, cpuMargin: 3, wireCpuNsPerByte: 0 });
    assert.equal(base.eligible(1), true);
    assert.equal(settingName(base), 'lz4');
  });

  it('on a slow link picks the strongest level whose speed clears the margin; on a fast link the cheap one', () => {
    // zstd levels as measured on the project machine (vm payload, 64 KiB blocks), 8 ns pipeline.
    const policy = new AdaptivePolicy({ linkRateBps: 100e6 });
    assert.equal(settingName(policy), 'zstd:7');
    // zstd 7 (215 MB/s, 4.65 ns + 0.332 x 8 ns = 7.3 ns per byte): 137 MB/s, 3.6x the 38 the link takes.
    assert.equal(policy.clearsMargin(ZSTD7), true);
    // At 130 Mbit/s the link could take 49 MB/s: zstd 7 no longer clears the margin, zstd 5 does.
    policy.setLinkRateBps(130e6);
    assert.equal(policy.clearsMargin(ZSTD7), false);
    assert.equal(policy.linkBound(ZSTD7), true, 'though it would still keep up');
    assert.equal(settingName(policy), 'zstd:5');
    policy.setLinkRateBps(1e9);
    assert.equal(settingName(policy), 'zstd:1', 'CPU-bound at 1 Gbit/s: the cheapest good rung, as before');
    policy.setLinkRateBps(100e6);
    assert.equal(settingName(policy), 'zstd:7', 'back up once the link is slow (a 3% gain clears the link-bound margin)');
    assert.ok(LINK_BOUND_TOLERANCE < 0.03);
    policy.setLinkRateBps(10e6);
    assert.equal(settingName(policy), 'zstd:7', 'the top rung on a 10 Mbit/s link');
  });

  it('floors a too-low link estimate by its own output rate, so a dip cannot lock in a slow level', () => {
    const policy = new AdaptivePolicy({ linkRateBps: 10e6 });
    assert.equal(settingName(policy), 'zstd:7');
    // 40 MB of wire bytes went out in one window: the link carries at least that rate.
    policy.observeOutput(20e6, 0);
    policy.observeOutput(20e6, OUTPUT_WINDOW_MS / 2);
    assert.equal(settingName(policy), 'zstd:7', 'no decision before a window closes');
    policy.observeOutput(0, OUTPUT_WINDOW_MS);
    assert.equal(policy.effectiveLinkRateBps, (40e6 * 8 * 1000) / OUTPUT_WINDOW_MS);
    assert.equal(policy.linkRateBps, 10e6, 'the estimate itself is kept');
    assert.ok((settingOfLevel(policy) ?? 99) <= 3, `at ${policy.effectiveLinkRateBps / 1e6} Mbit/s: ${settingName(policy)}`);
    // A quiet window (interactive traffic) does not pull the rate under the estimate.
    policy.observeOutput(1000, 10 * OUTPUT_WINDOW_MS);
    assert.equal(policy.effectiveLinkRateBps, 10e6);
    assert.equal(settingName(policy), 'zstd:7');
  });

  it('on a saturated machine (a smaller CPU share) the slow levels lose first', () => {
    const policy = new AdaptivePolicy({ linkRateBps: 100e6 });
    assert.equal(settingName(policy), 'zstd:7');
    // Load 4 on 2 cores: half a core. zstd 7: 2 x 22 ns per byte = 23 MB/s < 38 MB/s.
    policy.setCpuShare(cpuShareFromLoad(4, 2));
    assert.equal(policy.currentCpuShare, 0.5);
    assert.equal(settingName(policy), 'zstd:3');
    // Load 8: a quarter of a core still compresses 3x faster than 100 Mbit/s needs; never raw.
    policy.setCpuShare(cpuShareFromLoad(8, 2));
    assert.equal(policy.settingOf(policy.currentRung)?.codec, 'zstd');
    assert.ok((settingOfLevel(policy) ?? 99) <= 3);
    policy.setCpuShare(cpuShareFromLoad(1.5, 2));
    assert.equal(settingName(policy), 'zstd:7', 'a quiet machine again');
    policy.setCpuShare(0);
    policy.setCpuShare(NaN);
    assert.equal(policy.currentCpuShare, 1, 'nonsense ignored');
  });

  it('the CPU share from the load average: a whole core until the load exceeds the cores', () => {
    assert.equal(cpuShareFromLoad(0, 2), 1);
    assert.equal(cpuShareFromLoad(2, 2), 1);
    assert.equal(cpuShareFromLoad(6, 2), 1 / 3);
    assert.equal(cpuShareFromLoad(3, 0), 1);
    assert.equal(cpuShareFromLoad(NaN, 2), 1);
  });

  it('steps down from a high level when its measured speed no longer clears the margin', () => {
    let t = 0;
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 100e6,
      cpuShare: 1,
      maxBlockSize: 64 * KiB,
      now: () => (t += 1),
    });
    assert.equal(encoder.stats.snapshot().encode.setting, 'none'); // nothing encoded yet
    assert.deepEqual(encoder.adaptive!.settingOf(encoder.adaptive!.currentRung), { codec: 'zstd', level: 7 });
    // Each call now measures 64 KiB / 1 ms = 65 MB/s: zstd 7 at a third of that cannot fill 100 Mbit/s.
    for (let i = 0; i < 300; i++) encoder.encode(text64);
    const rung = encoder.adaptive!.currentRung;
    const level = encoder.adaptive!.settingOf(rung)?.level ?? 0;
    assert.ok(level < 7, `still at ${JSON.stringify(encoder.adaptive!.settingOf(rung))}`);
  });

  it('zstd on a slow link, lz4 when zstd cannot keep up, none when nothing can', () => {
    // Codec CPU only (a pipeline that costs nothing per wire byte), half a core for the codec.
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 100e6, cpuShare: 0.5, wireCpuNsPerByte: 0 });
    assert.equal(settingName(policy), 'zstd:1'); // link-bound everywhere: best ratio wins
    policy.setLinkRateBps(1e9);
    assert.equal(settingName(policy), 'lz4'); // zstd would be CPU-bound at 100 MB/s < lz4's 250
    policy.setLinkRateBps(10e9);
    assert.equal(settingName(policy), 'none'); // 1.25 GB/s link beats every codec's CPU
    policy.setLinkRateBps(100e6);
    assert.equal(settingName(policy), 'zstd:1');
  });

  it('a costly pipeline makes compression pay even on a fast link: it saves more CPU than it spends', () => {
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 10e9, wireCpuNsPerByte: 8 });
    // none: 8 ns per byte = 125 MB/s; lz4: 1 + 0.5 x 8 = 5 ns = 200 MB/s.
    assert.equal(settingName(policy), 'lz4');
    policy.setWireCpuNsPerByte(0.5); // a fast pipeline: none does 1.25 GB/s (link), lz4 800 MB/s
    assert.equal(settingName(policy), 'none');
    assert.equal(policy.wireCpuNsPerByte, 0.5);
    policy.setWireCpuNsPerByte(-1); // ignored
    assert.equal(policy.wireCpuNsPerByte, 0.5);
  });

  it('with the default (measured) priors and pipeline cost: zstd from 100 Mbit/s to 10 Gbit/s', () => {
    assert.equal(DEFAULT_LADDER[0]!.setting, null);
    const policy = new AdaptivePolicy({ linkRateBps: 100e6 });
    assert.equal(policy.settingOf(policy.currentRung)?.codec, 'zstd');
    policy.setLinkRateBps(1e9);
    assert.equal(policy.settingOf(policy.currentRung)?.codec, 'zstd');
    policy.setLinkRateBps(10e9);
    assert.equal(policy.settingOf(policy.currentRung)?.codec, 'zstd', 'an 8 ns/byte pipeline cannot fill 10 Gbit/s raw');
    policy.setWireCpuNsPerByte(0.5);
    assert.equal(policy.currentRung, 0, 'a fast pipeline fills 10 Gbit/s better without compression');
  });

  it('ignores nonsense link rates', () => {
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 100e6 });
    for (const bad of [0, -5, NaN, Infinity]) policy.setLinkRateBps(bad);
    assert.equal(policy.linkRateBps, 100e6);
  });

  it('learns from paired probes how a neighbour compares on the same data', () => {
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 1e9 });
    assert.equal(settingName(policy), 'lz4');
    const before = policy.estimate(2).speedBytesPerSec; // prior: 5x slower than lz4
    const lz4Ms = ((64 * KiB) / 1000e6) * 1000; // lz4 exactly at its prior speed
    // The same blocks: zstd takes 10x as long as lz4 and sends 20 KiB where lz4 sends 32 KiB.
    for (let i = 0; i < 10; i++) policy.recordPair(1, 2, 64 * KiB, 32 * KiB, lz4Ms, 20 * KiB, 10 * lz4Ms);
    const after = policy.estimate(2);
    assert.ok(after.speedBytesPerSec < before * 0.6, `zstd estimate ${before} -> ${after.speedBytesPerSec}`);
    assert.ok(after.speedBytesPerSec > before * 0.45);
    assert.ok(Math.abs(after.wireRatio / policy.estimate(1).wireRatio - 20 / 32) < 0.05, 'wire relation = 20/32');
    assert.equal(settingName(policy), 'lz4');
  });

  it('clamps a single outlier sample (e.g. first-call warm-up)', () => {
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 100e6 });
    const before = policy.estimate(2).speedBytesPerSec;
    policy.record(2, 64 * KiB, 20 * KiB, 1000); // 1 s for 64 KiB
    const after = policy.estimate(2).speedBytesPerSec;
    assert.ok(after > before / 2, `one sample may not collapse the estimate (${before} -> ${after})`);
  });
});

describe("AdaptivePolicy with the thread's measured load", () => {
  it('admits the slow-link levels by the measured busy share, whatever the load average says', () => {
    // Load 5 on 2 cores: the modelled margin keeps zstd 5 and 7 out on a 100 Mbit/s link.
    const policy = new AdaptivePolicy({ linkRateBps: 100e6, cpuShare: 0.4 });
    assert.ok((settingOfLevel(policy) ?? 99) <= 3, settingName(policy));
    assert.equal(policy.eligible(ZSTD7), false);
    assert.equal(policy.loopBusy, null);
    // The gateway's thread is busy 20% of the time, 5% of it compressing: room for zstd 7.
    const rung = policy.currentRung;
    policy.observeLoad(0.2, 0.05);
    assert.equal(settingName(policy), 'zstd:7');
    // The measured share moved with the choice, to what zstd 7 is predicted to cost.
    const busy = policy.loopBusy!;
    assert.ok(busy > 0.2 && busy <= HEADROOM_BUSY_ADMIT, `busy ${busy}`);
    assert.equal(policy.predictedBusy(ZSTD7), busy);
    assert.ok(policy.predictedBusy(rung)! < busy);
    assert.equal(policy.linkBound(ZSTD7), true);
    // Another machine-wide load reading changes nothing while the thread's own load holds.
    policy.setCpuShare(0.25);
    assert.equal(settingName(policy), 'zstd:7');
  });

  it('does not admit a level that would keep the thread busy more than half the time', () => {
    const policy = new AdaptivePolicy({ linkRateBps: 100e6, cpuShare: 0.4 });
    const start = settingName(policy);
    // Busy 40%, of which 15% compressing with a cheap level: zstd 5 and up would need ~60-90%.
    policy.observeLoad(0.4, 0.15);
    assert.ok(policy.predictedBusy(ZSTD5)! > HEADROOM_BUSY_ADMIT);
    assert.equal(settingName(policy), start);
  });

  it('keeps its level on a moderately busy loop, steps down one level when the loop gets too busy', () => {
    const policy = new AdaptivePolicy({ linkRateBps: 100e6, cpuShare: 1 });
    policy.observeLoad(0.3, 0.15);
    assert.equal(settingName(policy), 'zstd:7');
    // Above the admission bar but under the keep bar: no flapping back and forth.
    for (let i = 0; i < 20; i++) policy.observeLoad(0.6, 0.3);
    assert.ok(policy.loopBusy! > HEADROOM_BUSY_ADMIT && policy.loopBusy! <= HEADROOM_BUSY_KEEP);
    assert.equal(settingName(policy), 'zstd:7');
    // Saturated windows: the smoothed share crosses the keep bar and the choice steps down. The
    // busy share is re-based to the prediction for the new level, so the old level's windows do
    // not push it down a second step at once.
    let steps = 0;
    while (settingName(policy) === 'zstd:7' && steps++ < 50) policy.observeLoad(1, 0.5);
    assert.equal(settingName(policy), 'zstd:5');
    assert.ok(policy.loopBusy! <= HEADROOM_BUSY_KEEP, `re-based busy ${policy.loopBusy}`);
    // Still saturated: further down, to the base ladder.
    for (let i = 0; i < 50; i++) policy.observeLoad(1, 0.5);
    assert.ok((settingOfLevel(policy) ?? 99) <= 3, settingName(policy));
    // A quiet thread again: back up to zstd 7.
    for (let i = 0; i < 50; i++) policy.observeLoad(0.2, 0.02);
    assert.equal(settingName(policy), 'zstd:7');
  });

  it('ignores nonsense load readings', () => {
    const policy = new AdaptivePolicy({ ladder: LADDER, linkRateBps: 100e6 });
    for (const [busy, codec] of [
      [-1, 0],
      [NaN, 0],
      [0.5, NaN],
      [Infinity, 0],
    ] as const)
      policy.observeLoad(busy, codec);
    assert.equal(policy.loopBusy, null);
    policy.observeLoad(3, 5); // clamped: busy <= 1, codec <= busy
    assert.equal(policy.loopBusy, 1);
  });
});

describe('BlockEncoder in auto mode', () => {
  it("measures its thread's busy share once per window, skipping the first, and lets it steer the level", () => {
    let wall = 0;
    let cpu = 0;
    let busyShare = 0.2;
    let active = 0;
    let idle = 0;
    // 50 ms pass between encode() calls, the loop busy busyShare of them; a clock read inside
    // a call (timing the codec) adds 0.01 ms.
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 100e6,
      cpuShare: 0.4,
      maxBlockSize: 4 * KiB,
      now: () => (wall += 0.01),
      cpuNow: () => (cpu += 0.005),
      loopTimes: () => ({ active, idle }),
    });
    const block = textLike(4 * KiB, 3);
    const encodeAfter50ms = () => {
      wall += 50;
      active += 50 * busyShare;
      idle += 50 * (1 - busyShare);
      encoder.encode(block);
    };
    const windowCalls = OUTPUT_WINDOW_MS / 50;
    for (let i = 0; i < windowCalls + 1; i++) encodeAfter50ms();
    assert.equal(encoder.adaptive!.loopBusy, null, "the first window (the transfer's start) is not measured");
    for (let i = 0; i < 3 * windowCalls; i++) encodeAfter50ms();
    assert.ok(Math.abs(encoder.adaptive!.loopBusy! - 0.2) < 0.02, `busy ${encoder.adaptive!.loopBusy}`);
    assert.equal(encoder.stats.snapshot().encode.loopBusy, encoder.adaptive!.loopBusy);
    assert.equal(encoder.stats.setting, 'zstd:7');
    // The thread saturates (other work, a busy machine): back to the base ladder.
    busyShare = 0.97;
    for (let i = 0; i < 30 * windowCalls; i++) encodeAfter50ms();
    const level = encoder.adaptive!.settingOf(encoder.adaptive!.currentRung)?.level ?? 0;
    assert.ok(level <= 3, encoder.stats.setting);
    // Counted per setting that produced the blocks.
    const bySetting = encoder.stats.snapshot().encode.bySetting;
    assert.ok(bySetting['zstd:7']!.blocks > 0);
    const counted = Object.values(bySetting).reduce((n, c) => n + c.blocks, 0);
    assert.equal(counted, encoder.stats.encode.blocks);
  });

  const text = textLike(64 * KiB, 1);

  it('with the measured check (the default) a CPU-bound start is raw, and raw that fills the link hands over to the codec', () => {
    let t = 0;
    // 64 KiB of source every 10 ms: 6.6 MB/s raw. The link is first thought to be 1 Gbit/s (the
    // model's figures: the CPU cannot keep up, so raw first), then measured at 50 Mbit/s with the
    // transport sending at it.
    const link = sendingLink(() => t, 1e9, 0);
    const encoder = linkedEncoder(() => t, link.read, { wireCpuNsPerByte: 30 });
    const counts = (): { raw: number; compressed: number } => {
      const e = encoder.stats.snapshot().encode;
      return { raw: e.blocksRaw, compressed: e.blocksLz4 + e.blocksZstd };
    };
    encoder.encode(text);
    t += 10;
    assert.equal(encoder.arbiterState?.current, 'none', 'raw first');
    link.set(50e6, 48e6);
    for (let i = 0; i < 79; i++, t += 10) encoder.encode(text);
    assert.equal(encoder.arbiterState?.current, 'model', 'a window with the link full');
    const before = counts();
    // Raw until a window (ARBITER_WINDOW_MS, a block every 10 ms) shows the link full.
    assert.ok(before.raw >= ARBITER_WINDOW_MS / 10 - 1, `raw blocks first: ${before.raw}`);
    for (let i = 0; i < 20; i++, t += 10) encoder.encode(text);
    assert.equal(counts().compressed - before.compressed, 20);
  });

  it('with the measured check a start whose figures keep up with the link compresses at once', () => {
    let t = 0;
    const encoder = linkedEncoder(
      () => t,
      () => ({ rateBps: 50e6, sentBytes: 0 }),
    );
    for (let i = 0; i < 10; i++, t += 10) encoder.encode(text);
    assert.equal(encoder.arbiterState?.current, 'model');
    assert.equal(encoder.stats.snapshot().encode.blocksZstd + encoder.stats.snapshot().encode.blocksLz4, 10);
  });

  it('with the measured check a compressed start that fills the link from its first window runs no trial of raw', () => {
    let t = 0;
    // The transport sends at the link's rate at once. The gateway's once-a-second rate sample read
    // ~0 over these first windows and started a trial of raw on the lab's mpls link; the encoder
    // takes the send rate over its own windows from the transport's byte count.
    const link = sendingLink(() => t, 50e6, 48e6);
    const encoder = linkedEncoder(() => t, link.read);
    for (let i = 0; i < 300; i++, t += 10) encoder.encode(text);
    assert.deepEqual(encoder.arbiterState, { current: 'model', trials: 0, switches: 0, inherited: false });

    // The same start with the transport sending well below the link (the CPU, not the link, is the
    // limit): raw is tried, once the compressed start's hold (ARBITER_MIN_HOLD_MS) is over.
    const cpuBound = sendingLink(() => t, 50e6, 10e6);
    const tried = linkedEncoder(() => t, cpuBound.read);
    for (let i = 0; i < 300; i++, t += 10) tried.encode(text);
    assert.equal(tried.arbiterState?.trials, 0, 'no trial in the first 3 s: the start holds for 4');
    for (let i = 0; i < 300; i++, t += 10) tried.encode(text);
    assert.ok((tried.arbiterState?.trials ?? 0) >= 1, `trials ${tried.arbiterState?.trials}`);
  });

  it('stops compressing when the measured codec speed cannot keep up with the link', () => {
    let t = 0;
    // Each clock read advances 2 ms: every compression call measures 64 KiB / 2 ms = 33 MB/s.
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 1e9,
      cpuShare: 1,
      maxBlockSize: 64 * KiB,
      now: () => (t += 2),
    });
    for (let i = 0; i < 200; i++) encoder.encode(text);
    const s = encoder.stats.snapshot().encode;
    assert.equal(s.setting, 'none');
    assert.ok(s.blocksRawByChoice > 100, `raw by choice ${s.blocksRawByChoice}`);

    // The same slow CPU on a 10 Mbit/s link: compressing is worth it again.
    encoder.setLinkRateBps(10e6);
    const compressedBefore = s.blocksLz4 + s.blocksZstd;
    for (let i = 0; i < 10; i++) encoder.encode(text);
    const after = encoder.stats.snapshot().encode;
    assert.notEqual(after.setting, 'none');
    assert.equal(after.blocksLz4 + after.blocksZstd - compressedBefore, 10);
  });

  it('times the codec on the CPU clock, the output rate on the wall clock', () => {
    let wall = 0;
    let cpu = 0;
    // Wall time runs 20x the CPU time (a preempted process); the codec costs 0.25 ms of CPU a block.
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 100e6,
      cpuShare: 1,
      maxBlockSize: 64 * KiB,
      now: () => (wall += 5),
      cpuNow: () => (cpu += 0.25),
    });
    for (let i = 0; i < 10; i++) encoder.encode(text);
    assert.equal(encoder.stats.snapshot().encode.cpuMs, 10 * 0.25);
  });

  it('never counts a codec call at more CPU than its wall time (other threads run on the process clock)', () => {
    let wall = 0;
    let cpu = 0;
    // The process CPU clock runs 10x the wall clock (V8's helper threads busy on another core).
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 100e6,
      cpuShare: 1,
      maxBlockSize: 64 * KiB,
      now: () => (wall += 0.1),
      cpuNow: () => (cpu += 1),
    });
    const level = encoder.adaptive!.settingOf(encoder.adaptive!.currentRung);
    for (let i = 0; i < 200; i++) encoder.encode(text);
    const s = encoder.stats.snapshot().encode;
    // One wall-clock step (0.1 ms) per call, not the CPU clock's 1 ms.
    assert.ok(Math.abs(s.cpuMs - 0.1 * (s.blocksZstd + s.blocksLz4 + s.blocks / EXPLORE_INTERVAL)) < 1, `cpu ${s.cpuMs} ms`);
    // So zstd keeps its measured speed (64 KiB in 0.1 ms) and stays the choice.
    assert.deepEqual(encoder.adaptive!.settingOf(encoder.adaptive!.currentRung), level);
    assert.equal(s.blocksRawByChoice, 0);
  });

  it(`probes a neighbouring rung once every ${EXPLORE_INTERVAL} blocks`, () => {
    let t = 0;
    // Each clock read advances 1 ms, so codec CPU ms = number of compression calls. At that
    // (slow) codec speed a 10 Mbit/s link keeps the choice link-bound: the model decides alone.
    const encoder = new BlockEncoder({
      mode: 'auto',
      checkAgainstRaw: false,
      linkRateBps: 10e6,
      cpuShare: 1,
      maxBlockSize: 64 * KiB,
      now: () => t++,
    });
    const blocks = 4 * EXPLORE_INTERVAL;
    const decoder = new BlockDecoder();
    for (let i = 0; i < blocks; i++) assert.ok(decoder.push(encoder.encode(text)).ok);
    const s = encoder.stats.snapshot().encode;
    assert.equal(s.blocksLz4 + s.blocksZstd, blocks);
    assert.equal(s.cpuMs, blocks + blocks / EXPLORE_INTERVAL);
    assert.equal(decoder.stats.decode.bytesOut, blocks * 64 * KiB);
  });
});

/** A link for the encoder's linkNow: an estimated rate, and a byte count the transport sends at sendingBps (read at clock()). */
function sendingLink(clock: () => number, rateBps: number, sendingBps: number) {
  let sent = 0;
  let at = clock();
  const advance = (): void => {
    sent += (sendingBps / 8) * ((clock() - at) / 1000);
    at = clock();
  };
  return {
    read: () => {
      advance();
      return { rateBps, sentBytes: sent };
    },
    set: (rate: number, sending: number): void => {
      advance();
      rateBps = rate;
      sendingBps = sending;
    },
  };
}

/** An 'auto' encoder on a fake clock (codec CPU time 0, a whole core) that reads the link from linkNow. */
function linkedEncoder(clock: () => number, linkNow: () => LinkNow, options: BlockEncoderOptions = {}): BlockEncoder {
  return new BlockEncoder({ mode: 'auto', maxBlockSize: 64 * KiB, now: clock, cpuNow: () => 0, cpuShare: 1, linkNow, ...options });
}
