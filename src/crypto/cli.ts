// `longhaul keygen NAME [--dir D] [--force]`: writes NAME.key (0600) and NAME.pub.
import type { Command } from 'commander';
import { generateStaticKeyPair, writeKeyFiles } from './keys.ts';

export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('generate a static X25519 key pair: NAME.key (private, mode 0600) and NAME.pub')
    .argument('<name>', 'base name of the key files')
    .option('--dir <dir>', 'directory to write the files into', '.')
    .option('--force', 'overwrite existing key files', false)
    .action((name: string, opts: { dir: string; force: boolean }) => {
      const written = writeKeyFiles(opts.dir, name, generateStaticKeyPair(), opts.force);
      if (!written.ok) {
        process.stderr.write(`longhaul keygen: ${written.error}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `private key: ${written.value.privatePath}\npublic key:  ${written.value.publicPath}\n${written.value.publicKey}\n`,
      );
    });
}
