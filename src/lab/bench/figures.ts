// How one run's figures read in tables and charts: its time, and speed-ups between runs.

import type { BenchResult } from './runner.ts';

/** A run whose time means something: finished and verified, or capped (a lower bound). */
export function usable(r: BenchResult | undefined): r is BenchResult {
  return r !== undefined && !r.skipped && (r.capped || (!r.error && r.verified));
}

export function formatSeconds(r: BenchResult | undefined): string {
  if (r === undefined) return '';
  if (r.skipped) return 'skipped';
  if (r.capped) return `>${r.seconds.toFixed(0)} (capped)`;
  if (r.error || !r.verified) return 'failed';
  return r.seconds < 10 ? r.seconds.toFixed(2) : r.seconds.toFixed(1);
}

/** Speed-up of `fast` over `slow`; a capped slow run makes it a lower bound, a capped fast run an upper one. */
export function speedUp(slow: BenchResult | undefined, fast: BenchResult | undefined): string {
  if (!usable(slow) || !usable(fast) || fast.seconds <= 0) return '';
  if (fast.capped && slow.capped) return '?';
  const x = slow.seconds / fast.seconds;
  const text = `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x`;
  return slow.capped ? `>=${text}` : fast.capped ? `<=${text}` : text;
}
