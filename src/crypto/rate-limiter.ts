// Per-source token buckets for handshake initiations. Consulted only for sources that proved
// their address (valid mac2), so spoofed floods cannot fill it; still bounded, because a botnet
// with real addresses can.

export interface RateLimiterOptions {
  maxEntries: number;
  perSecond: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class HandshakeRateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #opts: RateLimiterOptions;
  #lastPruneAt = -Infinity;

  constructor(opts: RateLimiterOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Takes a token for `source`; false when it is over its rate or the table is full. */
  allow(source: string, now: number): boolean {
    let bucket = this.#buckets.get(source);
    if (!bucket) {
      if (this.#buckets.size >= this.#opts.maxEntries) {
        this.prune(now);
        if (this.#buckets.size >= this.#opts.maxEntries) return false; // fail closed under a real-address flood
      }
      bucket = { tokens: this.#opts.burst, updatedAt: now };
      this.#buckets.set(source, bucket);
    }
    const refill = (Math.max(0, now - bucket.updatedAt) * this.#opts.perSecond) / 1000;
    bucket.tokens = Math.min(this.#opts.burst, bucket.tokens + refill);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops buckets that have refilled completely (they carry no information); at most once a second. */
  prune(now: number): void {
    if (now - this.#lastPruneAt < 1000) return;
    this.#lastPruneAt = now;
    const refillMs = (this.#opts.burst * 1000) / this.#opts.perSecond;
    for (const [source, bucket] of this.#buckets) {
      if (now - bucket.updatedAt >= refillMs) this.#buckets.delete(source);
    }
  }
}
