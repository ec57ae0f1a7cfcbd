// Back-off for incompressible data: after consecutive blocks fail the 80% rule, skip
// compressing an exponentially growing number of bytes, then probe with one block again.
// Measured in bytes, not blocks, so tiny interactive blocks do not shorten the pause.

/** First pause after a failure: one default-size block, so a single odd block costs little. */
export const BACKOFF_INITIAL_SKIP_BYTES = 256 * 1024;
/**
 * Longest pause. 8 MiB is ~0.7 s at 100 Mbit/s and ~70 ms at 1 Gbit/s: the most compression we
 * can miss after random data turns compressible, while probing costs one block per 8 MiB
 * (~3% extra CPU even for zstd on random data).
 */
export const BACKOFF_MAX_SKIP_BYTES = 8 * 1024 * 1024;

export class CompressionBackoff {
  private readonly initialSkip: number;
  private readonly maxSkip: number;
  private consecutiveFailures = 0;
  private skipRemaining = 0;

  constructor(initialSkip = BACKOFF_INITIAL_SKIP_BYTES, maxSkip = BACKOFF_MAX_SKIP_BYTES) {
    this.initialSkip = initialSkip;
    this.maxSkip = maxSkip;
  }

  /** True if the next block (of `length` bytes) should be tried; otherwise its bytes count towards the pause. */
  shouldTry(length: number): boolean {
    if (this.skipRemaining <= 0) return true;
    this.skipRemaining -= length;
    return false;
  }

  recordSuccess(): void {
    this.consecutiveFailures = 0;
    this.skipRemaining = 0;
  }

  recordFailure(): void {
    this.consecutiveFailures++;
    const exponent = Math.min(this.consecutiveFailures - 1, 30);
    this.skipRemaining = Math.min(this.initialSkip * 2 ** exponent, this.maxSkip);
  }

  get failures(): number {
    return this.consecutiveFailures;
  }

  get pausedBytes(): number {
    return Math.max(0, this.skipRemaining);
  }
}
