// The workload clients: `bulk` (N bytes, timed from connect to the sink's confirmation,
// verified by hash) and `migration` (pre-copy live migration of a VM's memory, driven by
// the pure model in migration-model.ts with the rounds' measured times).

import { PAGE_SIZE, PayloadSource, PreparedPayload, VmImage, type ChunkSource, type PayloadKind } from './payload.ts';
import { MigrationPlanner, type MigrationParams, type MigrationStep, type StopReason } from './migration-model.ts';
import { DeadlineReached, SinkSession } from './session.ts';

export interface ClientOptions {
  host: string;
  port: number;
  payload: PayloadKind;
  seed?: number;
  /** Hard cap for the whole run; a capped run reports what the sink confirmed so far. */
  capSeconds: number;
  onProgress?: (ackedBytes: number) => void;
}

export interface WorkloadResult {
  workload: 'bulk' | 'migration';
  payload: PayloadKind;
  /** Payload bytes the sink confirmed (all of them unless capped). */
  bytes: number;
  /** Payload bytes the run meant to move (for migration: known only when it finishes). */
  plannedBytes: number;
  seconds: number;
  goodput_mbps: number;
  capped: boolean;
  verified: boolean;
  error?: string;
  rounds?: number;
  downtime_ms?: number;
  stop_reason?: StopReason;
  round_seconds?: number[];
  /** CPU seconds (user + system) the client process used from the clock's start to the end. */
  cpu_seconds?: number;
}

function goodput(bytes: number, seconds: number): number {
  return seconds > 0 ? (bytes * 8) / seconds / 1e6 : 0;
}

/** A run that failed or hit the cap still reports what was confirmed, never throws. */
function partial(
  base: Omit<WorkloadResult, 'bytes' | 'seconds' | 'goodput_mbps' | 'capped' | 'verified'>,
  session: SinkSession | null,
  error: unknown,
  capSeconds: number,
): WorkloadResult {
  const capped = error instanceof DeadlineReached;
  const seconds = capped ? capSeconds : (session?.elapsedSeconds ?? 0);
  const bytes = session?.ackedBytes ?? 0;
  const out: WorkloadResult = { ...base, bytes, seconds, goodput_mbps: goodput(bytes, seconds), capped, verified: false };
  if (!capped) out.error = error instanceof Error ? error.message : String(error);
  return out;
}

/** Bulk payloads up to this size are generated before the run (held in the client's memory). */
export const PREPARED_MAX_BYTES = 2 * 1024 * 1024 * 1024;

export async function runBulk(options: ClientOptions & { bytes: number }): Promise<WorkloadResult> {
  let session: SinkSession | null = null;
  const base = { workload: 'bulk' as const, payload: options.payload, plannedBytes: options.bytes };
  // Built before the clock starts (the vm image's arenas take ~150 ms); generated whole up to
  // PREPARED_MAX_BYTES, so the run's CPU goes to moving bytes, not making them.
  const generator = new PayloadSource(options.payload, options.bytes, { seed: options.seed });
  const source: ChunkSource = options.bytes <= PREPARED_MAX_BYTES ? new PreparedPayload(generator) : generator;
  try {
    session = await SinkSession.open(options.host, options.port, options.capSeconds);
    session.onProgress = options.onProgress ?? null;
    await session.sendSegment(source);
    const end = await session.finish();
    const seconds = session.elapsedSeconds;
    return {
      ...base,
      bytes: end.bytes,
      seconds,
      goodput_mbps: goodput(end.bytes, seconds),
      capped: false,
      verified: end.verified,
      cpu_seconds: session.cpuSeconds,
    };
  } catch (e) {
    return partial(base, session, e, options.capSeconds);
  } finally {
    session?.close();
  }
}

export interface MigrationOptions extends ClientOptions, Omit<MigrationParams, 'memoryPages'> {
  memoryBytes: number;
}

export async function runMigration(options: MigrationOptions): Promise<WorkloadResult> {
  const memoryPages = Math.ceil(options.memoryBytes / PAGE_SIZE);
  const planner = new MigrationPlanner({
    memoryPages,
    dirtyPagesPerSec: options.dirtyPagesPerSec,
    downtimeBudgetMs: options.downtimeBudgetMs,
    maxRounds: options.maxRounds,
  });
  // Build the image (its arenas) once, before the clock starts.
  const image = options.payload === 'vm' ? new VmImage(options.seed ?? 1) : undefined;
  const roundSeconds: number[] = [];
  let planned = memoryPages * PAGE_SIZE;
  let rounds = 0;
  let session: SinkSession | null = null;
  const base = () => ({
    workload: 'migration' as const,
    payload: options.payload,
    plannedBytes: planned,
    rounds,
    round_seconds: roundSeconds,
  });
  try {
    session = await SinkSession.open(options.host, options.port, options.capSeconds);
    session.onProgress = options.onProgress ?? null;
    let step: MigrationStep | null = planner.first();
    let downtimeMs = 0;
    let reason: StopReason = 'converged';
    while (step) {
      const started = performance.now();
      // Round r re-sends memory rewritten since: version r of the image, same page mix.
      const source = new PayloadSource(options.payload, step.pages * PAGE_SIZE, { seed: options.seed, version: step.round, image });
      await session.sendSegment(source);
      const seconds = (performance.now() - started) / 1000;
      if (step.kind === 'stop-copy') {
        downtimeMs = seconds * 1000;
        reason = step.reason;
      } else {
        rounds++;
        roundSeconds.push(seconds);
      }
      const next = planner.next({ pages: step.pages, seconds }, step);
      if (next) planned += next.pages * PAGE_SIZE;
      step = next;
    }
    const end = await session.finish();
    const seconds = session.elapsedSeconds;
    return {
      ...base(),
      bytes: end.bytes,
      seconds,
      goodput_mbps: goodput(end.bytes, seconds),
      capped: false,
      verified: end.verified,
      downtime_ms: downtimeMs,
      stop_reason: reason,
      cpu_seconds: session.cpuSeconds,
    };
  } catch (e) {
    return partial(base(), session, e, options.capSeconds);
  } finally {
    session?.close();
  }
}
