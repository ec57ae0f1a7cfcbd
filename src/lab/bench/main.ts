// Standalone entry for `longhaul bench` until (and besides) the main CLI: node src/lab/bench/main.ts ...
import { Command } from 'commander';
import { registerBenchCommand } from './cli.ts';

const program = new Command('longhaul');
registerBenchCommand(program);
await program.parseAsync(['bench', ...process.argv.slice(2)], { from: 'user' });
