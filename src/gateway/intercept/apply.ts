// `longhaul intercept install` / `remove`: applies an InterceptPlan (rules.ts) idempotently.
// Each step looks before it acts (iptables -C, ip rule show), so installing twice leaves one
// copy, removing twice is harmless, and removal deletes exactly the rules the plan names: the
// jump and the ip rule/route by their full specification, the chain (Longhaul's by name).
import { spawnSync } from 'node:child_process';
import type { InterceptPlan } from './rules.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command; tests pass a runner that prefixes `ip netns exec NS`. */
export type Runner = (argv: readonly string[]) => RunResult;

export const runLocal: Runner = (argv) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? (r.error ? 127 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
};

export interface ApplyReport {
  /** The commands that changed something, in order. */
  changed: string[][];
}

export class InterceptApplyError extends Error {
  override name = 'InterceptApplyError';
}

// Bounds the loops that delete duplicates someone added by hand before us.
const MAX_DUPLICATES = 16;

function must(run: Runner, argv: string[], changed: string[][]): void {
  const r = run(argv);
  if (r.code !== 0) throw new InterceptApplyError(`${argv.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  changed.push(argv);
}

function ipt(plan: InterceptPlan): string[] {
  return ['iptables', '-w', '5', '-t', plan.table];
}

function chainExists(run: Runner, plan: InterceptPlan): boolean {
  return run([...ipt(plan), '-S', plan.chain]).code === 0;
}

function chainRuleCount(run: Runner, plan: InterceptPlan): number {
  const r = run([...ipt(plan), '-S', plan.chain]);
  return r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
}

function has(run: Runner, plan: InterceptPlan, chain: string, spec: string[]): boolean {
  return run([...ipt(plan), '-C', chain, ...spec]).code === 0;
}

/** `ip rule show` lines that are the plan's rule (matched on priority, mark, table and protocol). */
function ipRulePresent(run: Runner, plan: InterceptPlan): boolean {
  if (!plan.ipRule) return false;
  const pref = plan.ipRule[plan.ipRule.indexOf('pref') + 1]!;
  const mark = plan.ipRule[plan.ipRule.indexOf('fwmark') + 1]!;
  const table = plan.ipRule[plan.ipRule.indexOf('lookup') + 1]!;
  const proto = plan.ipRule[plan.ipRule.indexOf('protocol') + 1]!;
  const r = run(['ip', 'rule', 'show', 'pref', pref]);
  return r.stdout.split('\n').some((l) => l.includes(`fwmark ${mark} lookup ${table}`) && new RegExp(`proto ${proto}\\b`).test(l));
}

function ipRoutePresent(run: Runner, plan: InterceptPlan): boolean {
  if (!plan.ipRoute) return false;
  const table = plan.ipRoute[plan.ipRoute.indexOf('table') + 1]!;
  const proto = plan.ipRoute[plan.ipRoute.indexOf('proto') + 1]!;
  const r = run(['ip', 'route', 'show', 'table', table, 'proto', proto]);
  return r.stdout.split('\n').some((l) => /^local (default|0\.0\.0\.0\/0) dev lo\b/.test(l));
}

export function installPlan(plan: InterceptPlan, run: Runner = runLocal): ApplyReport {
  const changed: string[][] = [];
  const t = ipt(plan);
  if (!chainExists(run, plan)) must(run, [...t, '-N', plan.chain], changed);
  // The chain is Longhaul's: when it is not exactly the plan (another config installed before), it is rebuilt.
  const exact = chainRuleCount(run, plan) === plan.chainRules.length && plan.chainRules.every((r) => has(run, plan, plan.chain, r));
  if (!exact) {
    if (chainRuleCount(run, plan) > 0) must(run, [...t, '-F', plan.chain], changed);
    for (const r of plan.chainRules) must(run, [...t, '-A', plan.chain, ...r], changed);
  }
  if (!has(run, plan, 'PREROUTING', plan.jump)) must(run, [...t, '-I', 'PREROUTING', '1', ...plan.jump], changed);
  if (plan.ipRule && !ipRulePresent(run, plan)) must(run, ['ip', 'rule', 'add', ...plan.ipRule], changed);
  if (plan.ipRoute && !ipRoutePresent(run, plan)) must(run, ['ip', 'route', 'add', ...plan.ipRoute], changed);
  return { changed };
}

export function removePlan(plan: InterceptPlan, run: Runner = runLocal): ApplyReport {
  const changed: string[][] = [];
  const t = ipt(plan);
  if (plan.ipRoute && ipRoutePresent(run, plan)) must(run, ['ip', 'route', 'del', ...plan.ipRoute], changed);
  for (let i = 0; i < MAX_DUPLICATES && plan.ipRule && ipRulePresent(run, plan); i++)
    must(run, ['ip', 'rule', 'del', ...plan.ipRule], changed);
  for (let i = 0; i < MAX_DUPLICATES && has(run, plan, 'PREROUTING', plan.jump); i++)
    must(run, [...t, '-D', 'PREROUTING', ...plan.jump], changed);
  if (chainExists(run, plan)) {
    if (chainRuleCount(run, plan) > 0) must(run, [...t, '-F', plan.chain], changed);
    must(run, [...t, '-X', plan.chain], changed);
  }
  return { changed };
}
