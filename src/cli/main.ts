// The `longhaul` command line. Each area registers its own commands; this file only wires them.
import { Command } from 'commander';
import { registerKeygenCommand } from '../crypto/cli.ts';
import { registerEmulateCommand, registerLabCommands } from '../lab/cli.ts';
import { registerBenchCommand } from '../lab/bench/cli.ts';
import { registerGatewayCommand } from './gateway-command.ts';
import { registerStatusCommand } from './status-command.ts';
import { registerOpsCommands } from './ops-commands.ts';
import { registerInterceptCommands } from './intercept.ts';

export function buildProgram(): Command {
  const program = new Command('longhaul')
    .description('Longhaul WAN accelerator: split-TCP tunnels over an encrypted, rate-based UDP transport')
    .version('0.1.0');
  registerGatewayCommand(program);
  registerStatusCommand(program);
  registerOpsCommands(program);
  registerInterceptCommands(program);
  registerKeygenCommand(program);
  registerEmulateCommand(program);
  registerLabCommands(program);
  registerBenchCommand(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
