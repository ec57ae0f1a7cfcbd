// `npm run fuzz:gateway [-- COUNT SEED]`: 1M (default) mutated datagrams at a live gateway pair
// while verified transfers run; prints a JSON report. Bounded to 5 minutes.
import { gatewayFuzz } from './gateway-fuzz.ts';

const controller = process.env.FUZZ_CONTROLLER ?? 'fixed'; // "model": the default rate controller
const report = await gatewayFuzz({
  ...(controller === 'fixed' ? { fixedRateBps: 50e6 } : {}),
  datagrams: Number(process.argv[2] ?? 1_000_000),
  maxSeconds: 300,
  transferBytes: 1024 * 1024,
  seed: Number(process.argv[3] ?? Date.now() % 100_000),
});
console.log(JSON.stringify(report));
if (report.exchangesVerified !== report.exchangesCompleted || !report.aliveAfter) process.exitCode = 1;
