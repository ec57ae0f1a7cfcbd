// `longhaul intercept rules|install|remove`: the kernel rules that divert the config's intercept
// destinations to the gateway (src/gateway/intercept/rules.ts), printed, applied or deleted.
import type { Command } from 'commander';
import { Option } from 'commander';
import { configFromFlags } from '../gateway/config.ts';
import type { GatewayConfig, GatewayFlags } from '../gateway/config.ts';
import { formatPlan, interceptPlan, shellLine } from '../gateway/intercept/rules.ts';
import { installPlan, removePlan } from '../gateway/intercept/apply.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

type InterceptFlags = Pick<GatewayFlags, 'config' | 'name' | 'peer' | 'peerName' | 'intercept' | 'interceptListen' | 'interceptMethod'> & {
  remove?: boolean;
};

/** The gateway's config as far as interception needs it (no keys are read, no WAN socket bound). */
function loadConfig(flags: InterceptFlags, command: string): GatewayConfig | null {
  const r = configFromFlags({ ...flags, ...(flags.config === undefined ? { wan: '0.0.0.0:0' } : {}), insecurePlaintext: true });
  if (!r.ok) {
    process.stderr.write(`longhaul intercept ${command}: invalid configuration:\n${r.errors.map((e) => `  ${e}`).join('\n')}\n`);
    process.exitCode = 2;
    return null;
  }
  if (r.config.intercept.length === 0) {
    process.stderr.write(
      `longhaul intercept ${command}: the configuration has no intercept rules (intercept: in the file, or --intercept)\n`,
    );
    process.exitCode = 2;
    return null;
  }
  return r.config;
}

function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', "the gateway's YAML config file, e.g. --config /etc/longhaul/site-a.yaml")
    .option('--name <name>', 'gateway name (tags the rules; default "gateway"), as given to longhaul gateway')
    .option('--peer <host:port>', "the peer gateway's WAN address (excluded from interception)")
    .option('--peer-name <name>', 'name of that peer (default "peer")')
    .option('--intercept <[peer=]subnets[:ports]>', 'as for longhaul gateway; repeatable', collect)
    .option('--intercept-listen <host:port>', 'as for longhaul gateway (default 0.0.0.0:4510)')
    .addOption(new Option('--intercept-method <method>', 'as for longhaul gateway').choices(['tproxy', 'redirect']));
}

export function registerInterceptCommands(program: Command): void {
  const intercept = program
    .command('intercept')
    .description(
      "the kernel's rules for transparent interception (iptables + policy routing), from the gateway's config; docs/intercept.md",
    );
  addConfigOptions(intercept.command('rules').description('print the commands install would run (or, with --remove, remove)'))
    .option('--remove', 'print the removal commands instead')
    .action((flags: InterceptFlags) => {
      const cfg = loadConfig(flags, 'rules');
      if (!cfg) return;
      process.stdout.write(formatPlan(interceptPlan(cfg), flags.remove ? 'remove' : 'install'));
    });
  addConfigOptions(
    intercept.command('install').description('apply the rules (root); idempotent: what is already there is left as it is'),
  ).action((flags: InterceptFlags) => apply(flags, 'install'));
  addConfigOptions(intercept.command('remove').description('delete exactly the rules install applies (root); idempotent')).action(
    (flags: InterceptFlags) => apply(flags, 'remove'),
  );
}

function apply(flags: InterceptFlags, which: 'install' | 'remove'): void {
  const cfg = loadConfig(flags, which);
  if (!cfg) return;
  const plan = interceptPlan(cfg);
  for (const n of plan.notes) process.stderr.write(`longhaul intercept ${which}: note: ${n}\n`);
  try {
    const report = which === 'install' ? installPlan(plan) : removePlan(plan);
    for (const c of report.changed) process.stdout.write(`${shellLine(c)}\n`);
    process.stdout.write(
      report.changed.length === 0
        ? `nothing to ${which}: already ${which === 'install' ? 'installed' : 'absent'}\n`
        : `${which === 'install' ? 'installed' : 'removed'} (${report.changed.length} changes)\n`,
    );
  } catch (err) {
    process.stderr.write(`longhaul intercept ${which}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
