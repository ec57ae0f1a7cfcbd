// The emulated links of the published lab report the project re-runs (README) plus the two
// heavy-loss profiles the transport must survive. Shared by the simulator, the emulator
// and the benchmarks so all three test the same links; here, not in src/lab, so that the
// simulator does not depend on the lab.

export interface LinkProfile {
  name: string;
  description: string;
  rateBps: number; // per direction
  rttMs: number; // round trip; each direction delays rttMs / 2
  lossRate: number; // per packet, per direction, 0..1
  jitterMs: number; // per-packet delay variation (order-preserving unless reordering is asked for)
  /** Bottleneck queue, in milliseconds of the link rate (drop-tail). */
  queueMs: number;
}

// 20 ms of queue: deep enough that a paced sender never overflows it, shallow enough that
// a loss-based TCP sender fills it and shows bufferbloat (as a hardware emulator would).
const QUEUE_MS = 20;

export const REPORT_PROFILES: readonly LinkProfile[] = [
  { name: 'baseline', description: 'inside the data center', rateBps: 1e9, rttMs: 0, lossRate: 0, jitterMs: 0, queueMs: QUEUE_MS },
  { name: 'sonet', description: 'low-latency SONET (NY-NJ)', rateBps: 1e9, rttMs: 5, lossRate: 0.00001, jitterMs: 0, queueMs: QUEUE_MS },
  { name: 'llmetro', description: 'low-latency Metro Ethernet', rateBps: 1e9, rttMs: 5, lossRate: 0.00005, jitterMs: 0, queueMs: QUEUE_MS },
  { name: 'metro', description: 'Metro Ethernet', rateBps: 1e9, rttMs: 12, lossRate: 0.001, jitterMs: 0, queueMs: QUEUE_MS },
  { name: 'mpls', description: 'MPLS VPN (NY-Chicago)', rateBps: 100e6, rttMs: 25, lossRate: 0.0005, jitterMs: 3, queueMs: QUEUE_MS },
];

export const STRESS_PROFILES: readonly LinkProfile[] = [
  {
    name: 'loss1',
    description: '1 Gbit/s, 25 ms, 1% random loss',
    rateBps: 1e9,
    rttMs: 25,
    lossRate: 0.01,
    jitterMs: 0,
    queueMs: QUEUE_MS,
  },
  {
    name: 'loss3',
    description: '1 Gbit/s, 25 ms, 3% random loss',
    rateBps: 1e9,
    rttMs: 25,
    lossRate: 0.03,
    jitterMs: 0,
    queueMs: QUEUE_MS,
  },
];

export const ALL_PROFILES: readonly LinkProfile[] = [...REPORT_PROFILES, ...STRESS_PROFILES];

export function findProfile(name: string): LinkProfile | undefined {
  return ALL_PROFILES.find((p) => p.name === name);
}

export function queueBytes(p: LinkProfile): number {
  return Math.round((p.rateBps / 8) * (p.queueMs / 1000));
}

/**
 * IPv4 + UDP headers: a link carries IP packets, while the simulator, the emulator's relay and
 * the benchmarks see UDP payloads, so each datagram costs this much more link time than its
 * payload (native/lh-emud.c charges the same).
 */
export const WIRE_OVERHEAD_BYTES = 28;
