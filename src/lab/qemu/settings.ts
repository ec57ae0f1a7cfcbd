// What a QEMU migration run is made of: the guest (RAM, how much of it the workload fills and
// with what mix, how fast it dirties pages) and QEMU's migration settings. Defaults and parsers.

import { DEFAULT_DIRTY_PAGES_PER_SEC, DEFAULT_DOWNTIME_BUDGET_MS } from '../workloads/migration-model.ts';
import { DEFAULT_VM_MIX, type VmMix } from '../workloads/payload.ts';

export const QEMU_COMPRESSIONS = ['none', 'zlib', 'zstd'] as const;
export type QemuCompression = (typeof QEMU_COMPRESSIONS)[number];

export interface QemuSettings {
  /** Guest RAM in MiB (QEMU gets 16 KiB less, see guestRamKiB). */
  memoryMiB: number;
  /** Share of the guest kernel's MemTotal that lh-guestload fills (it leaves the kernel some room). */
  fillShare: number;
  mix: VmMix;
  /** Pages lh-guestload rewrites per second, uniformly over the pages it filled. */
  dirtyPagesPerSec: number;
  /** QEMU's downtime-limit (ms): the longest stop-and-copy it aims for. */
  downtimeLimitMs: number;
  /** QEMU multifd channels (separate TCP connections); 0: the classic single stream. */
  multifdChannels: number;
  /** QEMU's own compression of multifd channels (needs multifd; set implies 1 channel if 0). */
  compression: QemuCompression;
  /** Content seed of the guest's pages. */
  seed: number;
}

// The report migrated one whole VM; 512 MiB keeps five profiles x three methods in 30 minutes
// on the 2-core lab machine under TCG. The dirty rate and downtime match the model's defaults
// (`--workload migration`), so the two tables compare like with like.
export const DEFAULT_QEMU: QemuSettings = {
  memoryMiB: 512,
  fillShare: 0.75,
  mix: DEFAULT_VM_MIX,
  dirtyPagesPerSec: DEFAULT_DIRTY_PAGES_PER_SEC,
  downtimeLimitMs: DEFAULT_DOWNTIME_BUDGET_MS,
  multifdChannels: 0,
  compression: 'none',
  seed: 1,
};

/**
 * QEMU 7.2 under TCG loses dirty pages when pc.ram is a multiple of 256 KiB (its fast bitmap
 * sync skips the TLB reset; fixed upstream in 9.0 by 03bfc2188f): 16 KiB less sends it down the
 * correct per-page path.
 */
export const RAM_SHORTFALL_KIB = 16;

export function guestRamKiB(memoryMiB: number): number {
  return memoryMiB * 1024 - RAM_SHORTFALL_KIB;
}

/**
 * Above any link in the lab: QEMU's default max-bandwidth (32 MiB/s) would cap every method.
 * QEMU accepts up to ~1.8e13 bytes/s.
 */
export const UNTHROTTLED_BYTES_PER_SEC = 100 * 2 ** 30;

/** "zero,text,structured,random" weights, e.g. "35,20,20,25". */
export function parseMix(text: string): VmMix {
  const parts = text.split(',').map((x) => Number(x.trim()));
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0) || parts.reduce((a, b) => a + b, 0) === 0) {
    throw new RangeError(`mix must be four non-negative integer weights zero,text,structured,random (e.g. 35,20,20,25): ${text}`);
  }
  const [zero, text_, structured, random] = parts as [number, number, number, number];
  const sum = zero + text_ + structured + random;
  return { zero: zero / sum, text: text_ / sum, structured: structured / sum, random: random / sum };
}

/** The mix as the guest's integer weights (per cent, summing to ~100). */
export function mixWeights(mix: VmMix): string {
  return [mix.zero, mix.text, mix.structured, mix.random].map((x) => Math.round(x * 100)).join(',');
}

export function effectiveMultifdChannels(s: QemuSettings): number {
  return s.multifdChannels > 0 ? s.multifdChannels : s.compression !== 'none' ? 1 : 0;
}

export function describeQemu(s: QemuSettings): string {
  const channels = effectiveMultifdChannels(s);
  return (
    `${s.memoryMiB} MiB guest, ${Math.round(s.fillShare * 100)}% filled (mix ${mixWeights(s.mix)} zero,text,structured,random), ` +
    `${s.dirtyPagesPerSec} dirty pages/s, downtime limit ${s.downtimeLimitMs} ms` +
    (channels > 0 ? `, multifd ${channels} channel${channels > 1 ? 's' : ''}` : '') +
    (s.compression !== 'none' ? `, QEMU ${s.compression} compression` : '')
  );
}
