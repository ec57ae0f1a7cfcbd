// `longhaul emulate` and `longhaul lab up|down|exec|stats|profile`. The gateway engineer wires
// registerEmulateCommand and registerLabCommands into src/cli/main.ts; src/lab/main.ts is a
// standalone entry with just these (also what `lab up` spawns the emulator with).

import type { Command } from 'commander';
import type { Result } from '../result.ts';
import { DEFAULT_PORTS, LAB_ADDRESSES, parsePorts, resolveLink, type EmulatorConfig } from './emulator-config.ts';
import { runEmulatorProcess, type EngineChoice } from './emulator-run.ts';
import { ALL_PROFILES } from '../link/profiles.ts';
import { DEFAULT_LAB, LabError, labDown, labExec, labUp, requestEmulatorStats, setLinkProfile, type LabId, type Site } from './netns.ts';

function die(message: string): never {
  process.stderr.write(`longhaul: ${message}\n`);
  process.exit(2);
}

function parseEngine(text: string): EngineChoice {
  if (text === 'ts' || text === 'native' || text === 'auto') return text;
  return die(`bad engine "${text}" (auto, native, ts)`);
}

const profileHelp = ALL_PROFILES.map((p) => p.name).join(', ');

export function registerEmulateCommand(program: Command): void {
  program
    .command('emulate')
    .description('user-space WAN link emulator: relays UDP between the lab sides with rate, delay, jitter, loss')
    .option('--profile <name>', `link profile (${profileHelp})`)
    .option('--rate <rate>', 'link rate per direction, e.g. 100mbit, 1gbit')
    .option('--rtt <time>', 'round-trip time (each direction delays half), e.g. 25ms')
    .option('--loss <rate>', 'random loss per packet and direction, e.g. 0.05% or 0.0005')
    .option('--jitter <time>', 'delay variation, e.g. 3ms (order-preserving unless --reorder)')
    .option('--queue <size>', 'drop-tail queue in time at the link rate or bytes, e.g. 20ms, 256kb')
    .option('--reorder', 'independent per-packet jitter (packets may be reordered)')
    .option('--outage <t1-t2>', 'link down between two times after start, e.g. 10s-12s')
    .option('--ports <list>', 'UDP ports to relay', DEFAULT_PORTS.join(','))
    .option('--seed <n>', 'PRNG seed for loss and jitter', '1')
    .option('--engine <engine>', 'datapath: auto (native if built), native, ts', 'auto')
    .option('--stats-file <path>', 'write JSON stats here every --stats-interval, on SIGUSR1 and at exit')
    .option('--stats-interval <ms>', 'stats file period', '1000')
    .option('--report-interval <ms>', 'also print a JSON stats line to stdout this often (0: only on SIGUSR1 and exit)', '0')
    .option('--duration <time>', 'stop after this long (default: until SIGTERM/SIGINT)')
    .option('--name <name>', 'profile name to report (default: derived from the options)')
    .option('--a-listen <ip>', 'emulator address on the A side', LAB_ADDRESSES.aNear)
    .option('--a-peer <ip>', 'default destination on the A side', LAB_ADDRESSES.aPeer)
    .option('--b-listen <ip>', 'emulator address on the B side', LAB_ADDRESSES.bNear)
    .option('--b-peer <ip>', 'default destination on the B side', LAB_ADDRESSES.bPeer)
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const config = emulatorConfigFromOptions(o);
      if (!config.ok) die(config.error);
      try {
        await runEmulatorProcess(config.value, parseEngine(String(o.engine)));
      } catch (err) {
        die(`emulator: ${(err as Error).message}`);
      }
    });
}

export function emulatorConfigFromOptions(o: Record<string, string | boolean | undefined>): Result<EmulatorConfig> {
  const str = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const link = resolveLink({
    profile: str('profile'),
    rate: str('rate'),
    rtt: str('rtt'),
    loss: str('loss'),
    jitter: str('jitter'),
    queue: str('queue'),
    outage: str('outage'),
    reorder: o.reorder === true,
  });
  if (!link.ok) return link;
  const ports = parsePorts(str('ports') ?? DEFAULT_PORTS.join(','));
  if (!ports.ok) return ports;
  let durationMs = 0;
  if (str('duration') !== undefined) {
    const m = /^([0-9.]+)(ms|s)?$/.exec(str('duration')!);
    if (m === null) return { ok: false, error: `bad duration "${str('duration')}"` };
    durationMs = Number(m[1]) * (m[2] === 'ms' ? 1 : 1000);
  }
  const num = (k: string, dflt: number): number => {
    const v = Number(str(k) ?? dflt);
    return Number.isFinite(v) && v >= 0 ? v : dflt;
  };
  return {
    ok: true,
    value: {
      profileName: str('name') ?? link.value.name,
      link: link.value.link,
      ports: ports.value,
      a: { listen: str('aListen') ?? LAB_ADDRESSES.aNear, peer: str('aPeer') ?? LAB_ADDRESSES.aPeer },
      b: { listen: str('bListen') ?? LAB_ADDRESSES.bNear, peer: str('bPeer') ?? LAB_ADDRESSES.bPeer },
      seed: Math.trunc(num('seed', 1)),
      statsFile: str('statsFile'),
      statsIntervalMs: num('statsInterval', 1000),
      reportIntervalMs: num('reportInterval', 0),
      durationMs,
    },
  };
}

function labFromOptions(o: { prefix?: string; stateDir?: string }): LabId {
  return { prefix: o.prefix ?? DEFAULT_LAB.prefix, stateDir: o.stateDir ?? DEFAULT_LAB.stateDir };
}

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof LabError) die(err.message);
    throw err;
  }
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('the lab network: sites A and B and the link emulator as namespaces');
  const labOpts = (c: Command): Command =>
    c.option('--prefix <p>', 'namespace prefix', DEFAULT_LAB.prefix).option('--state-dir <dir>', 'state directory', DEFAULT_LAB.stateDir);

  labOpts(lab.command('up'))
    .description(`create namespaces ${DEFAULT_LAB.prefix}-a, -b, -emu, the VXLAN overlay, and start the emulator`)
    .option('--profile <name>', `link profile (${profileHelp})`, 'baseline')
    .option('--rate <rate>')
    .option('--rtt <time>')
    .option('--loss <rate>')
    .option('--jitter <time>')
    .option('--queue <size>')
    .option('--reorder')
    .option('--outage <t1-t2>')
    .option('--ports <list>', 'UDP ports the emulator relays', DEFAULT_PORTS.join(','))
    .option('--engine <engine>', 'emulator datapath: auto, native, ts', 'auto')
    .option('--seed <n>', 'emulator PRNG seed', '1')
    .option('--cc <name>', 'default TCP congestion control inside the sites', 'cubic')
    .option('--replace', 'tear down a running lab with the same prefix first')
    .action(async (o: Record<string, string | boolean | undefined> & { prefix?: string; stateDir?: string }) =>
      guarded(async () => {
        const ports = parsePorts(String(o.ports));
        if (!ports.ok) die(ports.error);
        const s = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
        const state = await labUp({
          lab: labFromOptions(o),
          profile: {
            profile: s('profile'),
            rate: s('rate'),
            rtt: s('rtt'),
            loss: s('loss'),
            jitter: s('jitter'),
            queue: s('queue'),
            outage: s('outage'),
            reorder: o.reorder === true,
          },
          ports: ports.value,
          engine: parseEngine(String(o.engine)),
          seed: Number(o.seed),
          congestionControl: s('cc'),
          replace: o.replace === true,
        });
        const e = state.emulator!;
        process.stdout.write(
          `lab up (root): ${Object.values(state.namespaces).join(', ')}; overlay vx0 198.19.0.1 <-> 198.19.0.2; ` +
            `emulator pid ${e.pid} (${e.engine}), profile ${e.profile}; stats ${e.statsFile}\n`,
        );
      }),
    );

  labOpts(lab.command('down'))
    .description('remove the lab (idempotent; also after a crash)')
    .option('--kill-strays', 'also kill processes inside the lab namespaces that the lab did not start')
    .action(async (o: { prefix?: string; stateDir?: string; killStrays?: boolean }) =>
      guarded(async () => {
        const r = await labDown({ lab: labFromOptions(o), killStrays: o.killStrays === true });
        process.stdout.write(
          `lab down: removed ${r.removedNamespaces.join(', ') || 'nothing'}; killed ${r.killedPids.length} process(es)\n`,
        );
        if (r.strayPids.length > 0) {
          process.stderr.write(
            `warning: processes not started by the lab were still inside: ${r.strayPids.join(' ')} (use --kill-strays)\n`,
          );
        }
      }),
    );

  labOpts(lab.command('exec'))
    .description('run a command in a site: lab exec a|b|emu -- cmd args...')
    .argument('<site>', 'a, b or emu')
    .argument('<cmd...>', 'command and arguments')
    .action(async (site: string, cmd: string[], o: { prefix?: string; stateDir?: string }) =>
      guarded(async () => {
        if (site !== 'a' && site !== 'b' && site !== 'emu') die(`bad site "${site}" (a, b, emu)`);
        const child = labExec(site as Site, cmd, { lab: labFromOptions(o), stdio: 'inherit' });
        const code = await new Promise<number>((resolve) => child.once('close', (c, sig) => resolve(c ?? (sig !== null ? 128 : 1))));
        process.exitCode = code;
      }),
    );

  labOpts(lab.command('stats'))
    .description("print the emulator's counters (JSON)")
    .action(async (o: { prefix?: string; stateDir?: string }) =>
      guarded(async () => {
        const r = await requestEmulatorStats(labFromOptions(o));
        if (r === undefined) die('no emulator running');
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      }),
    );

  labOpts(lab.command('profile'))
    .description('restart the emulator with another link profile')
    .argument('<name>', profileHelp)
    .action(async (name: string, o: { prefix?: string; stateDir?: string }) =>
      guarded(async () => {
        const { state } = await setLinkProfile(name, { lab: labFromOptions(o) });
        process.stdout.write(`emulator pid ${state.emulator!.pid}, profile ${state.emulator!.profile}\n`);
      }),
    );
}
