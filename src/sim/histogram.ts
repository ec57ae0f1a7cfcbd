// Fixed-bin histogram for per-packet delay samples: constant memory and no allocation per
// sample, mean exact, percentiles to within one bin (10 us by default).

export class DelayHistogram {
  readonly #binMs: number;
  readonly #bins: Uint32Array;
  #count = 0;
  #sum = 0;
  #max = 0;

  constructor(binMs = 0.01, maxMs = 2000) {
    this.#binMs = binMs;
    this.#bins = new Uint32Array(Math.ceil(maxMs / binMs) + 1);
  }

  add(ms: number): void {
    const i = Math.min(this.#bins.length - 1, Math.floor(ms / this.#binMs));
    this.#bins[i]!++;
    this.#count++;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
  }

  get count(): number {
    return this.#count;
  }

  get mean(): number {
    return this.#count > 0 ? this.#sum / this.#count : 0;
  }

  get max(): number {
    return this.#max;
  }

  /** Upper edge of the bin holding the q-quantile (0 when empty). */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    const bins = this.#bins;
    for (let i = 0; i < bins.length; i++) {
      seen += bins[i]!;
      if (seen >= rank) return Math.min((i + 1) * this.#binMs, this.#max);
    }
    return this.#max;
  }
}
