// Sorted set of disjoint half-open integer ranges [start, end). Used for received packet
// numbers (ACK ranges) and for stream byte ranges (acked / lost). Parallel arrays keep it
// cheap: the common case (appending at or extending the top range) is O(1).

export class RangeSet {
  readonly starts: number[] = [];
  readonly ends: number[] = [];

  get count(): number {
    return this.starts.length;
  }

  isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** Lowest value in the set (undefined when empty). */
  min(): number | undefined {
    return this.starts[0];
  }

  /** Highest value + 1 (undefined when empty). */
  maxEnd(): number | undefined {
    return this.ends[this.ends.length - 1];
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
  }

  contains(v: number): boolean {
    const i = this.#indexAtOrBefore(v);
    return i >= 0 && v < this.ends[i]!;
  }

  /** Index of the last range whose start <= v, or -1. */
  #indexAtOrBefore(v: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    // Most lookups are near the top.
    if (hi >= 0 && starts[hi]! <= v) return hi;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= v) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi;
  }

  /** Adds [start, end); returns how many values were new. */
  insert(start: number, end: number): number {
    if (end <= start) return 0;
    const starts = this.starts;
    const ends = this.ends;
    const n = starts.length;
    if (n === 0 || start > ends[n - 1]!) {
      starts.push(start);
      ends.push(end);
      return end - start;
    }
    if (start >= starts[n - 1]!) {
      // Overlaps or touches the top range.
      const oldEnd = ends[n - 1]!;
      if (end <= oldEnd) return 0;
      ends[n - 1] = end;
      return end - oldEnd;
    }
    // General case: find the first range that ends at/after start and the last that starts at/before end.
    let i = this.#indexAtOrBefore(start);
    if (i < 0 || ends[i]! < start) i++;
    const j = this.#indexAtOrBefore(end);
    // Ranges i..j touch or overlap [start, end).
    if (i > j) {
      starts.splice(i, 0, start);
      ends.splice(i, 0, end);
      return end - start;
    }
    let covered = 0;
    for (let k = i; k <= j; k++) covered += Math.min(ends[k]!, end) - Math.max(starts[k]!, start);
    const newStart = Math.min(starts[i]!, start);
    const newEnd = Math.max(ends[j]!, end);
    starts.splice(i, j - i + 1, newStart);
    ends.splice(i, j - i + 1, newEnd);
    return end - start - Math.max(0, covered);
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (end <= start || this.starts.length === 0) return;
    const starts = this.starts;
    const ends = this.ends;
    let i = this.#indexAtOrBefore(start);
    if (i < 0 || ends[i]! <= start) i++;
    while (i < starts.length && starts[i]! < end) {
      const s = starts[i]!;
      const e = ends[i]!;
      if (s < start && e > end) {
        // Split.
        ends[i] = start;
        starts.splice(i + 1, 0, end);
        ends.splice(i + 1, 0, e);
        return;
      }
      if (s < start) {
        ends[i] = start;
        i++;
      } else if (e > end) {
        starts[i] = end;
        return;
      } else {
        starts.splice(i, 1);
        ends.splice(i, 1);
      }
    }
  }

  /** Drops every value below v. */
  removeBelow(v: number): void {
    const starts = this.starts;
    const ends = this.ends;
    let k = 0;
    while (k < starts.length && ends[k]! <= v) k++;
    if (k > 0) {
      starts.splice(0, k);
      ends.splice(0, k);
    }
    if (starts.length > 0 && starts[0]! < v) starts[0] = v;
  }

  /** Keeps only the `max` highest ranges. */
  truncateLow(max: number): void {
    const extra = this.starts.length - max;
    if (extra > 0) {
      this.starts.splice(0, extra);
      this.ends.splice(0, extra);
    }
  }

  /** Total number of values in the set. */
  size(): number {
    let s = 0;
    for (let i = 0; i < this.starts.length; i++) s += this.ends[i]! - this.starts[i]!;
    return s;
  }
}
