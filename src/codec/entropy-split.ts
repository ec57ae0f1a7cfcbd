// Cutting a block where its bytes turn from compressible to high-entropy and back, so each
// piece is compressed (or sent raw) on its own.
//
// Why: zstd codes all literals of a block with one Huffman table. A 64 KiB socket read that
// holds 20 KiB of encrypted or already-compressed memory next to 44 KiB of text gets a table
// fitted to the mix, and the text's literals cost nearly 8 bits each. Measured on the lab's vm
// image (seed 1, 128 MiB, zstd 7): 64 KiB blocks cut in step with the image's 32 KiB runs of
// page classes send 0.340 of the source, the same blocks shifted by 16 KiB 0.352, and reads
// of random length (48-64 KiB, as TCP delivers them) 0.347. zstd 1.5.7 has its own block
// splitter, but node:zlib does not expose the parameter. Cutting at entropy changes makes the
// ratio independent of where the reads happen to fall.
//
// How: every 1 KiB window is classed by the number of distinct byte values among 128 samples
// (every 8th byte). Uniformly random bytes show ~101 (sd ~4); text, structured records and
// zero pages in the vm image at most 52; real data with that many distinct values in 128
// bytes has ~7+ bits of order-0 entropy, where zstd's literals gain nothing. Runs shorter than
// MIN_SPLIT_RUN are absorbed by a neighbour, so pieces stay large enough for zstd (each call
// has ~20 us of set-up) and framing (2-9 bytes a piece) stays negligible. The sampling costs
// ~1/8 of a pass over the bytes (measured: see BlockEncoder's SPLIT_MIN_ZSTD_LEVEL).
//
// Nothing here looks at page sizes or alignment: a cut lands on a 1 KiB window boundary of the
// block, wherever the block starts in the stream.

/** Bytes per classed window. */
export const ENTROPY_WINDOW = 1024;
/** Every this many bytes of a window is sampled (128 samples per window). */
const SAMPLE_STEP = 8;
/** A window with at least this many distinct sampled byte values is high-entropy (random: ~101, sd ~4). */
export const HIGH_ENTROPY_DISTINCT = 72;
/** Runs shorter than this are absorbed by a neighbour: no piece below it, except a block's whole tail. */
export const MIN_SPLIT_RUN = 4 * ENTROPY_WINDOW;

export class EntropySplitter {
  /** End offset of each piece of the last split (exclusive). */
  readonly ends: number[] = [];
  /** Whether each piece of the last split is high-entropy. */
  readonly highEntropy: boolean[] = [];
  readonly #stamp = new Uint32Array(256);
  #generation = 0;

  /**
   * Cuts `data` into pieces (at least one); returns their number. Blocks shorter than two
   * minimum runs are one piece, classed as not high-entropy (they are compressed as before).
   */
  split(data: Uint8Array): number {
    const ends = this.ends;
    const high = this.highEntropy;
    ends.length = 0;
    high.length = 0;
    const length = data.length;
    if (length < 2 * MIN_SPLIT_RUN) {
      ends.push(length);
      high.push(false);
      return 1;
    }
    let runStart = 0;
    let runHigh = this.#windowIsHighEntropy(data, 0);
    // Whole windows only: a tail shorter than a window has too few samples to judge, and goes
    // with the run before it.
    for (let at = ENTROPY_WINDOW; at + ENTROPY_WINDOW <= length; at += ENTROPY_WINDOW) {
      const isHigh = this.#windowIsHighEntropy(data, at);
      if (isHigh === runHigh) continue;
      this.#addRun(runStart, at, runHigh);
      runStart = at;
      runHigh = isHigh;
    }
    this.#addRun(runStart, length, runHigh);
    return ends.length;
  }

  // Appends the run [start, end). Merged into the last piece when it has the same class or is
  // shorter than MIN_SPLIT_RUN. Only the first piece can itself be short (later pieces start
  // from a long run and only grow): it then takes the class of the long run that follows.
  #addRun(start: number, end: number, isHigh: boolean): void {
    const ends = this.ends;
    const high = this.highEntropy;
    const last = ends.length - 1;
    if (last < 0) {
      ends.push(end);
      high.push(isHigh);
    } else if (high[last] === isHigh || end - start < MIN_SPLIT_RUN) {
      ends[last] = end;
    } else if (last === 0 && ends[0]! < MIN_SPLIT_RUN) {
      ends[0] = end;
      high[0] = isHigh;
    } else {
      ends.push(end);
      high.push(isHigh);
    }
  }

  /**
   * True if `windows` windows spread over `data` are all high-entropy (false for less than a
   * window): random or already-compressed bytes, by 128 samples each, without compressing.
   */
  sampledHighEntropy(data: Uint8Array, windows: number): boolean {
    const span = data.length - ENTROPY_WINDOW;
    if (span < 0) return false;
    for (let k = 0; k < windows; k++) {
      const start = windows > 1 ? Math.floor((span * k) / (windows - 1)) : 0;
      if (!this.#windowIsHighEntropy(data, start)) return false;
    }
    return true;
  }

  #windowIsHighEntropy(data: Uint8Array, start: number): boolean {
    if (++this.#generation === 0xffffffff) {
      this.#stamp.fill(0);
      this.#generation = 1;
    }
    const generation = this.#generation;
    const stamp = this.#stamp;
    const end = start + ENTROPY_WINDOW;
    let distinct = 0;
    for (let i = start; i < end; i += SAMPLE_STEP) {
      const b = data[i]!;
      if (stamp[b] !== generation) {
        stamp[b] = generation;
        if (++distinct >= HIGH_ENTROPY_DISTINCT) return true;
      }
    }
    return false;
  }
}
