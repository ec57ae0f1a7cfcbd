// A one-line progress bar on a terminal (stderr); silent otherwise.

import type { BenchCell } from './matrix.ts';

const WIDTH = 28;

export class ProgressBar {
  readonly #enabled: boolean;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #drawn = false;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#enabled = stream.isTTY === true;
    this.#stream = stream;
  }

  readonly #stream: NodeJS.WriteStream;

  update(label: string, cell: BenchCell, ackedBytes: number, seconds: number, capSeconds: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    // Migration moves more than its memory (re-sent pages): the bar is over the first copy.
    const fraction = Math.min(1, cell.bytes > 0 ? ackedBytes / cell.bytes : 0);
    const full = Math.round(fraction * WIDTH);
    const bar = '#'.repeat(full) + '-'.repeat(WIDTH - full);
    const mbps = seconds > 0 ? (ackedBytes * 8) / seconds / 1e6 : 0;
    const line =
      `${label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${(ackedBytes / 2 ** 20).toFixed(0)} MiB ` +
      `${mbps.toFixed(0)} Mbit/s ${seconds.toFixed(1)}/${capSeconds}s`;
    this.#stream.write(`\r\x1b[2K${line.slice(0, (this.#stream.columns ?? 120) - 1)}`);
    this.#drawn = true;
  }

  /** Replace the bar with a permanent line. */
  done(line: string): void {
    if (this.#enabled && this.#drawn) this.#stream.write('\r\x1b[2K');
    this.#drawn = false;
    if (this.#enabled) this.#stream.write(`${line}\n`);
  }
}
