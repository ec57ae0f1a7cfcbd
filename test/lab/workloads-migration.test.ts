import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MigrationPlanner, simulateMigration, type MigrationParams } from '../../src/lab/workloads/migration-model.ts';

const GiB_PAGES = 262144;

function linkSeconds(pagesPerSec: number, rttSec = 0) {
  return (pages: number) => pages / pagesPerSec + rttSec;
}

test('rounds shrink geometrically until the remainder fits the downtime budget', () => {
  // 1 GiB over ~25 Mbit/s (763 pages/s) with 256 dirty pages/s: each round re-sends a third.
  const p: MigrationParams = { memoryPages: GiB_PAGES, dirtyPagesPerSec: 256, downtimeBudgetMs: 300, maxRounds: 30 };
  const out = simulateMigration(p, linkSeconds(763));
  assert.equal(out.reason, 'converged');
  assert.equal(out.steps[0]!.pages, GiB_PAGES);
  for (let i = 1; i < out.steps.length; i++) {
    const prevSeconds = out.steps[i - 1]!.pages / 763;
    assert.equal(out.steps[i]!.pages, Math.round(256 * prevSeconds), `step ${i} re-sends what was dirtied`);
    assert.ok(out.steps[i]!.pages < out.steps[i - 1]!.pages);
  }
  const last = out.steps.at(-1)!;
  assert.equal(last.kind, 'stop-copy');
  assert.ok(out.downtimeMs <= 300, `downtime ${out.downtimeMs}`);
  // The round before the stop could not have stopped: its remainder did not fit.
  const beforeLast = out.steps.at(-2)!;
  assert.ok((beforeLast.pages / 763) * 1000 > 300);
  // Total time is the geometric series T0 / (1 - d/r), within the rounding of the last steps.
  const t0 = GiB_PAGES / 763;
  assert.ok(Math.abs(out.seconds - t0 / (1 - 256 / 763)) < 2, `total ${out.seconds}`);
  assert.equal(out.rounds, out.steps.length - 1);
});

test('a fast link stops after the first copy', () => {
  const out = simulateMigration(
    { memoryPages: GiB_PAGES, dirtyPagesPerSec: 256, downtimeBudgetMs: 300, maxRounds: 30 },
    linkSeconds(30000),
  );
  assert.equal(out.rounds, 1);
  assert.equal(out.steps[1]!.kind, 'stop-copy');
  assert.ok(out.downtimeMs < 300);
});

test('a VM that dirties memory as fast as the link moves it is stopped anyway', () => {
  const out = simulateMigration({ memoryPages: 10000, dirtyPagesPerSec: 1000, downtimeBudgetMs: 100, maxRounds: 30 }, linkSeconds(1000));
  assert.equal(out.reason, 'not-converging');
  assert.equal(out.steps.at(-1)!.kind, 'stop-copy');
  assert.ok(out.downtimeMs > 100, 'the forced stop blows the budget');
  const capped = simulateMigration({ memoryPages: 10000, dirtyPagesPerSec: 800, downtimeBudgetMs: 10, maxRounds: 3 }, linkSeconds(1000));
  assert.equal(capped.reason, 'max-rounds');
  assert.equal(capped.rounds, 3);
});

test('dirtied pages never exceed the memory; the planner ends after stop-copy', () => {
  const planner = new MigrationPlanner({ memoryPages: 100, dirtyPagesPerSec: 1e6, downtimeBudgetMs: 0, maxRounds: 5 });
  const first = planner.first();
  const second = planner.next({ pages: 100, seconds: 10 }, first)!;
  assert.equal(second.pages, 100);
  const stop = { kind: 'stop-copy' as const, round: 2, pages: 5, reason: 'converged' as const };
  assert.equal(planner.next({ pages: 5, seconds: 0.01 }, stop), null);
  assert.throws(() => new MigrationPlanner({ memoryPages: 0, dirtyPagesPerSec: 1, downtimeBudgetMs: 1, maxRounds: 1 }));
});

test('property: every migration terminates within maxRounds with a stop-and-copy', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.double({ min: 0, max: 1e5, noNaN: true }),
      fc.double({ min: 1, max: 1e6, noNaN: true }),
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 1, max: 40 }),
      (memoryPages, dirty, rate, budget, maxRounds) => {
        const out = simulateMigration(
          { memoryPages, dirtyPagesPerSec: dirty, downtimeBudgetMs: budget, maxRounds },
          linkSeconds(rate, 0.001),
        );
        assert.ok(out.rounds >= 1 && out.rounds <= maxRounds);
        assert.equal(out.steps.filter((s) => s.kind === 'stop-copy').length, 1);
        assert.equal(out.steps.at(-1)!.kind, 'stop-copy');
        for (const s of out.steps) assert.ok(s.pages >= 0 && s.pages <= memoryPages);
        if (out.reason === 'converged') assert.ok((out.steps.at(-1)!.pages / rate) * 1000 <= budget + 1e-6);
      },
    ),
    { numRuns: 300 },
  );
});
