// The config schema's parsers return a Result (src/result.ts); zod takes them through this.
import { z } from 'zod';
import type { Result } from '../result.ts';

/** A zod transform from a parser: its error becomes the issue's message (named by key path). */
export function fromResult<I, T>(parse: (input: I) => Result<T>): (input: I, ctx: z.RefinementCtx) => T {
  return (input, ctx) => {
    const r = parse(input);
    if (r.ok) return r.value;
    ctx.addIssue({ code: 'custom', message: r.error });
    return z.NEVER;
  };
}
