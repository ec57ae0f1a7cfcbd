// Back-off for incompressible data: once consecutive blocks fail the 80% rule, skip
// compressing an exponentially growing number of bytes, then probe with one block again.
// Measured in bytes, not blocks, so tiny interactive blocks do not shorten the pause.

/**
 * Consecutive failures before pausing. Mixed data (the vm payload: 32 KiB runs of random
 * pages among compressible ones) fails single 64 KiB blocks ~6% of the time; pausing after
 * each of those cost a fifth of the achievable ratio in the codec bench. Two in a row still
 * happened often enough on 1 GiB of vm payload (seed 1, 64 KiB blocks) that the pauses cost
 * 1.8% of wire bytes (148 of 16384 blocks skipped); three in a row: 2 blocks. Random data
 * pays for three blocks before the pause starts.
 */
export const BACKOFF_FAILURES_BEFORE_PAUSE = 3;
/** First pause: half a default block size, doubled on every further failed probe. */
export const BACKOFF_INITIAL_SKIP_BYTES = 128 * 1024;
/**
 * Longest pause. 8 MiB is ~0.7 s at 100 Mbit/s and ~70 ms at 1 Gbit/s: the most compression we
 * can miss after random data turns compressible, while probing costs one block per 8 MiB
 * (~3% extra CPU even for zstd on random data).
 */
export const BACKOFF_MAX_SKIP_BYTES = 8 * 1024 * 1024;

/**
 * A stream whose block fails (or samples as random, encoder.ts) on a path whose last blocks, on
 * other streams, failed enough in a row to pause (path-memory.ts) goes this many failures past
 * the pause's start: a pause of 512 KiB. A 256 KiB echo connection of random data among others
 * tries none of its blocks instead of three. A stream of mostly compressible data (the vm
 * payload fails single blocks ~6% of the time) that fails one block while such a path's other
 * streams carry random data sends 512 KiB raw (~40 ms at 100 Mbit/s).
 */
export const BACKOFF_INHERITED_EXTRA_FAILURES = 2;

export class CompressionBackoff {
  readonly #initialSkip: number;
  readonly #maxSkip: number;
  #consecutiveFailures = 0;
  #skipRemaining = 0;

  readonly #failuresBeforePause: number;

  constructor(
    initialSkip = BACKOFF_INITIAL_SKIP_BYTES,
    maxSkip = BACKOFF_MAX_SKIP_BYTES,
    failuresBeforePause = BACKOFF_FAILURES_BEFORE_PAUSE,
  ) {
    this.#initialSkip = initialSkip;
    this.#maxSkip = maxSkip;
    this.#failuresBeforePause = Math.max(1, failuresBeforePause);
  }

  /** True if the next block (of `length` bytes) should be tried; otherwise its bytes count towards the pause. */
  shouldTry(length: number): boolean {
    if (this.#skipRemaining <= 0) return true;
    this.#skipRemaining -= length;
    return false;
  }

  /** In a pause: the next blocks go raw without trying. */
  get pausing(): boolean {
    return this.#skipRemaining > 0;
  }

  recordSuccess(): void {
    this.#consecutiveFailures = 0;
    this.#skipRemaining = 0;
  }

  recordFailure(): void {
    this.#consecutiveFailures++;
    this.#pauseIfDue();
  }

  /**
   * `failures` in a row were seen on the path, this stream's last one included: if enough to
   * pause, this stream's pause starts BACKOFF_INHERITED_EXTRA_FAILURES in (not further: a longer
   * pause is one a compressible stream would wait through).
   */
  inheritFailures(failures: number): void {
    // Only failures of other streams count: alone on its path, a stream's pauses are its own.
    if (failures < this.#failuresBeforePause || failures <= this.#consecutiveFailures) return;
    this.#consecutiveFailures = Math.max(this.#consecutiveFailures, this.#failuresBeforePause + BACKOFF_INHERITED_EXTRA_FAILURES);
    this.#pauseIfDue();
  }

  #pauseIfDue(): void {
    if (this.#consecutiveFailures < this.#failuresBeforePause) return;
    const exponent = Math.min(this.#consecutiveFailures - this.#failuresBeforePause, 30);
    this.#skipRemaining = Math.min(this.#initialSkip * 2 ** exponent, this.#maxSkip);
  }

  get failures(): number {
    return this.#consecutiveFailures;
  }

  get pausedBytes(): number {
    return Math.max(0, this.#skipRemaining);
  }
}
