// What limited a run: the link (its time is close to the shortest the link allows for the
// bytes actually sent), the CPU (all cores nearly busy, or one Longhaul gateway's thread nearly
// a whole core), or else the protocol.
// Runs recorded before these figures existed are `unknown`, never guessed.

import { WIRE_OVERHEAD_BYTES } from '../../link/profiles.ts';

/** A run within this fraction above its link floor is link-limited. */
export const LINK_FLOOR_TOLERANCE = 0.1;
/** A machine busy at least this share of all its cores during the run is CPU-limited. */
export const CPU_BUSY_THRESHOLD = 0.9;
/**
 * A Longhaul gateway is one thread: one busy at least this share of one core during the run is
 * the limit even while the machine has a core to spare.
 */
export const GATEWAY_CORE_THRESHOLD = 0.9;
const GATEWAY_ROLES = ['gateway_a', 'gateway_b'];

export type Limit = 'link' | 'cpu' | 'protocol' | 'unknown';

/**
 * The shortest time the link allows for what crossed it A -> B: delivered payload bytes plus
 * the per-datagram headers the emulator serializes, at the link rate. Null for an unlimited link.
 */
export function linkFloorSeconds(wireBytes: number, wirePackets: number, rateBps: number): number | null {
  if (!(rateBps > 0) || !Number.isFinite(rateBps) || wireBytes < 0 || wirePackets < 0) return null;
  return ((wireBytes + wirePackets * WIRE_OVERHEAD_BYTES) * 8) / rateBps;
}

/** The figures a classification needs; all optional, as old result lines lack them. */
export interface LimitFigures {
  seconds: number;
  link_floor_seconds?: number | null;
  machine_busy?: number | null;
  cpu_seconds?: Record<string, number | null>;
}

/** The larger share of one core a Longhaul gateway used during the run (null: none recorded). */
export function busiestGatewayShare(r: LimitFigures): number | null {
  let best: number | null = null;
  for (const role of GATEWAY_ROLES) {
    const s = r.cpu_seconds?.[role];
    if (typeof s === 'number' && r.seconds > 0) best = Math.max(best ?? 0, s / r.seconds);
  }
  return best;
}

export function classifyLimit(r: LimitFigures): Limit {
  const floor = r.link_floor_seconds;
  if (typeof floor === 'number' && floor > 0 && r.seconds <= floor * (1 + LINK_FLOOR_TOLERANCE)) return 'link';
  const busy = r.machine_busy;
  if (typeof busy !== 'number') return 'unknown';
  if (busy >= CPU_BUSY_THRESHOLD) return 'cpu';
  const gateway = busiestGatewayShare(r);
  if (gateway !== null && gateway >= GATEWAY_CORE_THRESHOLD) return 'cpu';
  // Without a floor (unlimited link) a run that is not CPU-bound is still the protocol's doing.
  return 'protocol';
}
