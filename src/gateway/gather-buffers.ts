// Blocks gathered from several TCP reads (bridge.ts, while compressing behind a backlog) are
// assembled in 256 KiB buffers kept in a small pool, instead of a copy of every read and a
// concatenation of the copies per block.
//
// Why: every ArrayBuffer the gateway allocates counts as V8 external memory, and that count
// starts major garbage collections. Compressing the vm payload on the lab's mpls link, the
// sending gateway allocated ~3 bytes per source byte (the copies, the concatenation, the codec's
// output) and ran a mark-compact every 250-500 ms on a 20 MB heap: ~20% of its CPU samples were
// V8 marking and sweeping (perf, bench/results/datapath-2026-12-06.md section 9); thousands of
// new connections each gathering their first blocks piled up such garbage faster than V8
// collected it (bench/results/reliability-2026-12-06-memory-breakdown.md).
//
// A buffer is the bridge's from take() until it gives it back, which it does only when no queued
// part views it (a raw block the stream has not taken keeps its buffer out of the pool); the
// gateway is one thread, so no two bridges fill one buffer.

export const GATHER_BUFFER_BYTES = 256 * 1024;
/**
 * Free buffers kept for reuse: as many as the association's gathering bound (gatherFull: an
 * eighth of the send backlog, 4 MiB at the default budget) lets be in use at once.
 */
const MAX_FREE = 16;

const free: Buffer[] = [];

export function takeGatherBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(GATHER_BUFFER_BYTES);
}

export function giveGatherBuffer(buffer: Buffer): void {
  if (free.length < MAX_FREE) free.push(buffer);
}
