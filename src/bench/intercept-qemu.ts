// The real-migration workload in intercept mode (issue #17): a QEMU live migration from the
// hypervisor at site A to the destination hypervisor's own address at site B, carried by
// intercepting gateways; nothing in QEMU points at Longhaul.
//
// Topology: one-arm (src/lab/intercept-sites.ts) with router A's own TCP to site B's LAN policy-
// routed via gateway A, because the lab's QEMUs run in the site namespaces (src/lab/qemu/vm.ts):
// the source QEMU runs in A, gateway A in its own namespace beside it, gateway B and the
// destination QEMU in B. The source migrates to tcp:<B's LAN address>:PORT; gateway A intercepts
// it, gateway B connects to that address. The guest is verified on the destination as in the
// bench (guest-check.ts). Needs root and the guest image; run under the CPU lock:
//   flock /tmp/longhaul-cpu.lock npx node src/bench/intercept-qemu.ts [--profile metro] [--memory 512]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLI_MAIN,
  INTERCEPT_ADDRESSES as I,
  gatewayAInterceptFlags,
  interceptSitesDown,
  interceptSitesUp,
  gatewayStatus as status,
  nsRun,
  startGateways,
} from '../lab/intercept-sites.ts';
import type { LabId } from '../lab/netns.ts';
import { ensureGuestImage } from '../lab/qemu/guest-image.ts';
import { QemuVm } from '../lab/qemu/vm.ts';
import { listenForMigration, migrate } from '../lab/qemu/migrate.ts';
import { heartbeatSeq, verifyOnDestination, waitReady } from '../lab/qemu/guest-check.ts';
import { DEFAULT_QEMU } from '../lab/qemu/settings.ts';
import { benchCommand, positiveIntArg } from './args.ts';

const values = benchCommand(
  'intercept-qemu',
  "a QEMU live migration to the destination host's own address through intercepting gateways, in the lab (root)",
)
  .option('--profile <name>', 'link profile', 'metro')
  .option('--memory <MiB>', 'guest RAM in MiB', positiveIntArg, 512)
  .option('--cap <seconds>', 'give up on the migration after this long', positiveIntArg, 180)
  .option('--prefix <p>', 'lab namespace prefix', 'lhicq')
  .parse()
  .opts<{ profile: string; memory: number; cap: number; prefix: string }>();
const LAB: LabId = { prefix: values.prefix, stateDir: `/run/longhaul-lab-${values.prefix}` };
const PORT = 7300;
const s = { ...DEFAULT_QEMU, memoryMiB: values.memory };

async function main(): Promise<void> {
  const image = ensureGuestImage();
  const keyDir = mkdtempSync(join(tmpdir(), 'lhicq-keys-'));
  const vmDir = mkdtempSync(join(tmpdir(), 'lhicq-vm-'));
  const sites = await interceptSitesUp({ lab: LAB, topology: 'one-arm', profile: values.profile, routerTrafficViaGateway: true });
  const flags = gatewayAInterceptFlags(sites, [PORT]);
  const vms: QemuVm[] = [];
  let stopGateways = async (): Promise<void> => {};
  try {
    const inst = await nsRun(sites.ns.gatewayA, [process.execPath, CLI_MAIN, 'intercept', 'install', ...flags]);
    if (inst.code !== 0) throw new Error(`intercept install: ${inst.stderr}`);
    const gw = await startGateways(sites, { keyDir, ports: [PORT] });
    stopGateways = gw.stop;
    // The association is opened before the clock starts (readyz asks for it), as the bench's warm-up does.
    for (let i = 0; i < 50; i++) {
      const r = await nsRun(sites.ns.gatewayA, [process.execPath, CLI_MAIN, 'health', '--ready'], 10_000);
      if (r.code === 0) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const src = await QemuVm.start('a', LAB, image, s, vmDir, 'src', false);
    vms.push(src);
    const channel = await src.control();
    const ready = await waitReady(channel);
    await channel.waitFor((m) => m.type === 'hb', 5_000);
    const dst = await QemuVm.start('b', LAB, image, s, vmDir, 'dst', true);
    vms.push(dst);
    await listenForMigration(dst, s, '0.0.0.0', PORT);
    const before = await status(sites.ns.gatewayA);
    // The destination hypervisor's own address: site B's router/hypervisor on its LAN.
    const outcome = await migrate(src, dst, s, { host: I.bLan, port: PORT, listenHost: '0.0.0.0', capSeconds: values.cap });
    const lastSeq = heartbeatSeq(channel.lastHeartbeat());
    channel.close();
    const verification = outcome.status === 'completed' ? await verifyOnDestination(dst, ready, lastSeq) : null;
    const after = await status(sites.ns.gatewayA);
    const b = await status(sites.ns.gatewayB);
    const rule = after.intercept!.rules[0]!;
    const result = {
      profile: values.profile,
      memoryMiB: s.memoryMiB,
      status: outcome.status,
      seconds: Number(outcome.seconds.toFixed(2)),
      verified: verification?.verified === true,
      verification: verification?.detail ?? outcome.error ?? null,
      qemuTransferredBytes: outcome.info.ram?.transferred ?? null,
      downtimeMs: outcome.info.downtime ?? null,
      migratedTo: `${I.bLan}:${PORT}`,
      interceptedConnections: rule.total - before.intercept!.rules[0]!.total,
      interceptRawBytesFromClients: rule.bytesFromClients - before.intercept!.rules[0]!.bytesFromClients,
      gatewayBInbound: b.inbound.total,
      compressionRatio: after.codec.encode.ratio,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    if (!result.verified || result.interceptedConnections < 1) process.exitCode = 1;
  } finally {
    await Promise.all(vms.map((v) => v.stop().catch(() => {})));
    await stopGateways();
    await nsRun(sites.ns.gatewayA, [process.execPath, CLI_MAIN, 'intercept', 'remove', ...flags]);
    await interceptSitesDown(LAB);
    rmSync(keyDir, { recursive: true, force: true });
    rmSync(vmDir, { recursive: true, force: true });
  }
}

await main();
