// auto's measured check against sending raw: raw that fills the link hands over to the model's
// codec; a codec whose output still fills the link stays; a codec that leaves the link short (the
// CPU is the limit) must move more source bytes per second than raw in a trial, or raw takes over;
// and a winning codec is re-checked less and less often.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ARBITER_MAX_HOLD_MS, ARBITER_MIN_HOLD_MS, ARBITER_WINDOW_MS, CompressionArbiter, LINK_FULL } from '../../src/codec/arbiter.ts';
import { PathMemory } from '../../src/codec/path-memory.ts';

const LINK = 125e6; // bytes/s: 1 Gbit/s

/**
 * Drives the arbiter with windows of ARBITER_WINDOW_MS for `ms` of wall time: `rate` gives the source MB/s and
 * the wire ratio the pipeline achieves with the setting in use at that moment; the transport
 * sends the wire bytes (at most the link's rate).
 */
function drive(
  a: CompressionArbiter,
  t0: number,
  ms: number,
  rate: (current: 'model' | 'none') => { mbps: number; ratio: number },
  link = LINK,
): number {
  let t = t0;
  for (; t < t0 + ms; t += ARBITER_WINDOW_MS) {
    const r = rate(a.current);
    const inBytes = (r.mbps * 1e6 * ARBITER_WINDOW_MS) / 1000;
    const sendingBps = Math.min(r.mbps * 1e6 * r.ratio, link) * 8;
    a.observeWindow(inBytes, inBytes * r.ratio, ARBITER_WINDOW_MS, t + ARBITER_WINDOW_MS, { rateBps: link * 8, sendingBps });
  }
  return t;
}

// The lab's 1 Gbit/s links with the vm payload: raw is CPU-bound short of the link, and the codec is slower still.
const cpuBoundCodecSlower = (c: 'model' | 'none') => (c === 'none' ? { mbps: 90, ratio: 1 } : { mbps: 74, ratio: 0.36 });

test('raw first; raw that stays short of the link (the CPU is the limit) stays raw, without trials', () => {
  const a = new CompressionArbiter();
  assert.equal(a.current, 'none');
  drive(a, 0, 60_000, cpuBoundCodecSlower);
  assert.equal(a.choice, 'none');
  assert.equal(a.trials, 0);
  assert.equal(a.switches, 0);
});

test('raw that fills the link hands over to the codec at once; a codec whose output still fills the link stays', () => {
  const a = new CompressionArbiter();
  // 100 Mbit/s: raw fills it, compressed data carries 2.7x the source bytes over it.
  const slowLink = 12.5e6;
  drive(a, 0, ARBITER_WINDOW_MS, (c) => (c === 'none' ? { mbps: 12, ratio: 1 } : { mbps: 33, ratio: 0.36 }), slowLink);
  assert.equal(a.choice, 'model', 'one window of raw at the link rate is enough');
  drive(a, ARBITER_WINDOW_MS, 60_000, (c) => (c === 'none' ? { mbps: 12, ratio: 1 } : { mbps: 33, ratio: 0.36 }), slowLink);
  assert.equal(a.choice, 'model');
  assert.equal(a.trials, 0, 'no trial while the link is the limit: it would cost link time');
  assert.ok(12 / 12.5 >= LINK_FULL);
});

test('a codec that leaves the link short and moves less than raw is replaced by raw after a trial', () => {
  const a = new CompressionArbiter();
  // It started on a link that raw filled, then the link got faster (the CPU became the limit).
  let t = drive(a, 0, ARBITER_WINDOW_MS, () => ({ mbps: 120, ratio: 1 }));
  assert.equal(a.choice, 'model');
  t = drive(a, t, ARBITER_MIN_HOLD_MS + 4000, cpuBoundCodecSlower);
  assert.equal(a.choice, 'none');
  assert.equal(a.trials, 1);
});

test('a CPU-bound codec that moves more than raw stays, and is challenged less and less often', () => {
  const a = new CompressionArbiter();
  let t = drive(a, 0, ARBITER_WINDOW_MS, () => ({ mbps: 120, ratio: 1 }));
  t = drive(a, t, 130_000, (c) => (c === 'none' ? { mbps: 60, ratio: 1 } : { mbps: 100, ratio: 0.36 }));
  assert.equal(a.choice, 'model');
  // Holds of 4, 8, 16, 32, 64 s (plus trials of three windows): at most six trials in two minutes.
  assert.ok(a.trials >= 3 && a.trials <= 6, `trials ${a.trials}`);
  assert.ok(ARBITER_MAX_HOLD_MS >= 8 * ARBITER_MIN_HOLD_MS);
});

test('within the margin the codec stays, unless it barely compresses (then raw)', () => {
  const close = new CompressionArbiter();
  let t = drive(close, 0, ARBITER_WINDOW_MS, () => ({ mbps: 120, ratio: 1 }));
  drive(close, t, 20_000, (c) => (c === 'none' ? { mbps: 101, ratio: 1 } : { mbps: 100, ratio: 0.5 }));
  assert.equal(close.choice, 'model', 'a 1% difference is noise: the codec stays');
  const useless = new CompressionArbiter();
  t = drive(useless, 0, ARBITER_WINDOW_MS, () => ({ mbps: 120, ratio: 1 }));
  drive(useless, t, 20_000, (c) => (c === 'none' ? { mbps: 79, ratio: 1 } : { mbps: 80, ratio: 0.97 }));
  assert.equal(useless.choice, 'none', 'compressing 3% away is not worth its CPU on a tie');
});

test('a trial is judged by what the transport sent, not by what the encoder took in while filling the send buffers', () => {
  // A compressed start at 1 Gbit/s in the lab: the encoder takes in 900 Mbit/s of source and
  // fills the send buffers, the transport (the same busy thread) sends 60 Mbit/s of wire at a
  // third of the source's size: 180 Mbit/s of source moved. Raw then moves 600. (The arbiter
  // started a hold earlier, so its start's hold is over.)
  const a = new CompressionArbiter('model', -ARBITER_MIN_HOLD_MS);
  const window = (inMbps: number, ratio: number, sendingMbps: number, at: number): void => {
    const inBytes = (inMbps * 1e6 * ARBITER_WINDOW_MS) / 8000;
    a.observeWindow(inBytes, inBytes * ratio, ARBITER_WINDOW_MS, at, { rateBps: 1e9, sendingBps: sendingMbps * 1e6 });
  };
  let t = 0;
  for (let i = 0; i < 3; i++) window(900, 0.33, 60, (t += ARBITER_WINDOW_MS));
  assert.equal(a.trials, 1, 'two windows short of the link (after the first, with a new estimate) start a trial');
  // Raw's input is held to what the transport drains: less than the codec's input above.
  for (let i = 0; i < 3; i++) window(600, 1, 600, (t += ARBITER_WINDOW_MS));
  assert.equal(a.choice, 'none');
});

test('a compressed start holds like a switch to the codec: no trial of raw before ARBITER_MIN_HOLD_MS', () => {
  const a = new CompressionArbiter('model', 0);
  let t = drive(a, 0, ARBITER_MIN_HOLD_MS - ARBITER_WINDOW_MS, cpuBoundCodecSlower);
  assert.equal(a.trials, 0, 'CPU-bound windows during the hold start no trial');
  assert.equal(a.choice, 'model');
  t = drive(a, t, 4 * ARBITER_WINDOW_MS, cpuBoundCodecSlower);
  assert.equal(a.trials, 1, 'the first window after the hold starts one');
  drive(a, t, 4 * ARBITER_WINDOW_MS, cpuBoundCodecSlower);
  assert.equal(a.choice, 'none', 'and raw, faster here, wins it');
});

test('windows in which the link estimate still grows fast (the transport starting) start no trial', () => {
  // The transport's first round trips on a 100 Mbit/s link: it sends at half an estimate that
  // doubles every window. Once the estimate settles with the link still short, raw is tried
  // (started a hold earlier: its start's hold is over).
  const a = new CompressionArbiter('model', -ARBITER_MIN_HOLD_MS);
  let t = 0;
  for (const rate of [12.5e6, 25e6, 50e6, 100e6]) {
    a.observeWindow(3e6, 1e6, ARBITER_WINDOW_MS, (t += ARBITER_WINDOW_MS), { rateBps: rate, sendingBps: 0.5 * rate });
  }
  assert.equal(a.trials, 0);
  for (let i = 0; i < 2; i++) a.observeWindow(3e6, 1e6, ARBITER_WINDOW_MS, (t += ARBITER_WINDOW_MS), { rateBps: 110e6, sendingBps: 50e6 });
  assert.equal(a.trials, 1);
});

test("a verdict stands for the path's next streams until its own hold is over; then they start from their figures again", () => {
  const path = new PathMemory();
  const first = new CompressionArbiter('none', 0, path);
  let t = drive(first, 0, ARBITER_WINDOW_MS, () => ({ mbps: 120, ratio: 1 }));
  assert.equal(path.verdictAt(t)?.choice, 'model', 'raw filled the link: the codec');
  t = drive(first, t, ARBITER_MIN_HOLD_MS + 4000, cpuBoundCodecSlower);
  assert.equal(first.choice, 'none');
  const verdict = path.verdictAt(t);
  assert.equal(verdict?.choice, 'none', 'raw won its trial');

  // A stream opened now starts raw, though its own figures would have it compress, and runs no
  // trial before the first stream would have.
  const next = new CompressionArbiter('model', t, path);
  assert.equal(next.current, 'none');
  assert.ok(next.inherited);
  drive(next, t, verdict!.untilMs - t - ARBITER_WINDOW_MS, (c) => (c === 'none' ? { mbps: 120, ratio: 1 } : { mbps: 74, ratio: 0.36 }));
  assert.equal(next.choice, 'none', 'raw filling the link does not hand over before the hold ends');
  assert.equal(next.switches, 0);

  // Past the hold the question is open again.
  const late = new CompressionArbiter('model', verdict!.untilMs, path);
  assert.equal(late.current, 'model');
  assert.equal(late.inherited, false);
});
