// Stream bytes are held in fixed-size chunks that every stream of the process takes from, and
// gives back to, one free list.
//
// Why: a ring per stream, doubled as it grew and freed whole, cost far more than the bytes it
// held. 5000 concurrent echo connections held 34 MB of unacknowledged data in 159 MB of send
// rings (a 256 KiB echo plus its block headers needed a 512 KiB ring), and every ring grown or
// freed became garbage that only a full mark-compact returns: at the peak the receiving gateway
// had ~170 MB of dead ArrayBuffers awaiting one, and the C heap kept the holes they left
// (bench/results/reliability-2026-12-06-memory-breakdown.md). Chunks of one size are reused at
// once, by any stream, and never need copying to grow.
export const CHUNK_BYTES = 16 * 1024;

// Free chunks kept for reuse; more than this goes to the garbage collector. A bulk sender's
// acknowledgements free chunks steadily while its writes take them in bursts (a quarter of its
// 16 MiB send buffer at a time): with room for only 4 MiB, chunks were dropped and allocated anew,
// long-lived enough to need mark-compacts (lab bulk: gateway A 5.2 CPU s/GiB against 4.0).
const MAX_FREE_CHUNKS = 1024; // 16 MiB

const free: Uint8Array[] = [];

/** A chunk of CHUNK_BYTES, its contents undefined. */
export function takeChunk(): Uint8Array {
  return free.pop() ?? new Uint8Array(CHUNK_BYTES);
}

/** Gives a chunk back: its owner must hold no view of it any more. */
export function giveChunk(chunk: Uint8Array): void {
  if (free.length < MAX_FREE_CHUNKS) free.push(chunk);
}

// Receive rings (recv.ts) stay contiguous, so that a reader gets large views, but they are reused
// the same way: by size (powers of two), up to this many bytes in all, none larger than
// MAX_POOLED_RING (a bulk receiver's large ring lives as long as its transfer).
const MAX_FREE_RING_BYTES = 4 * 1024 * 1024;
const MAX_POOLED_RING = 1024 * 1024;
const freeRings = new Map<number, Uint8Array[]>();
let freeRingBytes = 0;

/** A ring of `size` bytes (a power of two), its contents undefined. */
export function takeRing(size: number): Uint8Array {
  const ring = freeRings.get(size)?.pop();
  if (ring === undefined) return new Uint8Array(size);
  freeRingBytes -= size;
  return ring;
}

/** Gives a ring back: its owner must hold no view of it any more. */
export function giveRing(ring: Uint8Array): void {
  const size = ring.length;
  if (size === 0 || size > MAX_POOLED_RING || freeRingBytes + size > MAX_FREE_RING_BYTES) return;
  let list = freeRings.get(size);
  if (list === undefined) freeRings.set(size, (list = []));
  list.push(ring);
  freeRingBytes += size;
}

/** Bytes held for reuse: free chunks and free receive rings (tests, status). */
export function pooledBytes(): { chunks: number; rings: number } {
  return { chunks: free.length * CHUNK_BYTES, rings: freeRingBytes };
}
