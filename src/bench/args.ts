// Command lines of the benchmark scripts (commander, as the `longhaul` command): `--help` prints
// the usage and exits, and an unknown option or a value that does not parse is refused with one
// line (exit status 1) instead of starting a benchmark that runs with NaN, or forever.
import { Command, InvalidArgumentError } from 'commander';
import { parseSize } from '../gateway/config.ts';

export function benchCommand(name: string, description: string): Command {
  return new Command(name).description(description).helpOption('-h, --help', 'print this usage and exit').allowExcessArguments(false);
}

/** "64MiB", "1G", "512k", or bytes: binary units, as the gateway's sizes (kB/MB/GB decimal). */
export function sizeArg(text: string): number {
  const n = parseSize(text);
  if (n === null || !(n > 0)) throw new InvalidArgumentError('expected a size in bytes such as 64MiB, 1G or 1048576');
  return n;
}

export function positiveIntArg(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a whole number above 0');
  return n;
}

export function positiveNumberArg(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

export function intArg(text: string): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
}

/** A comma-separated list whose items must be among `allowed`. */
export function listArg<T extends string>(allowed: readonly T[]): (text: string) => T[] {
  return (text) => {
    const items = text.split(',').filter((s) => s !== '');
    const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
    if (items.length === 0 || bad.length) throw new InvalidArgumentError(`expected a comma-separated list of ${allowed.join(', ')}`);
    return items as T[];
  };
}
