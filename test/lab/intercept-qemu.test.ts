// The real-migration workload in intercept mode (issue #17, src/bench/intercept-qemu.ts), in a
// lab of its own (root, QEMU; namespace prefix lhicq) under flock /tmp/longhaul-lab.lock like
// the other QEMU test: a 128 MiB guest migrates to the destination host's own address, gateway A
// intercepts the migration stream, and the guest verifies on the destination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { guestUnavailable } from '../../src/lab/qemu/guest-image.ts';

const SCRIPT = fileURLToPath(new URL('../../src/bench/intercept-qemu.ts', import.meta.url));
const PREFIX = 'lhicq';

const why =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces, iptables)'
    : spawnSync('sh', ['-c', 'command -v ip && command -v flock && command -v ethtool && command -v iptables'], { stdio: 'ignore' })
          .status !== 0
      ? 'needs iproute2, flock, ethtool and iptables'
      : guestUnavailable();

test("a 128 MiB guest migrates to the destination host's own address through intercepting gateways, verified", {
  skip: why ?? false,
  timeout: 300_000,
}, () => {
  const run = spawnSync(
    'flock',
    ['/tmp/longhaul-lab.lock', process.execPath, SCRIPT, '--memory', '128', '--profile', 'baseline', '--cap', '90', '--prefix', PREFIX],
    {
      encoding: 'utf8',
      timeout: 280_000,
    },
  );
  const detail = `exit ${run.status ?? run.signal}\nstderr: ${run.stderr.slice(-1500)}\nstdout: ${run.stdout.slice(-1500)}`;
  const r = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
    status?: string;
    verified?: boolean;
    qemuTransferredBytes?: number;
    interceptedConnections?: number;
    interceptRawBytesFromClients?: number;
    migratedTo?: string;
  };
  assert.equal(r.status, 'completed', detail);
  assert.equal(r.verified, true, detail);
  assert.equal(r.migratedTo, '198.18.102.1:7300', detail);
  assert.equal(r.interceptedConnections, 1, detail);
  // Every byte QEMU sent went through the intercept rule's connection (a few more: QEMU's handshake).
  assert.ok((r.qemuTransferredBytes ?? 0) > 16 * 2 ** 20 && (r.interceptRawBytesFromClients ?? 0) >= (r.qemuTransferredBytes ?? 0), detail);
  assert.equal(run.status, 0, detail);
  for (const ns of ['a', 'b', 'emu', 'client', 'server', 'gwa'])
    assert.equal(existsSync(`/run/netns/${PREFIX}-${ns}`), false, `${PREFIX}-${ns} left behind`);
});
