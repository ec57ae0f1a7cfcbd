// The C heap, where ArrayBuffers (stream rings, codec buffers) live: its free pages go back to
// the kernel now and then (lh_udp's trimMemory: glibc malloc_trim), and /status shows what it
// holds (heapStats: glibc mallinfo2). After a burst of thousands of connections the freed
// memory stayed in the process, fragmented, and RSS kept the burst's peak. Without the addon
// both do nothing.
import v8 from 'node:v8';
import vm from 'node:vm';
import { loadAddon } from '../native/load.ts';

interface HeapAddon {
  trimMemory(): boolean;
  heapStats(): [number, number, number];
}

let loaded: HeapAddon | null | undefined;

function addon(): HeapAddon | null {
  if (loaded === undefined) {
    const a = loadAddon<HeapAddon>('lh_udp');
    loaded = a.ok && typeof a.addon.trimMemory === 'function' ? a.addon : null;
  }
  return loaded;
}

/**
 * Trims the C heap only when it holds at least `minFreeBytes` free: under connection churn a
 * trim every second gives back pages that the next connections fault in again (a soak of short
 * echo connections measured no difference either way within its ±15% noise; this only spares
 * the needless work).
 */
export function trimMemoryIfWorthIt(minFreeBytes: number): boolean {
  const a = addon();
  if (!a || a.heapStats()[1] < minFreeBytes) return false;
  return a.trimMemory();
}

/**
 * The free C-heap bytes worth a trim, once a second: an eighth of the memory budget while the
 * gateway is quiet, half of it under traffic (a bulk transfer reuses its pages at once, and a
 * trim each second, ~175 small madvise calls each page faulted in again, cost ~5% of a gateway's
 * main thread at 1 Gbit/s); a 32nd of it after the gateway collected garbage itself near its
 * budget (collectDue), when what the collection freed is worth giving back. Not every second
 * near the budget: with 5000 connections a trim took ~70 ms of the main thread (walking a
 * fragmented heap), 6% of it in all, for ~20 MB less at the peak.
 */
export function trimThreshold(budgetBytes: number, quiet: boolean, afterCollection: boolean): number {
  if (afterCollection) return budgetBytes / 32;
  return quiet ? budgetBytes / 8 : budgetBytes / 2;
}

/** The C heap: bytes in use (allocated, not freed), free but held by the process, and in mmapped chunks. Zeros without the addon. */
export function cHeapStats(): { inUseBytes: number; freeBytes: number; mmappedBytes: number } {
  const a = addon();
  if (!a) return { inUseBytes: 0, freeBytes: 0, mmappedBytes: 0 };
  const [inUseBytes, freeBytes, mmappedBytes] = a.heapStats();
  return { inUseBytes, freeBytes, mmappedBytes };
}

let collector: (() => void) | null | undefined;

/** V8's full collection (the gc() that --expose-gc gives, had at run time), or null where it cannot be had. */
function fullCollector(): (() => void) | null {
  if (collector === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as unknown;
      collector = typeof gc === 'function' ? (gc as () => void) : null;
    } catch {
      collector = null;
    }
  }
  return collector;
}

/**
 * Collects the garbage now (a full mark-compact, tens of ms) and gives the C heap's free pages
 * back (unless `trim` is false): for a gateway near its memory budget (gateway.ts's upkeep). Not
 * after the start-up warm-up, whose garbage (64 MiB of dead ArrayBuffers) waits for V8: the
 * first transfer after such a collection and trim cost 5-12% more CPU (run.ts). False if the
 * collector could not be had.
 */
export function collectGarbage(opts: { trim?: boolean } = {}): boolean {
  const gc = fullCollector();
  if (!gc) return false;
  gc();
  if (opts.trim !== false) addon()?.trimMemory();
  return true;
}

/** How often at most a gateway near its budget collects garbage itself (a full collection takes tens of ms with thousands of connections). */
export const COLLECT_INTERVAL_MS = 5000;

/**
 * The share of the memory budget at which a gateway starts collecting garbage itself: before the
 * budget, not once past it (5000 connections peaked at 259-268 MiB with the default 256), and
 * above what a bulk transfer reaches with the default budget (~200-216 MiB), which V8's own
 * collections serve well. 7/8 gave 5000 connections more room (230-252 MiB against 242-256) but
 * collected during bulk transfers too: on the lab's mpls link the receiving gateway took 14-20%
 * more CPU per GiB in alternating runs.
 */
export const COLLECT_AT_BUDGET_SHARE = 15 / 16;

/**
 * Whether a gateway should collect garbage itself now: its RSS is near the budget
 * (COLLECT_AT_BUDGET_SHARE), and
 * the memory V8 holds outside its heap (`externalBytes`: ArrayBuffers and the compressors' output
 * buffers) exceeds what the gateway's buffers account for (`heldBytes`) by an eighth of the
 * budget. V8 collects such garbage only once it outgrows a fixed allowance (64 MiB) since its
 * last mark-compact; with 5000 connections each trying to compress their first blocks, the
 * compressors' discarded outputs alone held ~70 MB at the peak.
 */
export function collectDue(budgetBytes: number, rssBytes: number, externalBytes: number, heldBytes: number, sinceLastMs: number): boolean {
  return (
    rssBytes >= budgetBytes * COLLECT_AT_BUDGET_SHARE && externalBytes - heldBytes >= budgetBytes / 8 && sinceLastMs >= COLLECT_INTERVAL_MS
  );
}
