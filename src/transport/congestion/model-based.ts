// Model-based rate controller (BBR-like). It keeps a model of the path, the bottleneck
// bandwidth (windowed max of delivery-rate samples) and the minimum RTT, paces at
// gain x bandwidth and caps data in flight at a small multiple of their product.
//
// Differences from BBRv1/v2, chosen for a WAN accelerator on lossy leased lines:
// - Loss alone is not congestion. Random loss is even credited back to the delivery rate
//   (the lost packets used the link). Only a loss rate far above any plausible random
//   loss (HEAVY_LOSS_RATE over a window of enough packets) cuts the model, like BBRv2's
//   inflight_hi, and then only to what actually got through.
// - A standing queue (the smallest RTT of each of several consecutive rounds stays well
//   above the recent minimum) means the model overestimates our share: the estimate is
//   reset to the delivery rate just measured, capped 15% lower (bw_hi, inflight_hi) and
//   regrown by equal absolute steps. Multiplicative cuts plus equal steps make competing
//   associations converge to fair shares (AIMD-like); BBR's probing alone barely does.
// - Startup leaves as soon as a round both stalls the growth and shows queueing, with a
//   2-BDP window, so its overshoot stays within a 20 ms drop-tail queue on most paths.
// - PROBE_RTT shrinks the window only to half the BDP (BBRv2), and any near-minimum RTT
//   sample postpones it, so a lossy, jittery path rarely pays for it.
//
// The controller is the state machine (startup, drain, PROBE_BW's cycle, PROBE_RTT) over the
// path model; its estimators keep their own files: round-stats.ts (what each round measured),
// ack-aggregation.ts, standing-queue.ts, startup-exit.ts (full-pipe detection), heavy-loss.ts,
// and model-bounds.ts (the caps a cut sets, bw_hi and inflight_hi).

import type { Millis } from '../types.ts';
import type { AckSample, LossSample, RateController } from './controller.ts';
import { WindowedFilter } from './windowed-filter.ts';
import { AckAggregation } from './ack-aggregation.ts';
import { RoundStats } from './round-stats.ts';
import { StandingQueue } from './standing-queue.ts';
import { FullPipeDetector } from './startup-exit.ts';
import { HeavyLossWindow } from './heavy-loss.ts';
import { ModelBounds } from './model-bounds.ts';

export interface ModelBasedOptions {
  /** Pacing rate before the first bandwidth sample (bits/s). Default: initial window per ms. */
  initialRateBps?: number;
  /** Never pace faster than this (bits/s). */
  maxRateBps?: number;
  /** Packet size used for window floors (bytes). */
  mss?: number;
  /**
   * [0,1) source used to desynchronise the probing cycle of competing associations. Without
   * one, draws come from a hash of the ack times and data in flight seen so far: the same
   * inputs give the same draws (replayable), while associations, which never see the same
   * acks at the same instants, draw differently.
   */
  random?: () => number;
  /** First flight, in packets of `mss` (default 256). */
  initialWindowPackets?: number;
  /**
   * Shortest round trip the controller counts, in ms (default 0: the path's own). An endpoint
   * whose acks wait for a busy host (a gateway sharing its cores with other processes) sees rounds
   * of a sub-millisecond path last anywhere from 0.5 to 10 ms: counted as they come, the bandwidth
   * filter's ten rounds and each probing phase span a few milliseconds, shorter than one scheduler
   * hiccup, and the estimate follows the host's stalls instead of the path (a 1.25x probe of half
   * a millisecond shows nothing). With this floor a round, as the filters, the detectors and the
   * probing cycle count it, lasts at least this long. Paths whose RTT is longer are unaffected.
   */
  minRoundMs?: number;
}

type Mode = 'startup' | 'drain' | 'probe-bw' | 'probe-rtt';

// 2/ln(2): the smallest gain that doubles the delivery rate every round (BBR paper).
const STARTUP_GAIN = 2 / Math.LN2;
const DRAIN_GAIN = 1 / STARTUP_GAIN;
// Startup's window is only 2 BDP (BBRv3): growth per round is still 2x, but when the pipe
// fills the overshoot is at most one BDP of queue instead of 1.89, which a 20 ms
// bottleneck queue on a 25 ms path (nearly) absorbs.
const STARTUP_CWND_GAIN = 2;
// One round probing up, one draining what the probe queued, six cruising at the estimate.
const PROBE_BW_GAINS = [1.25, 0.75, 1, 1, 1, 1, 1, 1] as const;
const PROBE_DOWN_INDEX = 1;
const FIRST_CRUISE_INDEX = 2;
// Each cycle skips 0 to 2 of its cruise phases at random. Phases last about one min RTT on
// every association of a path, so two associations whose cycles once lined up (a shared cut,
// equal draws) would probe together forever; probing together, neither probe shows a gain
// and their shares freeze (measured: 62/38 for the last 5 s of a 1 Gbit/s fairness run).
const CRUISE_SKIP_CHOICES = 3;
// 1.5 BDP (plus the measured ack aggregation) leaves room for the 1.25 probe while
// bounding the queue to half a base RTT even when jitter inflates the bandwidth estimate
// by 10-20% (measured on the mpls profile: 2 BDP overflowed its 20 ms queue, 1.5 does not).
const CWND_GAIN = 1.5;
// The bandwidth max filter spans ten rounds so one probe cycle (8 rounds) always holds a sample.
const BW_WINDOW_ROUNDS = 10;
const MIN_RTT_WINDOW_MS = 10_000;
// A sample within 5% of the minimum shows the path's base RTT is still current.
const MIN_RTT_REFRESH_TOLERANCE = 0.05;
const PROBE_RTT_DURATION_MS = 200;
const PROBE_RTT_BDP_FRACTION = 0.5;
const MIN_CWND_PACKETS = 4;
// Between two gateways of our own on 100 Mbit/s - 1 Gbit/s leased lines a larger first
// flight than TCP's 10 packets is safe (256 x 1452 B = 372 KB: 3 ms at 1 Gbit/s, 30 ms at
// 100 Mbit/s, paced over the handshake RTT), and each doubling saved is an RTT of an idle
// link: 2 rounds saved were worth +1% goodput on the 12-25 ms profiles. Slower links
// should pass a smaller initialWindowPackets.
const INITIAL_CWND_PACKETS = 256;
// Multiplicative cut on heavy loss (BBRv2's beta).
const HEAVY_LOSS_BETA = 0.7;
// Multiplicative cut of the measured delivery rate and data in flight on a standing queue:
// drains the queue at 15% of the link rate per round. No PROBE_DOWN round on top: 0.75 x
// 0.85 for a round drained twice the queue the detector needs to see, and the link idled.
const STANDING_QUEUE_BETA = 0.85;
// A standing-queue cut restarts the model no lower than this share of it. The four rounds
// of rate measure our share of a shared bottleneck well, but a gateway stalled for a few
// scheduler slices (or an ack path that paused) stretches them: in the lab on mpls one
// 150-200 ms stall measured 35 Mbit/s on a 98 Mbit/s link, the model restarted there and
// took ~1.5 s of 1.25x probes to regrow. Competing associations lose share more gradually
// than that, so repeated cuts (0.7 x 0.85 each) still converge them.
const STANDING_QUEUE_RESET_FLOOR = 0.7;
// Data in flight stays within this many BDPs once the pipe is full, the ack-aggregation
// allowance included. That allowance (up to a BDP) grew the window to 2.5 BDP after each
// late batch of acks in the lab; with the 1.5-BDP gain on top of a bandwidth estimate
// 10% high that is more than a 25 ms path plus its 20 ms drop-tail queue holds, and the
// emulator dropped ~1600 packets per 1 GiB run in bursts. 2 BDP is the path plus a queue
// of one base RTT. On sub-millisecond paths, where acks come in batches longer than the
// RTT itself, the allowance alone still sets the window. Known cost: under jitter far above
// the report's profiles the min RTT is the jitter's low point and 2 of its BDPs barely
// cover the typical pipe (simulated 100 Mbit/s, 25 ms, 6 ms jitter: 68-76% goodput,
// 76-84% before the cap). Allowing for the typical round-minimum RTT fixed that but
// unsettled mpls fairness (4 of 12 seeds outside 40-60%).
const MAX_INFLIGHT_BDP = 2;
const DEFAULT_MSS = 1452;

/**
 * The controller's state that a reset (persistent congestion) starts over: the path model, the
 * round bookkeeping, startup's full-pipe detection, the probing cycle and the loss windows.
 * Built in one place, so a field added here cannot be forgotten by onReset.
 */
interface ModelState {
  mode: Mode;
  pacingGain: number;
  cwndGain: number;

  // Path model (the minimum RTT lives on the controller: a reset may keep it).
  readonly bw: WindowedFilter;
  readonly bounds: ModelBounds;
  readonly ackAggregation: AckAggregation;

  // The current round trip and the rounds before it, and what they show.
  readonly rounds: RoundStats;
  readonly standingQueue: StandingQueue;
  probeBwEntered: boolean;

  // Startup's full-pipe detection.
  filledPipe: boolean;
  readonly fullPipe: FullPipeDetector;

  // PROBE_BW cycle.
  cycleIndex: number;
  cycleStartMs: Millis;

  // PROBE_RTT.
  probeRttDoneMs: Millis;
  probeRttDoneRound: number;

  readonly heavyLoss: HeavyLossWindow;
}

function newModelState(now: Millis, mss: number): ModelState {
  return {
    mode: 'startup',
    pacingGain: STARTUP_GAIN,
    cwndGain: STARTUP_CWND_GAIN,
    bw: new WindowedFilter(BW_WINDOW_ROUNDS, 'max'),
    bounds: new ModelBounds(),
    ackAggregation: new AckAggregation(now),
    rounds: new RoundStats(now),
    standingQueue: new StandingQueue(),
    probeBwEntered: false,
    filledPipe: false,
    fullPipe: new FullPipeDetector(),
    cycleIndex: 0,
    cycleStartMs: now,
    probeRttDoneMs: -1,
    probeRttDoneRound: 0,
    heavyLoss: new HeavyLossWindow(now, mss),
  };
}

export class ModelBasedController implements RateController {
  readonly name = 'model-based';

  readonly #mss: number;
  readonly #maxRateBps: number;
  readonly #initialRateBps: number | undefined;
  readonly #random: (() => number) | undefined;
  #ackHash = 0x9e3779b9;
  readonly #initialWindow: number;
  readonly #minRoundMs: number;

  /** Everything a reset starts over (see onReset and newModelState). */
  #s: ModelState;

  // Kept across a reset: startup resumes from them (see onReset).
  #minRttMs = Infinity;
  #minRttStampMs = 0;
  /** The model's bandwidth and BDP at the last reset: startup's floor until the pipe is full again. */
  #resumeBw = 0;
  #resumeBdp = 0;
  /** When the first ack after a reset came (Infinity: none yet); earlier-sent packets are not sampled. */
  #resumeAckAt = Number.NEGATIVE_INFINITY;
  /** Round trips counted since the start: the filters' clock. A round ends when a packet sent after it began is acked. */
  #round = 0;

  #bytesInFlight = 0;

  constructor(opts: ModelBasedOptions = {}) {
    this.#mss = opts.mss ?? DEFAULT_MSS;
    this.#maxRateBps = opts.maxRateBps ?? Infinity;
    this.#initialRateBps = opts.initialRateBps;
    this.#random = opts.random;
    this.#initialWindow = (opts.initialWindowPackets ?? INITIAL_CWND_PACKETS) * this.#mss;
    this.#minRoundMs = Math.max(0, opts.minRoundMs ?? 0);
    this.#s = newModelState(0, this.#mss);
  }

  /** Current state, for tests and diagnostics. */
  get mode(): Mode {
    return this.#s.mode;
  }

  /** Mode and, in PROBE_BW, the pacing gain of the current phase (diagnostics). */
  get phase(): string {
    return this.#s.mode === 'probe-bw' ? `probe-bw ${this.#s.pacingGain}` : this.#s.mode;
  }

  get minRttMs(): number {
    return this.#minRttMs;
  }

  onPacketSent(_now: Millis, _bytes: number, bytesInFlight: number, _isAppLimited: boolean): void {
    this.#bytesInFlight = bytesInFlight;
  }

  onAck(s: AckSample): void {
    const now = s.now;
    this.#bytesInFlight = s.bytesInFlight;
    // After a reset, the first acks are of probes sent into the outage: their rate and RTT
    // samples span it (a few kbit/s, seconds). Only packets sent after the first ack describe
    // the path that came back.
    if (this.#resumeAckAt === Infinity) {
      this.#resumeAckAt = now;
      this.#s.rounds.startMs = now;
      // (Nothing was counted since the reset: see onLoss.)
      this.#s.heavyLoss.restart(now);
    }
    if ((s.sentAt ?? now - s.rttMs) < this.#resumeAckAt) return;
    this.#ackHash = Math.imul(this.#ackHash ^ ((now * 1024) | 0) ^ s.bytesInFlight, 0x85ebca6b) >>> 0;
    this.#s.heavyLoss.onAck(s.bytesAcked);
    this.#s.rounds.onAck(s.bytesAcked);

    const sentAt = s.sentAt ?? now - s.rttMs;
    let roundEnded = false;
    // A round ends when a packet sent after it began is acked, and not before minRoundMs passed.
    if (sentAt >= this.#s.rounds.startMs && now - this.#s.rounds.startMs >= this.#minRoundMs) {
      roundEnded = true;
      this.#round++;
    }

    // Per-ack samples (one RTT each, guarded against ack compression by the send interval)
    // show a probe's gain at once: that is what lets a small association claim bandwidth
    // from a large one within a few probe cycles. Random loss is credited back (the lost
    // packets used the link), within limits (round-stats.ts).
    if (s.deliveryRateBps > 0) {
      const credited = this.#s.rounds.creditLoss(s.deliveryRateBps);
      const rate = Math.min(credited, this.#maxRateBps);
      if (!s.isAppLimited || rate >= this.#s.bw.best) this.#s.bw.update(this.#round, rate);
    }

    const minRttExpired = this.#updateMinRtt(now, s.rttMs);
    this.#s.ackAggregation.onAck(now, s.bytesAcked, this.#s.bw.best, this.#bdp(), MIN_CWND_PACKETS * this.#mss, this.#round);

    if (roundEnded) this.#endRound(now, s.isAppLimited);
    this.#checkLossWindow(now);
    this.#updateMode(now, minRttExpired);
  }

  onLoss(s: LossSample): void {
    this.#bytesInFlight = s.bytesInFlight;
    // Packets lost into an outage (see onReset) say nothing about the path that comes back.
    if (s.lostPacketSentAt < this.#resumeAckAt) return;
    this.#s.heavyLoss.onLoss(s.bytesLost);
    this.#s.rounds.onLoss(s.bytesLost);
    this.#checkLossWindow(s.now);
  }

  onReset(now: Millis): void {
    // Persistent congestion (RFC 9002 §7.6) is most often an outage: nothing at all comes back,
    // then the link returns as it was. Startup from scratch took seconds to refill a 1 Gbit/s path
    // (and its first samples span the outage, far below the path). So startup resumes at the
    // rate and window the model had; startup's own exits (no growth, heavy loss) correct it
    // within a few rounds if the path really got worse. The minimum RTT is kept too: without it
    // startup's floor assumed a 1 ms path and sent the whole window in one burst.
    if (this.#s.filledPipe || this.#resumeBw === 0) {
      this.#resumeBw = this.#modelBw();
      this.#resumeBdp = this.#bdp();
    }
    this.#resumeAckAt = Infinity;
    if (this.#resumeBw === 0) {
      this.#minRttMs = Infinity;
      this.#minRttStampMs = now;
    }
    // The round counter is the filters' clock and keeps running; everything else starts over.
    // (The round that was under way starts at the first ack after the reset: see onAck.)
    this.#s = newModelState(now, this.#mss);
  }

  pacingRateBps(): number {
    let rate = this.#s.pacingGain * this.#modelBw();
    // Until the pipe is full, never pace below what sends the initial window in one RTT
    // (BBR): the first samples, taken on the handshake and the first few packets, are far
    // below the path's rate and would otherwise slow startup down for several rounds.
    // (Also whenever the model is empty, as after a reset: never a rate of zero.)
    if ((!this.#s.filledPipe && this.#s.mode === 'startup') || this.#s.bw.isEmpty) {
      let floor: number;
      if (this.#resumeBw > 0) {
        // Resuming after a reset: the rate the path carried (the initial window's floor could
        // be several times a slow path's rate, and the whole window would leave in a burst).
        floor = this.#resumeBw;
      } else if (Number.isFinite(this.#minRttMs)) {
        floor = (STARTUP_GAIN * this.#initialWindow * 8000) / Math.max(this.#minRttMs, 0.001);
      } else {
        floor = this.#initialRateBps ?? (STARTUP_GAIN * this.#initialWindow * 8000) / 1;
      }
      if (rate < floor) rate = floor;
    }
    return Math.min(rate, this.#maxRateBps);
  }

  cwndBytes(): number {
    const minCwnd = MIN_CWND_PACKETS * this.#mss;
    const bdp = this.#bdp();
    if (this.#s.mode === 'probe-rtt') return Math.max(minCwnd, PROBE_RTT_BDP_FRACTION * bdp);
    let cwnd = bdp > 0 ? this.#s.cwndGain * bdp + this.#s.ackAggregation.extraAcked : this.#initialWindow;
    if (!this.#s.filledPipe) cwnd = Math.max(cwnd, this.#initialWindow, STARTUP_CWND_GAIN * this.#resumeBdp);
    else if (bdp > 0) cwnd = Math.min(cwnd, Math.max(MAX_INFLIGHT_BDP * bdp, this.#s.ackAggregation.extraAcked));
    cwnd = Math.min(cwnd, this.#s.bounds.inflightHi);
    return Math.max(cwnd, minCwnd);
  }

  bandwidthEstimateBps(): number {
    return this.#modelBw();
  }

  /** Bandwidth the model believes in: the max filter, capped by bw_hi after a cut. */
  #modelBw(): number {
    const bw = this.#s.bw.best;
    return Math.min(bw, this.#s.bounds.bwHi);
  }

  /** Bandwidth-delay product in bytes (0 before both are known). */
  #bdp(): number {
    if (this.#s.bw.isEmpty || !Number.isFinite(this.#minRttMs)) return 0;
    return (this.#modelBw() * this.#minRttMs) / 8000;
  }

  #updateMinRtt(now: Millis, rttMs: number): boolean {
    if (!(rttMs >= 0)) return false;
    this.#s.rounds.onRttSample(rttMs);
    const expired = now - this.#minRttStampMs > MIN_RTT_WINDOW_MS;
    if (rttMs < this.#minRttMs || (expired && this.#s.mode !== 'probe-rtt')) {
      this.#minRttMs = rttMs;
      this.#minRttStampMs = now;
    } else if (rttMs <= this.#minRttMs * (1 + MIN_RTT_REFRESH_TOLERANCE)) {
      this.#minRttStampMs = now;
    }
    return expired && this.#s.mode !== 'probe-rtt';
  }

  #endRound(now: Millis, appLimited: boolean): void {
    const rounds = this.#s.rounds;
    const roundMinRtt = rounds.minRttMs;
    const roundMaxRtt = rounds.maxRttMs;
    const roundRate = rounds.end(now);

    if (!this.#s.filledPipe && !appLimited) {
      if (this.#s.fullPipe.onRound(this.#s.bw.best, roundMaxRtt, this.#minRttMs)) this.#s.filledPipe = true;
    }

    // The bandwidth cap first: the BDP that lifts the in-flight cap is taken with its new value.
    this.#s.bounds.growBw(this.#s.bw.best);
    this.#s.bounds.growInflight(2 * CWND_GAIN * this.#bdp());

    this.#s.standingQueue.onRound(this.#round, roundMinRtt, now);

    // A round of startup with a standing queue ends startup only when the delivery rate also
    // stopped growing (the stall test above): a queue alone is not proof the pipe is full. A
    // gateway busy with a burst of TCP input answers acks late, so a new transfer's first
    // rounds show RTTs two or three times the base while the rate still doubles; leaving on the
    // queue alone started it at the warm-up's rate and probing up at 1.25x per cycle took ~0.5 s
    // to reach 1 Gbit/s in the lab (64 MiB in 0.85 s where BBR took 0.65).

    if (this.#s.mode === 'probe-bw' && this.#s.standingQueue.takeDetection()) {
      // The queue proves the link is saturated, so the recent delivery rate is our share of
      // it: the model restarts there (forgetting inflated samples), capped lower until the
      // queue has drained.
      const share = roundRate > 0 ? Math.max(roundRate, STANDING_QUEUE_RESET_FLOOR * this.#modelBw()) : Infinity;
      if (share < this.#s.bw.best) this.#s.bw.reset(this.#round, share);
      this.#cut(STANDING_QUEUE_BETA * Math.min(share, this.#modelBw()), STANDING_QUEUE_BETA);
      // Cruise, from a random phase: associations sharing the queue cut in the same round,
      // and restarting them all at the same phase would synchronise their probes.
      this.#setCycle(now, this.#randomCruiseIndex(PROBE_BW_GAINS.length - FIRST_CRUISE_INDEX));
    }
  }

  #checkLossWindow(now: Millis): void {
    const deliveredRate = this.#s.heavyLoss.check(now, this.#minRttMs);
    if (deliveredRate !== null) this.#onHeavyLoss(now, deliveredRate);
  }

  #onHeavyLoss(now: Millis, deliveredRate: number): void {
    if (this.#s.mode === 'startup') {
      // The queue overflowed while doubling: the pipe is full, the estimate is right.
      this.#s.filledPipe = true;
      this.#enterDrain();
      return;
    }
    // Losses of startup's overshoot are still being detected while draining: not news.
    if (this.#s.mode !== 'probe-bw') return;
    const bw = this.#modelBw();
    this.#cut(Math.min(bw, Math.max(deliveredRate, HEAVY_LOSS_BETA * bw)), HEAVY_LOSS_BETA);
    this.#setCycle(now, PROBE_DOWN_INDEX);
  }

  /** Times the model was cut by a standing queue or heavy loss (diagnostics). */
  cuts = 0;

  #cut(bwHi: number, inflightBeta: number): void {
    this.cuts++;
    const inflight = Math.min(this.#bytesInFlight, this.cwndBytes());
    this.#s.bounds.cut(bwHi, inflight, inflightBeta, MIN_CWND_PACKETS * this.#mss, this.#mss, this.#minRttMs);
  }

  #updateMode(now: Millis, minRttExpired: boolean): void {
    if (minRttExpired && this.#s.mode !== 'probe-rtt') {
      this.#s.mode = 'probe-rtt';
      this.#s.pacingGain = 1;
      this.#s.cwndGain = 1;
      this.#s.probeRttDoneMs = -1;
      return;
    }
    switch (this.#s.mode) {
      case 'startup':
        if (this.#s.filledPipe) this.#enterDrain();
        break;
      case 'drain':
        if (this.#bytesInFlight <= this.#bdp()) this.#enterProbeBw(now);
        break;
      case 'probe-bw':
        this.#advanceCycle(now);
        break;
      case 'probe-rtt':
        this.#handleProbeRtt(now);
        break;
    }
  }

  #enterDrain(): void {
    this.#s.mode = 'drain';
    this.#s.pacingGain = DRAIN_GAIN;
    this.#s.cwndGain = STARTUP_CWND_GAIN;
  }

  #enterProbeBw(now: Millis): void {
    this.#s.mode = 'probe-bw';
    // Judge loss afresh: the window may still hold startup's overshoot, which was
    // congestion, not random loss to credit back.
    if (!this.#s.probeBwEntered) this.#s.rounds.forgetLossRate();
    this.#s.probeBwEntered = true;
    this.#s.heavyLoss.restart(now);
    this.#s.cwndGain = CWND_GAIN;
    // Start anywhere but the drain phase (BBR), so competing associations probe at different times.
    const r = this.#draw();
    let index = Math.floor(r * (PROBE_BW_GAINS.length - 1));
    if (index >= PROBE_DOWN_INDEX) index++;
    this.#setCycle(now, index);
  }

  #setCycle(now: Millis, index: number): void {
    this.#s.cycleIndex = index;
    this.#s.cycleStartMs = now;
    this.#s.pacingGain = PROBE_BW_GAINS[index]!;
  }

  #advanceCycle(now: Millis): void {
    const elapsed = now - this.#s.cycleStartMs;
    // A phase lasts a round: the min RTT, or minRoundMs where the hosts take longer than the path.
    const roundMs = Math.max(this.#minRttMs, this.#minRoundMs);
    const fullLength = elapsed > roundMs;
    const gain = this.#s.pacingGain;
    const bdp = this.#bdp();
    let advance: boolean;
    if (gain > 1) {
      // Stay until the probe has really put 1.25 BDP in flight (or two rounds passed).
      advance = fullLength && (this.#bytesInFlight >= gain * bdp || elapsed > 2 * roundMs);
    } else if (gain < 1) {
      advance = fullLength || this.#bytesInFlight <= bdp;
    } else {
      advance = fullLength;
    }
    if (!advance) return;
    const next = (this.#s.cycleIndex + 1) % PROBE_BW_GAINS.length;
    this.#setCycle(now, next === FIRST_CRUISE_INDEX ? this.#randomCruiseIndex(CRUISE_SKIP_CHOICES) : next);
  }

  /** A [0,1) draw: the injected source, else the ack hash (scrambled: murmur3's finaliser). */
  #draw(): number {
    if (this.#random) return this.#random();
    let h = this.#ackHash;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    this.#ackHash = (this.#ackHash + 0x6d2b79f5) >>> 0;
    return (h >>> 0) / 0x100000000;
  }

  /** A cruise phase index, FIRST_CRUISE_INDEX plus 0 .. choices-1 at random. */
  #randomCruiseIndex(choices: number): number {
    const r = this.#draw();
    return FIRST_CRUISE_INDEX + Math.min(choices - 1, Math.floor(r * choices));
  }

  #handleProbeRtt(now: Millis): void {
    if (this.#s.probeRttDoneMs < 0) {
      if (this.#bytesInFlight <= this.cwndBytes()) {
        this.#s.probeRttDoneMs = now + Math.max(PROBE_RTT_DURATION_MS, this.#minRttMs);
        this.#s.probeRttDoneRound = this.#round + 1;
      }
      return;
    }
    if (now >= this.#s.probeRttDoneMs && this.#round >= this.#s.probeRttDoneRound) {
      this.#minRttStampMs = now;
      if (this.#s.filledPipe) this.#enterProbeBw(now);
      else {
        this.#s.mode = 'startup';
        this.#s.pacingGain = STARTUP_GAIN;
        this.#s.cwndGain = STARTUP_CWND_GAIN;
      }
    }
  }
}

/** Factory for ConnectionConfig.rateController. */
export function modelBasedController(opts?: ModelBasedOptions): () => RateController {
  return () => new ModelBasedController(opts);
}
