// Blocks gathered from several TCP reads (bridge.ts, while compressing behind a backlog) are
// assembled in 256 KiB buffers kept in a small pool, instead of a copy of every read and a
// concatenation of the copies per block; compressed blocks a receiving bridge decodes land in the
// same buffers (zstd through the native addon writes into them) until its socket has written them.
//
// Why: every ArrayBuffer the gateway allocates counts as V8 external memory, and that count
// starts major garbage collections. Compressing the vm payload on the lab's mpls link, the
// sending gateway allocated ~3 bytes per source byte (the copies, the concatenation, the codec's
// output) and ran a mark-compact every 250-500 ms on a 20 MB heap: ~20% of its CPU samples were
// V8 marking and sweeping (perf, bench/results/datapath-2026-12-06.md section 9); thousands of
// new connections each gathering their first blocks piled up such garbage faster than V8
// collected it (bench/results/reliability-2026-12-06-memory-breakdown.md). The receiving gateway
// allocated a fresh buffer per decoded block: on baseline at zstd, a fifth of its CPU profile was
// the collector, and another fifth the decompression writing into memory just faulted in (§15).
//
// A buffer is its bridge's from take() until it gives it back, which it does only when nothing
// views it any more (a raw block the stream has not taken keeps its buffer out of the pool; a
// decoded block waits for its socket write); the gateway is one thread, so no two bridges fill
// one buffer.

export const BLOCK_BUFFER_BYTES = 256 * 1024;
/**
 * Free buffers kept for reuse: as many as the association's gathering bound (gatherFull: an
 * eighth of the send backlog, 4 MiB at the default budget) lets be in use at once; a decoding
 * bridge holds a few (what its socket has not written yet).
 */
const MAX_FREE = 16;

const free: Buffer[] = [];

export function takeBlockBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BUFFER_BYTES);
}

export function giveBlockBuffer(buffer: Buffer): void {
  if (free.length < MAX_FREE) free.push(buffer);
}
