// Token-bucket pacer: tells when the next packet may leave at the controller's pacing rate.
// The bucket holds about one timer tick of data so a driver woken by a 1 ms timer can send
// what accrued since the last tick, while bursts stay small relative to a 20 ms bottleneck queue.

import type { Millis } from './types.ts';

// Node timers fire with ~1 ms granularity; a smaller bucket would cap the rate below the target.
const BURST_INTERVAL_MS = 1;
// Never less than this many packets (at low rates a 1 ms bucket is under one packet).
const MIN_BURST_PACKETS = 2;
// Never more than this many bytes, however high the rate (64 KiB at 1 Gbit/s is 0.5 ms).
const MAX_BURST_BYTES = 128 * 1024;

export class Pacer {
  private tokens: number;
  private lastRefill: Millis;
  private rateBytesPerMs = 0;
  private capacity = 0;

  constructor(now: Millis, packetSize: number) {
    this.lastRefill = now;
    this.capacity = MIN_BURST_PACKETS * packetSize;
    this.tokens = this.capacity;
  }

  /** Updates the rate (bits/s) and the packet size that sets the minimum burst. */
  setRate(rateBps: number, packetSize: number): void {
    this.rateBytesPerMs = rateBps / 8000;
    const burst = this.rateBytesPerMs * BURST_INTERVAL_MS;
    this.capacity = Math.min(Math.max(burst, MIN_BURST_PACKETS * packetSize), Math.max(MAX_BURST_BYTES, MIN_BURST_PACKETS * packetSize));
  }

  private refill(now: Millis): void {
    const elapsed = now - this.lastRefill;
    if (elapsed > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + elapsed * this.rateBytesPerMs);
      this.lastRefill = now;
    }
  }

  /** Time at which `bytes` may leave (<= now means immediately). */
  releaseTime(now: Millis, bytes: number): Millis {
    this.refill(now);
    // A hair of tolerance: the wake-up time computed below must release the packet despite rounding.
    if (this.tokens >= bytes - 1e-6) return now;
    // No rate (a controller bug or a reset): look again in a millisecond rather than never.
    if (this.rateBytesPerMs <= 0) return now + 1;
    return now + (bytes - this.tokens) / this.rateBytesPerMs;
  }

  onSent(bytes: number): void {
    this.tokens -= bytes;
  }
}
