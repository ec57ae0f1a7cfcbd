// Standalone entry for the lab commands (`node src/lab/main.ts emulate ...`): what `lab up`
// spawns the emulator with, and usable before the main CLI wires the commands in.

import { Command } from 'commander';
import { registerEmulateCommand, registerLabCommands } from './cli.ts';

const program = new Command('longhaul-lab');
registerEmulateCommand(program);
registerLabCommands(program);
await program.parseAsync(process.argv);
