// The emulator delivers what it is told, over real sockets in real namespaces (root), for
// both engines: RTT, order-preserving jitter, random loss over >= 100k packets, link rate,
// scheduled outage. Bounds are generous enough for a loaded 2-core machine and tight enough
// to catch a wrong model (e.g. full RTT per direction, loss applied twice, rate off by the
// header overhead).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { labDown, labUp, requestEmulatorStats, setLinkProfile, type LabId } from '../../src/lab/netns.ts';
import { nativeEmulatorAvailable } from '../../src/lab/emulator-native.ts';
import { WIRE_OVERHEAD_BYTES } from '../../src/link/profiles.ts';
import { LAB_ADDRESSES } from '../../src/lab/emulator-config.ts';
import type { EmulatorEngine, EmulatorReport } from '../../src/lab/emulator-stats.ts';
import { HEAVY_LAB_LOCK, holdLabLock, holdLock, LOAD_TOOL, runInSite, startInSite } from './fixtures/lab-tools.ts';

const isRoot = process.getuid?.() === 0;
const PORT = '4500';
const A = LAB_ADDRESSES;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

interface PingResult {
  rtts: number[];
  order: number[];
}
interface SendResult {
  sent: number;
  failed: number;
  seconds: number;
}
interface RecvResult {
  received: number;
  bytes: number;
  activeSeconds: number;
  windowSeconds: number;
  windowCounts: number[];
}

// Builds native/ (emulator and load tool) if needed; without a C compiler neither exists.
const nativeBuilt = isRoot && nativeEmulatorAvailable();
const loadToolMissing = !existsSync(LOAD_TOOL);

for (const engine of ['native', 'ts'] as EmulatorEngine[]) {
  const LAB: LabId = { prefix: `lht${engine[0]}`, stateDir: `/run/longhaul-lab-test-${engine}` };
  const skip = !isRoot
    ? 'needs root (network namespaces)'
    : loadToolMissing
      ? 'needs native/build/lh-udpload (make -C native; a C compiler)'
      : engine === 'native' && !nativeBuilt
        ? 'native engine not built'
        : false;

  test(`emulator (${engine} engine) delivers what it is told`, { skip, timeout: 420_000 }, async (t) => {
    /** C ping/echo with kernel receive timestamps: endpoint scheduling delays are not measured. */
    const ping = async (count: number, intervalMs: number): Promise<PingResult> => {
      const echo = startInSite(LAB, 'b', [LOAD_TOOL, 'echo', A.bPeer, PORT, String((count * intervalMs) / 1000 + 5)]);
      await echo.ready('listening');
      const r = await runInSite<PingResult>(LAB, 'a', [LOAD_TOOL, 'ping', A.aPeer, A.aNear, PORT, String(count), String(intervalMs)]);
      echo.kill();
      return r;
    };
    /**
     * The emulator's counters once it has dealt with every datagram the sender got out: each
     * one it read is delivered or dropped, none is still in its delay line or unread in its
     * socket. A snapshot taken as the sender exits would catch packets in flight (many, if the
     * emulator is catching up after a stall on a loaded machine), so accounting checks could
     * not be exact. Gives up after 10 s and returns the last snapshot for the checks to judge.
     */
    const settledStats = async (sent: number): Promise<EmulatorReport> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const stats = (await requestEmulatorStats(LAB)) ?? assert.fail('no emulator stats');
        const d = stats.aToB;
        const accounted = d.delivered + d.lost + d.outageDrops + d.queueDrops;
        if ((d.packetsIn >= sent && accounted === d.packetsIn) || Date.now() > deadline) return stats;
        await sleep(50);
      }
    };
    /**
     * Offers `pps` datagrams of `size` bytes for `seconds` from A, counted in B. The sink stops
     * after `idleMs` without traffic, so that must exceed any gap the link makes (an outage).
     */
    const blast = async (
      size: number,
      pps: number,
      seconds: number,
      idleMs = 700,
    ): Promise<{ send: SendResult; recv: RecvResult; stats: EmulatorReport }> => {
      const sink = startInSite(LAB, 'b', [LOAD_TOOL, 'recv', A.bPeer, PORT, String(seconds + 5), String(idleMs)]);
      await sink.ready('listening');
      const send = await runInSite<SendResult>(
        LAB,
        'a',
        [LOAD_TOOL, 'send', A.aPeer, A.aNear, PORT, String(size), String(pps), String(seconds)],
        (seconds + 20) * 1000,
      );
      const recv = await sink.result<RecvResult>();
      const stats = await settledStats(send.sent);
      return { send, recv, stats };
    };

    const releaseLab = await holdLabLock(LAB);
    // Delay bounds are tight: not while the heavy lab tests (QEMU migrations) load both cores.
    const releaseHeavy = await holdLock(HEAVY_LAB_LOCK);
    const release = () => {
      releaseHeavy();
      releaseLab();
    };
    try {
      // replace: a test run killed half-way leaves its (detached) emulator running.
      await labUp({ lab: LAB, profile: { rate: '100mbit', rtt: '25ms' }, engine, ports: [Number(PORT)], replace: true });

      await t.test('RTT 25 ms: median within 1 ms, never early', async (st) => {
        // Warm-up: a just-started emulator on a busy machine may not have the CPU yet.
        await ping(40, 5);
        const { rtts } = await ping(300, 5);
        const got = rtts.filter((r) => r >= 0);
        assert.equal(got.length, 300);
        const m = median(got);
        st.diagnostic(`RTT median ${m.toFixed(3)} ms, min ${Math.min(...got).toFixed(3)}, max ${Math.max(...got).toFixed(3)}`);
        assert.ok(Math.min(...got) >= 24.8, `min RTT ${Math.min(...got).toFixed(2)} ms`);
        if (engine === 'native') {
          assert.ok(Math.abs(m - 25) <= 1, `median RTT ${m.toFixed(2)} ms`);
        } else {
          // Node's timers on a loaded machine deliver late by up to a couple of ms: the lower
          // quartile holds the configured RTT, the median stays close.
          const q1 = quantile(got, 0.25);
          assert.ok(Math.abs(q1 - 25) <= 1, `RTT lower quartile ${q1.toFixed(2)} ms`);
          assert.ok(Math.abs(m - 25) <= 2, `median RTT ${m.toFixed(2)} ms`);
        }
      });

      await t.test('jitter 3 ms keeps order, varies the delay, keeps the mean RTT', async (st) => {
        await setLinkProfile({ rate: '100mbit', rtt: '25ms', jitter: '3ms' }, { lab: LAB });
        const { rtts, order } = await ping(400, 5);
        const got = rtts.filter((r) => r >= 0);
        assert.equal(got.length, 400);
        assert.deepEqual(
          order,
          [...order].sort((a, b) => a - b),
          'arrival order must equal send order',
        );
        const m = median(got);
        assert.ok(Math.abs(m - 25) <= (engine === 'native' ? 2 : 3), `median RTT ${m.toFixed(2)} ms`);
        const spread = quantile(got, 0.95) - quantile(got, 0.05);
        const iqr = quantile(got, 0.75) - quantile(got, 0.25);
        st.diagnostic(
          `RTT median ${m.toFixed(3)} ms, p5..p95 spread ${spread.toFixed(3)} ms, IQR ${iqr.toFixed(3)} ms, range ${Math.min(...got).toFixed(2)}..${Math.max(...got).toFixed(2)}`,
        );
        // Two directions of +-3 ms: the RTT spreads over several ms, never below 25 - 6 ms.
        assert.ok(spread > 2, `RTT spread p5..p95 ${spread.toFixed(2)} ms`);
        assert.ok(iqr < 6, `RTT interquartile range ${iqr.toFixed(2)} ms`);
        assert.ok(Math.min(...got) >= 25 - 6 - 0.2, `min RTT ${Math.min(...got)}`);
      });

      await t.test('1% random loss over >= 100k packets within binomial bounds, the rest delivered', async (st) => {
        await setLinkProfile({ rate: 'unlimited', rtt: '2ms', loss: '1%' }, { lab: LAB, seed: 99 });
        const { send, recv, stats } = await blast(200, 25_000, 4.4);
        const d = stats.aToB;
        assert.ok(d.packetsIn >= 100_000, `only ${d.packetsIn} packets in`);
        assert.ok(d.packetsIn >= send.sent * 0.99, `emulator saw ${d.packetsIn} of ${send.sent}`);
        const p = 0.01;
        const sd = Math.sqrt(d.packetsIn * p * (1 - p));
        st.diagnostic(
          `lost ${d.lost} of ${d.packetsIn} (${((d.lost / d.packetsIn) * 100).toFixed(3)}%), sink ${recv.received}, delivered ${d.delivered}`,
        );
        assert.ok(Math.abs(d.lost - d.packetsIn * p) < 5 * sd, `lost ${d.lost} of ${d.packetsIn}`);
        assert.equal(d.queueDrops, 0);
        assert.equal(d.delivered, d.packetsIn - d.lost);
        assert.ok(
          recv.received >= d.delivered * 0.995 && recv.received <= d.delivered,
          `sink got ${recv.received}, emulator delivered ${d.delivered}`,
        );
      });

      await t.test('link rate 50 Mbit/s within 3% under 2x overload', async (st) => {
        await setLinkProfile({ rate: '50mbit', rtt: '10ms', queue: '20ms' }, { lab: LAB });
        const size = 1422; // 1450 bytes on the wire
        const wire = size + WIRE_OVERHEAD_BYTES;
        const { recv, stats } = await blast(size, Math.round(100e6 / (wire * 8)), 4);
        // Per-100 ms windows by kernel arrival time; the median window is the link's rate even if
        // a loaded machine stalls the relay for a moment (a stall shows in a few windows only).
        const windowMbps = recv.windowCounts.map((c) => (c * wire * 8) / recv.windowSeconds / 1e6);
        const mbps = median(windowMbps);
        const overall = ((recv.received - 1) * wire * 8) / recv.activeSeconds / 1e6;
        st.diagnostic(
          `median window ${mbps.toFixed(3)} Mbit/s over ${windowMbps.length} windows, overall ${overall.toFixed(3)} Mbit/s, queue drops ${stats.aToB.queueDrops} of ${stats.aToB.packetsIn}`,
        );
        assert.ok(windowMbps.length >= 30, `only ${windowMbps.length} windows`);
        // Never faster than the link, for either engine. The TS engine models an arrival when it
        // reads it, so time it waits for the CPU (seen: load 5 on 2 cores) is link time lost
        // and extra queue drops: it can fall short (by ~8% median, ~20% overall as seen), and
        // only the native engine, modelling kernel arrival times, is held to the rate from below.
        const [medianLow, overallLow] = engine === 'native' ? [48.5, 50 * 0.85] : [50 * 0.85, 50 * 0.7];
        assert.ok(mbps >= medianLow && mbps <= 51.5, `delivered ${mbps.toFixed(2)} Mbit/s (median of 100 ms windows)`);
        assert.ok(overall > overallLow && overall < 50 * 1.03, `overall ${overall.toFixed(2)} Mbit/s`);
        assert.ok(stats.aToB.queueDrops > stats.aToB.packetsIn * 0.3, `queue drops ${stats.aToB.queueDrops} of ${stats.aToB.packetsIn}`);
        assert.ok(stats.aToB.maxQueueBytes <= (50e6 / 8) * 0.02 + wire);
      });

      await t.test('scheduled outage drops what arrives inside the window', async (st) => {
        await setLinkProfile({ rate: '100mbit', rtt: '2ms', outage: '1s-2s' }, { lab: LAB });
        // The sink must sit out the 1 s gap without taking it for the end of the traffic.
        const { send, recv, stats } = await blast(200, 2000, 3, 1500);
        const drops = stats.aToB.outageDrops;
        st.diagnostic(`outage drops ${drops} of ${stats.aToB.packetsIn}, sink ${recv.received}, delivered ${stats.aToB.delivered}`);
        // 1 s at 2000 packets/s. The native engine models arrivals at kernel time (exact); the TS
        // engine at the time it reads them, so a stall at the window's edges can add a little.
        const high = engine === 'native' ? 2100 : 2500;
        assert.ok(drops >= 1900 && drops <= high, `outage drops ${drops} (expected ~2000)`);
        const d = stats.aToB;
        // Every packet is accounted for: stats are taken once the emulator has drained.
        assert.ok(d.packetsIn >= send.sent, `emulator saw ${d.packetsIn} of ${send.sent}`);
        assert.equal(
          d.delivered,
          d.packetsIn - drops - d.queueDrops - d.lost,
          `delivered ${d.delivered}, in ${d.packetsIn}, outage drops ${drops}, queue drops ${d.queueDrops}, lost ${d.lost}`,
        );
        assert.ok(
          recv.received >= d.delivered * 0.995 && recv.received <= d.delivered,
          `sink got ${recv.received}, emulator delivered ${d.delivered}`,
        );
      });
    } finally {
      await labDown({ lab: LAB });
      release();
    }
  });
}
