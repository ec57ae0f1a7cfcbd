// Operations commands: `longhaul reload`, `longhaul health [--ready]` (both through a running
// gateway's control interface) and `longhaul install-service` (the systemd unit).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { formatEndpoint, parseEndpoint } from '../gateway/address.ts';
import { DEFAULT_CONTROL } from '../gateway/config.ts';

const UNIT_TEMPLATE = fileURLToPath(new URL('../../packaging/systemd/longhaul@.service', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));

function controlUrl(command: string, control: string, path: string): string | null {
  const at = parseEndpoint(control);
  if (!at.ok) {
    process.stderr.write(`longhaul ${command}: --control: ${at.error}\n`);
    process.exitCode = 2;
    return null;
  }
  return `http://${formatEndpoint(at.value)}${path}`;
}

async function ask(
  command: string,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown> } | null> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    process.stderr.write(`longhaul ${command}: no gateway answering at ${url} (${cause})\n`);
    return null;
  }
}

/**
 * The unit with this machine's paths: ExecStart runs this node binary on this checkout's CLI
 * (systemd's PATH may hold another node, or none).
 */
export function unitText(template: string, node: string, cli: string): string {
  return template.replace(/^ExecStart=.*$/m, `ExecStart=${node} ${cli} gateway --config /etc/longhaul/%i.yaml --log-json`);
}

export function registerOpsCommands(program: Command): void {
  program
    .command('reload')
    .description('make a running gateway re-read its config file (as SIGHUP does); exits 1 if it refused the new config')
    .option(
      '--control <host:port>',
      `control address of the gateway (default ${DEFAULT_CONTROL}; loopback only), e.g. --control 127.0.0.1:4601`,
      DEFAULT_CONTROL,
    )
    .action(async (opts: { control: string }) => {
      const url = controlUrl('reload', opts.control, '/reload');
      if (url === null) return;
      const r = await ask('reload', url, { method: 'POST' }, 30_000);
      if (r === null) {
        process.exitCode = 1;
        return;
      }
      const changes = Array.isArray(r.body.changes) ? (r.body.changes as string[]) : [];
      const errors = Array.isArray(r.body.errors) ? (r.body.errors as string[]) : [];
      if (r.status === 200) {
        process.stdout.write(changes.length ? `reloaded:\n${changes.map((c) => `  ${c}`).join('\n')}\n` : 'reloaded: no changes\n');
      } else {
        process.stderr.write(
          `longhaul reload: refused; the gateway keeps its previous configuration:\n${errors.map((e) => `  ${e}`).join('\n')}\n`,
        );
        process.exitCode = 1;
      }
    });

  program
    .command('health')
    .description(
      'exit 0 if the gateway is healthy (GET /healthz), with --ready if every peer has a live association (GET /readyz); 1 otherwise. For keepalived vrrp_script, probes and load balancers',
    )
    .option('--ready', 'check readiness (every configured peer associated) instead of liveness')
    .option(
      '--control <host:port>',
      `control address of the gateway (default ${DEFAULT_CONTROL}), e.g. --control 127.0.0.1:4601`,
      DEFAULT_CONTROL,
    )
    .option('--timeout <ms>', 'give up (exit 1) after this long, e.g. --timeout 2000', '3000')
    .option('--quiet', 'print nothing, only the exit status')
    .action(async (opts: { ready?: boolean; control: string; timeout: string; quiet?: boolean }) => {
      const url = controlUrl('health', opts.control, opts.ready ? '/readyz' : '/healthz');
      if (url === null) return;
      const timeout = Number(opts.timeout);
      const r = await ask('health', url, {}, Number.isFinite(timeout) && timeout > 0 ? timeout : 3000);
      if (r === null) {
        process.exitCode = 1;
        return;
      }
      if (!opts.quiet) process.stdout.write(`${JSON.stringify(r.body)}\n`);
      process.exitCode = r.status === 200 ? 0 : 1;
    });

  program
    .command('install-service')
    .description('install the systemd unit longhaul@.service (one instance per /etc/longhaul/NAME.yaml) and the longhaul system user; root')
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--print', 'print the unit instead of installing it')
    .option('--no-user', 'do not create the longhaul system user')
    .action((opts: { unitDir: string; print?: boolean; user: boolean }) => {
      const text = unitText(readFileSync(UNIT_TEMPLATE, 'utf8'), process.execPath, CLI);
      if (opts.print) {
        process.stdout.write(text);
        return;
      }
      // ProtectHome= hides /home and /root from the service: the code must live elsewhere.
      for (const p of [process.execPath, CLI]) {
        if (/^\/(home|root|run\/user)(\/|$)/.test(p)) {
          process.stderr.write(
            `longhaul install-service: ${p} is under a home directory, which the hardened unit cannot see (ProtectHome=yes); install Longhaul under /opt or /usr/local first (docs/operations.md)\n`,
          );
          process.exitCode = 1;
          return;
        }
      }
      try {
        mkdirSync(opts.unitDir, { recursive: true });
        const unit = join(opts.unitDir, 'longhaul@.service');
        writeFileSync(unit, text, { mode: 0o644 });
        process.stdout.write(`wrote ${unit}\n`);
        if (!existsSync('/etc/longhaul')) mkdirSync('/etc/longhaul', { mode: 0o750 });
        if (opts.user) {
          let exists = true;
          try {
            execFileSync('id', ['-u', 'longhaul'], { stdio: 'ignore' });
          } catch {
            exists = false;
          }
          if (!exists) {
            execFileSync(
              'useradd',
              ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', 'longhaul'],
              { stdio: 'inherit' },
            );
            process.stdout.write('created system user longhaul\n');
          }
          execFileSync('chown', ['root:longhaul', '/etc/longhaul']);
          execFileSync('chmod', ['0750', '/etc/longhaul']);
        }
        try {
          execFileSync('systemctl', ['daemon-reload'], { stdio: 'ignore' });
        } catch {
          process.stdout.write('systemctl daemon-reload failed (is systemd running?): run it before starting the service\n');
        }
        process.stdout.write(`next: put the config in /etc/longhaul/NAME.yaml, then: systemctl enable --now longhaul@NAME\n`);
      } catch (err) {
        process.stderr.write(`longhaul install-service: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
