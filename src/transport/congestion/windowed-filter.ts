// Kathleen Nichols' windowed min/max filter (as in Linux lib/win_minmax.c and BBR):
// tracks the best, second-best and third-best sample over a sliding window in O(1)
// time and memory, so an estimate expires smoothly instead of collapsing at once.

interface Entry {
  time: number;
  value: number;
}

export class WindowedFilter {
  readonly #window: number;
  readonly #better: (a: number, b: number) => boolean;
  readonly #s: [Entry, Entry, Entry];
  #empty: boolean;

  /**
   * @param window length of the window in the caller's time unit (ms, rounds, ...)
   * @param kind 'max' keeps the largest sample (bandwidth), 'min' the smallest (RTT)
   */
  constructor(window: number, kind: 'max' | 'min') {
    this.#window = window;
    this.#better = kind === 'max' ? (a, b) => a >= b : (a, b) => a <= b;
    this.#s = [
      { time: 0, value: 0 },
      { time: 0, value: 0 },
      { time: 0, value: 0 },
    ];
    this.#empty = true;
  }

  get isEmpty(): boolean {
    return this.#empty;
  }

  /** The current best sample (0 when empty). */
  get best(): number {
    return this.#empty ? 0 : this.#s[0].value;
  }

  /** Forget everything and start over from one sample. */
  reset(time: number, value: number): void {
    for (const e of this.#s) {
      e.time = time;
      e.value = value;
    }
    this.#empty = false;
  }

  update(time: number, value: number): void {
    const s = this.#s;
    if (this.#empty || this.#better(value, s[0].value) || time - s[2].time > this.#window) {
      this.reset(time, value);
      return;
    }
    if (this.#better(value, s[1].value)) {
      set(s[1], time, value);
      set(s[2], time, value);
    } else if (this.#better(value, s[2].value)) {
      set(s[2], time, value);
    }
    this.#expire(time, value);
  }

  // Promote newer samples when the best ones fall out of the window; a quarter and a
  // half window keep the second and third choices spread out in time.
  #expire(time: number, value: number): void {
    const s = this.#s;
    const w = this.#window;
    const dt = time - s[0].time;
    if (dt > w) {
      copy(s[0], s[1]);
      copy(s[1], s[2]);
      set(s[2], time, value);
      if (time - s[0].time > w) {
        copy(s[0], s[1]);
        copy(s[1], s[2]);
        set(s[2], time, value);
      }
    } else if (s[1].time === s[0].time && dt > w / 4) {
      set(s[1], time, value);
      set(s[2], time, value);
    } else if (s[2].time === s[1].time && dt > w / 2) {
      set(s[2], time, value);
    }
  }
}

function set(e: Entry, time: number, value: number): void {
  e.time = time;
  e.value = value;
}

function copy(dst: Entry, src: Entry): void {
  dst.time = src.time;
  dst.value = src.value;
}
