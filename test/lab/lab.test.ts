// The lab network with real namespaces (root): up, the VXLAN overlay carrying plain TCP
// through the emulator, exec, and a down that leaves nothing behind (also after a crash).
// Uses its own namespace prefix so it never touches a lab someone is using.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import {
  labDown,
  labExec,
  labRun,
  labUp,
  readEmulatorStats,
  readLabState,
  checkLabPrivileges,
  requestEmulatorStats,
  setLinkProfile,
  type LabId,
} from '../../src/lab/netns.ts';
import { fixture, holdLabLock, runInSite, startInSite } from './fixtures/lab-tools.ts';

const LAB: LabId = { prefix: 'lht', stateDir: '/run/longhaul-lab-test' };
const isRoot = process.getuid?.() === 0;

function namespacesWithPrefix(prefix: string): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`${prefix}-`));
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// The check runs the checkout's own code as nobody (uid 65534), which needs a checkout that user
// can read: not so in a 0700 folder (a private temporary clone). Then it is skipped, saying why.
const NETNS_MODULE = new URL('../../src/lab/netns.ts', import.meta.url);
function nobodyCanRunCheckout(): boolean {
  const r = spawnSync(
    process.execPath,
    ['-e', `require('node:fs').accessSync(${JSON.stringify(NETNS_MODULE.pathname)}, require('node:fs').constants.R_OK)`],
    { uid: 65534, gid: 65534, stdio: 'ignore' },
  );
  return r.status === 0;
}

test('without root the lab refuses with a clear error', {
  skip: !isRoot
    ? 'run as root to drop privileges for this check'
    : !nobodyCanRunCheckout()
      ? 'the checkout (or the node binary in it) is not readable by uid 65534'
      : false,
}, () => {
  const r = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { checkLabPrivileges } from ${JSON.stringify(NETNS_MODULE.href)}; console.log(JSON.stringify(checkLabPrivileges()));`,
    ],
    { uid: 65534, gid: 65534, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout) as { ok: boolean; error?: string };
  assert.equal(res.ok, false);
  assert.match(res.error!, /needs root/);
  assert.match(res.error!, /unshare -Urn/);
  assert.deepEqual(checkLabPrivileges(), { ok: true, mode: 'root' });
});

test('lab up, overlay TCP, exec, down', { skip: !isRoot && 'needs root (network namespaces)', timeout: 150_000 }, async (t) => {
  const release = await holdLabLock(LAB);
  try {
    let emulatorPid = 0;
    await t.test('up creates the namespaces, addresses, overlay and a relaying emulator', async () => {
      const state = await labUp({ lab: LAB, profile: 'metro', replace: true });
      assert.deepEqual(namespacesWithPrefix('lht').sort(), ['lht-a', 'lht-b', 'lht-emu']);
      emulatorPid = state.emulator!.pid;
      assert.ok(alive(emulatorPid));
      assert.equal(readEmulatorStats(LAB)!.profile, 'metro');
      const a = await labRun('a', ['ip', '-br', 'addr'], { lab: LAB });
      assert.match(a.stdout, /a-emu\S*\s+UP\s+198\.18\.1\.2\/24/);
      assert.match(a.stdout, /vx0\s+\S+\s+198\.19\.0\.1\/24/);
      const b = await labRun('b', ['ip', '-d', 'link', 'show', 'vx0'], { lab: LAB });
      assert.match(b.stdout, /mtu 1450/);
      assert.match(b.stdout, /vxlan id 42 remote 198\.18\.2\.1/);
      const cc = await labRun('a', ['sysctl', '-n', 'net.ipv4.tcp_congestion_control'], { lab: LAB });
      assert.equal(cc.stdout.trim(), 'cubic');
      // The sites only reach each other through the emulator: no route across the underlay.
      const route = await labRun('a', ['ip', 'route', 'get', '198.18.2.2'], { lab: LAB });
      assert.notEqual(route.code, 0);
    });

    await t.test('a second up does not tear down a running lab unless asked to', async () => {
      await assert.rejects(labUp({ lab: LAB, profile: 'mpls' }), /already up/);
      assert.ok(alive(emulatorPid));
      assert.equal(readEmulatorStats(LAB)!.profile, 'metro');
    });

    await t.test('plain TCP crosses the VXLAN overlay through the emulator intact', async () => {
      const bytes = 8 * 1024 * 1024;
      const sink = startInSite(LAB, 'b', [process.execPath, fixture('tcp-sink.ts'), '198.19.0.2', '5001']);
      await sink.ready('listening');
      const sent = await runInSite<{ bytes: number; sha256: string }>(
        LAB,
        'a',
        [process.execPath, fixture('tcp-send.ts'), '198.19.0.2', '5001', String(bytes)],
        60_000,
      );
      const got = await sink.result<{ bytes: number; sha256: string }>();
      assert.equal(got.bytes, bytes);
      assert.equal(got.sha256, sent.sha256);
      // A fresh report, not the periodic file (up to ~1 s old, later on a busy machine): the
      // sink has every byte, so the relay has delivered every data segment.
      const s = (await requestEmulatorStats(LAB)) ?? assert.fail('no stats');
      assert.ok(s.aToB.delivered >= bytes / 1450, `A->B delivered ${s.aToB.delivered}`);
      assert.ok(s.bToA.delivered > 0);
    });

    await t.test('setLinkProfile restarts the emulator; the old one reports its final counters on SIGTERM', async () => {
      const { state, previous } = await setLinkProfile('mpls', { lab: LAB });
      assert.ok(previous !== undefined);
      assert.equal(previous.running, false);
      assert.equal(previous.profile, 'metro');
      assert.ok(previous.aToB.delivered > 0 && previous.bToA.delivered > 0);
      assert.ok(!alive(emulatorPid));
      emulatorPid = state.emulator!.pid;
      const now = await requestEmulatorStats(LAB);
      assert.equal(now!.profile, 'mpls');
      assert.equal(now!.link.rttMs, 25);
      // Counters start from zero. A late segment of the previous test's TCP connection (its
      // final ACK, a retransmission under load) may already have reached the new emulator.
      assert.ok(
        now!.aToB.packetsIn <= 5 && now!.aToB.packetsIn < previous.aToB.packetsIn,
        `new emulator counted ${now!.aToB.packetsIn} packets in`,
      );
    });

    await t.test('down removes namespaces and kills the emulator and recorded processes; idempotent', async () => {
      const sleeper = labExec('a', ['sleep', '300'], { lab: LAB, stdio: 'ignore' });
      const native = childrenOf(emulatorPid);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(alive(sleeper.pid!));
      const report = await labDown({ lab: LAB });
      assert.deepEqual(report.removedNamespaces.sort(), ['lht-a', 'lht-b', 'lht-emu']);
      assert.deepEqual(report.strayPids, []);
      assert.deepEqual(namespacesWithPrefix('lht'), []);
      for (const pid of [emulatorPid, sleeper.pid!, ...native]) assert.ok(!alive(pid), `pid ${pid} survived`);
      assert.equal(existsSync(LAB.stateDir), false);
      const again = await labDown({ lab: LAB });
      assert.deepEqual(again, { removedNamespaces: [], killedPids: [], strayPids: [] });
    });

    await t.test('down cleans up what a crashed up left behind', async () => {
      execFileSync('ip', ['netns', 'add', 'lht-emu']);
      execFileSync('ip', ['netns', 'add', 'lht-a']);
      assert.equal(readLabState(LAB), undefined);
      const report = await labDown({ lab: LAB });
      assert.deepEqual(report.removedNamespaces.sort(), ['lht-a', 'lht-emu']);
      assert.deepEqual(namespacesWithPrefix('lht'), []);
    });
  } finally {
    await labDown({ lab: LAB });
    release();
  }
});
