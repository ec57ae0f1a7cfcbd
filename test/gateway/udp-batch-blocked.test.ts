// Partial sends (root: a network namespace): when the kernel takes only part of a sendBatch
// (EAGAIN), the batched WAN socket keeps the rest in the peer's backlog and sends it on
// writability. Everything it accepted arrives, intact and in order; only what did not fit the
// backlog (a full one) is dropped, and that is counted, never lost silently.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../src/native/load.ts';

const NS = `lhu3-${process.pid}`;
const CHILD = fileURLToPath(new URL('./udp-batch-blocked.child.ts', import.meta.url));

const why = !loadAddon('lh_udp').ok
  ? 'lh_udp addon not built (make -C native)'
  : process.getuid?.() !== 0
    ? 'needs root (network namespace)'
    : spawnSync('sh', ['-c', 'command -v ip && command -v tc'], { stdio: 'ignore' }).status !== 0
      ? 'needs iproute2 (ip, tc)'
      : null;

function run(cmd: string[]): void {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd.join(' ')}: ${r.stderr}`);
}

test('a send buffer that fills mid-batch loses nothing accepted, drops only beyond a full backlog; runs over the MTU fall back from GSO', {
  skip: why ?? false,
  timeout: 60_000,
}, () => {
  run(['ip', 'netns', 'add', NS]);
  try {
    run(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up', 'mtu', '1500']);
    // Datagrams wait in this qdisc still charged to the sending socket, so a 4 KiB SO_SNDBUF
    // fills after a few of them. A large limit: the qdisc itself never drops.
    run(['ip', 'netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '40mbit', 'burst', '16kb', 'limit', '8mb']);
    const r = spawnSync('ip', ['netns', 'exec', NS, process.execPath, CHILD], { encoding: 'utf8', timeout: 45_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      accepted: number[];
      received: number[];
      corrupt: number;
      datagramsOut: number;
      sendErrors: number;
      blocked: number;
      dropped: number;
      backlogAtDrop: number | null;
      oversize: { received: number[]; sendErrors: number };
    };
    assert.ok(out.blocked > 0, `the kernel refused part of a batch at least once (blocked ${out.blocked})`);
    assert.equal(out.corrupt, 0, 'every datagram intact');
    assert.deepEqual(out.received, out.accepted, 'exactly the accepted datagrams arrive, in order');
    assert.equal(out.datagramsOut, out.accepted.length, 'datagramsOut counts what the kernel took: everything kept went out later');
    assert.equal(out.sendErrors, out.dropped, 'every datagram not taken is counted as a send error');
    assert.equal(out.accepted.length + out.dropped, 3000);
    // 3000 handed over within a few turns, far faster than the qdisc drains: the backlog fills.
    assert.ok(out.dropped > 0, 'some datagrams did not fit the backlog');
    // Dropped only once the backlog was full: 2 MiB of 1200-byte datagrams (udp-batch.ts BACKLOG_BYTES).
    assert.ok(
      out.backlogAtDrop !== null && out.backlogAtDrop >= Math.floor((2 * 1024 * 1024) / 1200),
      `backlog held ${out.backlogAtDrop} datagrams when it dropped`,
    );
    assert.deepEqual(
      out.oversize.received,
      Array.from({ length: 200 }, (_, i) => i),
      'datagrams over the MTU: all arrive, intact, in order',
    );
    assert.equal(out.oversize.sendErrors, 0);
  } finally {
    spawnSync('ip', ['netns', 'del', NS]);
  }
});
