// Interception's throughput against an explicit tunnel (issue #17), in the lab: one gateway pair
// (in-path topology, src/lab/intercept-sites.ts) serves both paths at once, so the only
// difference is how a connection reaches gateway A.
//   intercept: iperf3 -c <the server's real address>:5201 (diverted by TPROXY)
//   tunnel:    iperf3 -c <gateway A's tunnel listener>:15201 (-> the server's 5201)
//   direct:    iperf3 -c <the server's real address>:5202, a port not intercepted: plain TCP
//              routed over the same emulated link (context only)
// Rounds alternate which of intercept and tunnel goes first. Writes a markdown file with the
// machine, the date, each run and the medians. Needs root; run under the CPU lock
// (flock /tmp/longhaul-cpu.lock npx node src/bench/intercept-bench.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLI_MAIN,
  INTERCEPT_ADDRESSES as I,
  TUNNEL_PORT_OFFSET,
  gatewayAInterceptFlags,
  interceptSitesDown,
  interceptSitesUp,
  gatewayStatus as status,
  nsRun,
  nsSpawn,
  startGateways,
  stopSpawned,
} from '../lab/intercept-sites.ts';
import type { LabId } from '../lab/netns.ts';
import type { GatewayStatus } from '../gateway/gateway.ts';
import { benchCommand, positiveIntArg } from './args.ts';

const values = benchCommand(
  'bench:intercept',
  'iperf3 through transparent interception against the explicit tunnel of the same gateways, in the lab (root)',
)
  .option('--profile <name>', 'link profile', 'metro')
  .option('--rounds <n>', 'rounds (each runs intercept, tunnel and direct once; the first two alternate)', positiveIntArg, 3)
  .option('--seconds <n>', 'iperf3 seconds per run', positiveIntArg, 10)
  .option('--out <path>', 'the markdown file to write (default bench/results/intercept-DATE.md)', '')
  .option('--prefix <p>', 'lab namespace prefix', 'lhicb')
  .parse()
  .opts<{ profile: string; rounds: number; seconds: number; out: string; prefix: string }>();
const { profile, rounds, seconds } = values;
const LAB: LabId = { prefix: values.prefix, stateDir: `/run/longhaul-lab-${values.prefix}` };
const PORT = 5201;
const DIRECT_PORT = 5202;

type Path = 'intercept' | 'tunnel' | 'direct';
interface Run {
  round: number;
  path: Path;
  mbps: number;
  retransmits: number;
  viaGateway: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const keyDir = mkdtempSync(join(tmpdir(), 'lhic-bench-keys-'));
  const sites = await interceptSitesUp({ lab: LAB, topology: 'in-path', profile });
  const started: import('node:child_process').ChildProcess[] = [];
  let gwStop = async (): Promise<void> => {};
  const flags = gatewayAInterceptFlags(sites, [PORT]);
  const runs: Run[] = [];
  try {
    const inst = await nsRun(sites.ns.gatewayA, [process.execPath, CLI_MAIN, 'intercept', 'install', ...flags]);
    if (inst.code !== 0) throw new Error(`intercept install: ${inst.stderr}`);
    for (const p of [PORT, DIRECT_PORT]) {
      const s = nsSpawn(sites.ns.server, ['iperf3', '-s', '-p', String(p)], { stdio: 'ignore' });
      started.push(s);
    }
    const gw = await startGateways(sites, { keyDir, ports: [PORT] });
    gwStop = gw.stop;
    await new Promise((r) => setTimeout(r, 500));
    const target: Record<Path, [string, number]> = {
      intercept: [I.server, PORT],
      tunnel: [sites.gatewayALan, PORT + TUNNEL_PORT_OFFSET],
      direct: [I.server, DIRECT_PORT],
    };
    for (let round = 1; round <= rounds; round++) {
      const order: Path[] = round % 2 === 1 ? ['intercept', 'tunnel', 'direct'] : ['tunnel', 'intercept', 'direct'];
      for (const path of order) {
        const before = await status(sites.ns.gatewayA);
        const [host, port] = target[path];
        let out = '';
        for (let attempt = 0; attempt < 5; attempt++) {
          const r = await nsRun(
            sites.ns.client,
            ['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'],
            (seconds + 30) * 1000,
          );
          out = r.stdout;
          if (!out.includes('server is busy')) break;
          await new Promise((res) => setTimeout(res, 1000));
        }
        const j = JSON.parse(out) as {
          end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
          error?: string;
        };
        if (!j.end?.sum_received) throw new Error(`iperf3 ${path}: ${j.error ?? out.slice(-500)}`);
        const after = await status(sites.ns.gatewayA);
        const count = (s: GatewayStatus): number => (path === 'tunnel' ? s.tunnels[0]!.total : s.intercept!.rules[0]!.total);
        const viaGateway = count(after) > count(before);
        const run = {
          round,
          path,
          mbps: j.end.sum_received.bits_per_second / 1e6,
          retransmits: j.end.sum_sent?.retransmits ?? 0,
          viaGateway,
        };
        if ((path === 'direct') === viaGateway) throw new Error(`${path} run ${viaGateway ? 'went' : 'did not go'} through gateway A`);
        runs.push(run);
        process.stderr.write(`${JSON.stringify(run)}\n`);
      }
    }
  } finally {
    await gwStop();
    for (const s of started) await stopSpawned(s);
    await nsRun(sites.ns.gatewayA, [process.execPath, CLI_MAIN, 'intercept', 'remove', ...flags]);
    await interceptSitesDown(LAB);
    rmSync(keyDir, { recursive: true, force: true });
  }
  const by = (p: Path): number[] => runs.filter((r) => r.path === p).map((r) => r.mbps);
  const med = { intercept: median(by('intercept')), tunnel: median(by('tunnel')), direct: median(by('direct')) };
  const spread = (p: Path): string => `${Math.min(...by(p)).toFixed(0)}-${Math.max(...by(p)).toFixed(0)}`;
  const ratio = med.intercept / med.tunnel;
  const date = new Date().toISOString();
  const md = [
    `# Interception vs explicit tunnel, iperf3 on ${profile} (${date.slice(0, 10)})`,
    '',
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}; run ${date}, under the shared CPU lock (other engineers' work may still run between locks).`,
    '',
    `Method: \`npx node src/bench/intercept-bench.ts --profile ${profile} --rounds ${rounds} --seconds ${seconds}\`. The lab (src/lab/netns.ts) on the ${profile} profile, the in-path topology of docs/intercept.md (src/lab/intercept-sites.ts): ` +
      'a client namespace behind site A, an iperf3 server namespace behind site B. One gateway pair, default settings (keys on, compression auto), serves both paths at once: ' +
      `**intercept** = \`iperf3 -c ${I.server} -p ${PORT}\` (the server's real address, diverted by TPROXY rules from \`longhaul intercept install\`), ` +
      `**tunnel** = \`iperf3 -c ${I.aLan} -p ${PORT + TUNNEL_PORT_OFFSET}\` (gateway A's explicit tunnel to the same server port), ` +
      `**direct** = \`iperf3 -c ${I.server} -p ${DIRECT_PORT}\` (a port not intercepted: plain TCP CUBIC routed over the same emulated link, for context). ` +
      `${seconds} s per run, client to server; rounds alternate whether intercept or tunnel goes first; each run checked to have gone through gateway A (its intercept or tunnel counter rose) or, direct, not.`,
    '',
    '| round | path | Mbit/s | TCP retransmits (client side) |',
    '|---:|---|---:|---:|',
    ...runs.map((r) => `| ${r.round} | ${r.path} | ${r.mbps.toFixed(1)} | ${r.retransmits} |`),
    '',
    '| path | median Mbit/s | min-max |',
    '|---|---:|---:|',
    ...(['intercept', 'tunnel', 'direct'] as const).map((p) => `| ${p} | ${med[p].toFixed(1)} | ${spread(p)} |`),
    '',
    `**Intercept / tunnel: ${(ratio * 100).toFixed(1)}%** of the explicit tunnel's median (target: at least 95%).`,
    '',
  ].join('\n');
  const out = values.out !== '' ? values.out : `bench/results/intercept-${date.slice(0, 10)}.md`;
  writeFileSync(out, md);
  process.stdout.write(md);
}

await main();
