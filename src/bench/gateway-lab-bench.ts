// The gateway benchmark through the lab's emulator, paced: what users run (a paced transport
// over a real link, datagrams arriving one by one), not loopback. A gateway pair moves
// incompressible data over the lab's 1 Gbit/s baseline link paced at 900 Mbit/s and over its
// 100 Mbit/s mpls link paced at 90 Mbit/s (below the link, so the link's queue never decides),
// RUNS times each; the results give each gateway's CPU seconds per GiB, the emulator's, the
// machine's busy share and the link's, medians with their spread.
//   npm run bench:gateway-lab [-- --runs N --bytes 512MiB]
// Root (network namespaces). Writes bench/results/gateway-lab-<date>-<profile>.{jsonl,md,svg}.
import { join } from 'node:path';
import { benchAction } from '../lab/bench/cli.ts';
import { findProfile } from '../link/profiles.ts';
import { parseBytes } from '../lab/workloads/run.ts';
import { DEFAULT_MAX_CAP_SECONDS, DEFAULT_MIGRATION } from '../lab/bench/matrix.ts';
import { RESULTS_DIR } from '../lab/bench/report.ts';
import { DEFAULT_LAB } from '../lab/netns.ts';
import { benchCommand, positiveIntArg } from './args.ts';

const args = benchCommand(
  'bench:gateway-lab',
  'a gateway pair through the lab emulator, paced below the link (baseline at 900M, mpls at 90M); root; writes bench/results/gateway-lab-<date>-<profile>-*',
)
  .option('--runs <n>', 'runs per profile', positiveIntArg, 3)
  .option('--bytes <size>', 'bytes per run (mpls: at most 128MiB)', parseBytes, 512 * 2 ** 20)
  .parse()
  .opts<{ runs: number; bytes: number }>();
const RUNS = args.runs;
const BYTES = args.bytes;
const day = new Date().toISOString().slice(0, 10);

for (const [profile, rate, bytes] of [
  ['baseline', '900M', BYTES],
  ['mpls', '90M', Math.min(BYTES, 128 * 2 ** 20)],
] as const) {
  await benchAction({
    profile: [findProfile(profile)!],
    method: ['longhaul'],
    workload: 'bulk',
    payload: 'random',
    bytes,
    json: false,
    cap: DEFAULT_MAX_CAP_SECONDS,
    dirtyRate: DEFAULT_MIGRATION.dirtyPagesPerSec,
    downtime: DEFAULT_MIGRATION.downtimeBudgetMs,
    out: join(RESULTS_DIR, `gateway-lab-${day}-${profile}-paced${rate}`),
    save: true,
    seed: 1,
    longhaulFlag: ['--max-rate', rate],
    gatewayNodeFlag: [],
    lab: DEFAULT_LAB.prefix,
    runs: RUNS,
  });
}
