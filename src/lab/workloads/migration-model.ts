// Pre-copy live migration, as a pure decision model (no sockets, no clock): the workload
// drives it with measured round times, tests drive it with arithmetic.
//
// Round 0 copies all memory while the VM runs. Meanwhile the VM dirties pages at a constant
// rate (pages/s, distinct pages, at most the whole memory); each later round re-sends the
// pages dirtied during the previous one. When the pages left would take no longer than the
// downtime budget at the rate just measured, the VM is paused and they are sent in a final
// stop-and-copy, whose duration is the downtime. Like hypervisors (Hyper-V, Xen, QEMU) the
// model also gives up iterating after a maximum number of rounds, or when the remainder
// stops shrinking (the VM dirties memory about as fast as the link moves it), and then
// stops the VM anyway.

export interface MigrationParams {
  memoryPages: number;
  /** Distinct pages the running VM dirties per second. */
  dirtyPagesPerSec: number;
  /** Largest acceptable final pause. */
  downtimeBudgetMs: number;
  /** Pre-copy rounds (including the full first copy) before a forced stop-and-copy. */
  maxRounds: number;
}

// A light web-server VM (the report's migrated VM served web requests) dirties a few MB/s:
// 256 pages/s = 1 MiB/s, slow enough that even 64 KB-window TCP converges on every profile.
export const DEFAULT_DIRTY_PAGES_PER_SEC = 256;
export const DEFAULT_DOWNTIME_BUDGET_MS = 300;
// Xen's and QEMU's historical default iteration limits are ~30.
export const DEFAULT_MAX_ROUNDS = 30;
/** A round that re-sends more than this fraction of the previous one is not converging. */
const NOT_SHRINKING = 0.9;

export type StopReason = 'converged' | 'max-rounds' | 'not-converging';

export type MigrationStep =
  | { kind: 'precopy'; round: number; pages: number }
  | { kind: 'stop-copy'; round: number; pages: number; reason: StopReason };

export interface RoundResult {
  pages: number;
  seconds: number;
}

export class MigrationPlanner {
  readonly params: MigrationParams;
  #round = 0;
  #finished = false;

  constructor(params: MigrationParams) {
    if (!(params.memoryPages > 0) || !(params.dirtyPagesPerSec >= 0) || !(params.downtimeBudgetMs >= 0) || !(params.maxRounds >= 1)) {
      throw new RangeError(`invalid migration parameters ${JSON.stringify(params)}`);
    }
    this.params = params;
  }

  first(): MigrationStep {
    return { kind: 'precopy', round: 0, pages: this.params.memoryPages };
  }

  /** The step after a pre-copy round that moved `done.pages` in `done.seconds`; null after stop-copy. */
  next(done: RoundResult, previous: MigrationStep): MigrationStep | null {
    if (this.#finished || previous.kind === 'stop-copy') {
      this.#finished = true;
      return null;
    }
    const p = this.params;
    const dirtied = Math.min(p.memoryPages, Math.round(p.dirtyPagesPerSec * done.seconds));
    // A round too short to time (0 s) means the link is effectively infinite for its size.
    const pagesPerSec = done.seconds > 0 ? done.pages / done.seconds : Number.POSITIVE_INFINITY;
    const expectedPauseMs = dirtied === 0 ? 0 : (dirtied / pagesPerSec) * 1000;
    this.#round = previous.round + 1;
    if (expectedPauseMs <= p.downtimeBudgetMs) return { kind: 'stop-copy', round: this.#round, pages: dirtied, reason: 'converged' };
    if (this.#round >= p.maxRounds) return { kind: 'stop-copy', round: this.#round, pages: dirtied, reason: 'max-rounds' };
    if (previous.round > 0 && dirtied > NOT_SHRINKING * done.pages) {
      return { kind: 'stop-copy', round: this.#round, pages: dirtied, reason: 'not-converging' };
    }
    return { kind: 'precopy', round: this.#round, pages: dirtied };
  }
}

export interface MigrationOutcome {
  steps: MigrationStep[];
  /** Pre-copy rounds, the full first copy included; the stop-and-copy is not a round. */
  rounds: number;
  pagesSent: number;
  seconds: number;
  downtimeMs: number;
  reason: StopReason;
}

/**
 * Run the model against a transfer-time function (seconds to move n pages): used by tests
 * and by the benchmark to estimate how long a run should take on a profile.
 */
export function simulateMigration(params: MigrationParams, transferSeconds: (pages: number) => number): MigrationOutcome {
  const planner = new MigrationPlanner(params);
  const steps: MigrationStep[] = [];
  let step: MigrationStep | null = planner.first();
  let seconds = 0;
  let pagesSent = 0;
  let downtimeMs = 0;
  let reason: StopReason = 'converged';
  while (step) {
    steps.push(step);
    const t = transferSeconds(step.pages);
    seconds += t;
    pagesSent += step.pages;
    if (step.kind === 'stop-copy') {
      downtimeMs = t * 1000;
      reason = step.reason;
    }
    step = planner.next({ pages: step.pages, seconds: t }, step);
  }
  return { steps, rounds: steps.length - 1, pagesSent, seconds, downtimeMs, reason };
}
