// Workload programs as a process, to run inside a lab namespace:
//   node src/lab/workloads/run.ts sink --port 5201
//   node src/lab/workloads/run.ts bulk --host 198.19.0.2 --port 5201 --bytes 64MiB --payload vm
//   node src/lab/workloads/run.ts migration --host 198.19.0.2 --port 5201 --memory 256MiB
// Output: JSON lines on stdout ({"type":"listening"|"connection"|"progress"|"result", ...}).

import { Command, InvalidArgumentError } from 'commander';
import { isPayloadKind, type PayloadKind } from './payload.ts';
import { startSink } from './sink.ts';
import { runBulk, runMigration } from './clients.ts';
import { DEFAULT_DIRTY_PAGES_PER_SEC, DEFAULT_DOWNTIME_BUDGET_MS, DEFAULT_MAX_ROUNDS } from './migration-model.ts';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gib: 2 ** 30,
};

/** "64MiB", "1GiB", "500MB", "1048576" -> bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError(`not a size: ${text} (e.g. 64MiB, 1GiB, 500MB)`);
  return Math.round(Number(m[1]) * unit);
}

export function parsePayload(text: string): PayloadKind {
  if (!isPayloadKind(text)) throw new InvalidArgumentError(`payload must be random or vm, not ${text}`);
  return text;
}

function positive(text: string): number {
  const n = Number(text);
  if (!(n >= 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`not a non-negative number: ${text}`);
  return n;
}

/** This process's CPU time so far (user + system), for the bench's per-process accounting. */
function processCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function progressEmitter(enabled: boolean): ((bytes: number) => void) | undefined {
  if (!enabled) return undefined;
  const started = performance.now();
  let last = 0;
  return (bytes) => {
    const now = performance.now();
    if (now - last < 200) return;
    last = now;
    emit({ type: 'progress', bytes, seconds: (now - started) / 1000 });
  };
}

export function workloadProgram(): Command {
  const program = new Command('workload').description('Longhaul lab workloads (sink, bulk, migration)');
  program
    .command('sink')
    .description('accept workload connections; report each as JSON')
    .option('--host <addr>', 'listen address', '0.0.0.0')
    .option('--port <n>', 'listen port (0: any)', positive, 0)
    .action(async (o: { host: string; port: number }) => {
      const sink = await startSink({ host: o.host, port: o.port, onConnectionClosed: (r) => emit({ type: 'connection', ...r }) });
      emit({ type: 'listening', port: sink.port });
      const stop = () => void sink.close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  const common = (c: Command) =>
    c
      .requiredOption('--host <addr>', 'sink address')
      .requiredOption('--port <n>', 'sink port', positive)
      .option('--payload <kind>', 'random | vm', parsePayload, 'vm' as PayloadKind)
      .option('--seed <n>', 'payload seed', positive, 1)
      .option('--cap <seconds>', 'time cap for the whole run', positive, 120)
      .option('--progress', 'emit progress lines every 200 ms', false);
  common(program.command('bulk').description('send N bytes, timed from connect to the sink confirming the last byte'))
    .option('--bytes <size>', 'bytes to send', parseBytes, 64 * 2 ** 20)
    .action(
      async (o: { host: string; port: number; payload: PayloadKind; seed: number; cap: number; progress: boolean; bytes: number }) => {
        const r = await runBulk({
          host: o.host,
          port: o.port,
          payload: o.payload,
          seed: o.seed,
          capSeconds: o.cap,
          bytes: o.bytes,
          onProgress: progressEmitter(o.progress),
        });
        emit({ type: 'result', ...r, cpu_seconds: r.cpu_seconds ?? processCpuSeconds() });
        process.exitCode = r.verified || r.capped ? 0 : 1;
      },
    );
  common(program.command('migration').description('pre-copy live migration of a VM memory image'))
    .option('--memory <size>', 'VM memory', parseBytes, 256 * 2 ** 20)
    .option('--dirty-rate <pages/s>', 'pages the VM dirties per second', positive, DEFAULT_DIRTY_PAGES_PER_SEC)
    .option('--downtime <ms>', 'downtime budget', positive, DEFAULT_DOWNTIME_BUDGET_MS)
    .option('--max-rounds <n>', 'pre-copy rounds before a forced stop', positive, DEFAULT_MAX_ROUNDS)
    .action(
      async (o: {
        host: string;
        port: number;
        payload: PayloadKind;
        seed: number;
        cap: number;
        progress: boolean;
        memory: number;
        dirtyRate: number;
        downtime: number;
        maxRounds: number;
      }) => {
        const r = await runMigration({
          host: o.host,
          port: o.port,
          payload: o.payload,
          seed: o.seed,
          capSeconds: o.cap,
          memoryBytes: o.memory,
          dirtyPagesPerSec: o.dirtyRate,
          downtimeBudgetMs: o.downtime,
          maxRounds: o.maxRounds,
          onProgress: progressEmitter(o.progress),
        });
        emit({ type: 'result', ...r, cpu_seconds: r.cpu_seconds ?? processCpuSeconds() });
        process.exitCode = r.verified || r.capped ? 0 : 1;
      },
    );
  return program;
}

if (import.meta.main) {
  await workloadProgram().parseAsync(process.argv);
}
