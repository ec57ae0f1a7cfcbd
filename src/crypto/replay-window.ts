// Sliding anti-replay window over 64-bit packet counters (RFC 6479 layout): a ring of 32-bit words,
// advanced a whole word at a time, so moving the window never shifts the bitmap.
// Counters stay below 2^48 (REJECT_AFTER_MESSAGES), so they are exact JavaScript numbers.

const WORD_BITS = 32;
/** 2048 bits: at 1 Gbit/s of 1400-byte packets this tolerates ~23 ms of reordering. */
const RING_WORDS = 64;
/**
 * One word is always being recycled, so only RING_WORDS-1 words are guaranteed to be in the window
 * (RFC 6479 section 2).
 */
export const REPLAY_WINDOW_SIZE = (RING_WORDS - 1) * WORD_BITS;

export type ReplayVerdict = 'fresh' | 'duplicate' | 'too-old';

export class ReplayWindow {
  readonly #ring = new Uint32Array(RING_WORDS);
  #greatest = -1;

  /** Highest accepted counter, -1 before the first. */
  get highest(): number {
    return this.#greatest;
  }

  /** Pure check, run before decrypting; state only moves in `accept`, after authentication. */
  check(counter: number): ReplayVerdict {
    if (counter > this.#greatest) return 'fresh';
    if (this.#greatest - counter >= REPLAY_WINDOW_SIZE) return 'too-old';
    const word = Math.floor(counter / WORD_BITS) % RING_WORDS;
    return (this.#ring[word]! >>> (counter % WORD_BITS)) & 1 ? 'duplicate' : 'fresh';
  }

  /** Marks an authenticated counter seen. Caller has checked it with `check` first. */
  accept(counter: number): void {
    const word = Math.floor(counter / WORD_BITS);
    if (counter > this.#greatest) {
      const current = Math.floor(this.#greatest / WORD_BITS);
      const advance = Math.min(word - current, RING_WORDS);
      for (let i = 1; i <= advance; i++) this.#ring[(current + i) % RING_WORDS] = 0;
      this.#greatest = counter;
    }
    const slot = word % RING_WORDS;
    this.#ring[slot] = this.#ring[slot]! | (1 << (counter % WORD_BITS));
  }
}
