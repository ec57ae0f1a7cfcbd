// Structured logs (pino): JSON lines for machines, pino-pretty when a human watches a terminal.
import { pino } from 'pino';
import type { Logger, Level, DestinationStream } from 'pino';
import PinoPretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  level?: Level | 'silent';
  name?: string;
  /** Force pretty (true) or JSON (false); default: pretty when stdout is a TTY. */
  pretty?: boolean;
  /** Tests capture lines through their own stream. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const base = { level: opts.level ?? 'info', name: opts.name, base: undefined };
  if (opts.destination) return pino(base, opts.destination);
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) return pino(base, PinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  return pino(base, pino.destination({ dest: 1, sync: false }));
}
