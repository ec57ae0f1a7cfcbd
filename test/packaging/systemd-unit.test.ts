// packaging/systemd/longhaul@.service: systemd-analyze verify accepts it (as the template, as an
// instance, and as `longhaul install-service` writes it with this machine's paths) without a
// single warning about it, and it carries the hardening and notify settings issue #15 asks for.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../packaging/systemd/longhaul@.service', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/longhaul.js', import.meta.url));
const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const skip = analyze.status === 0 ? false : 'systemd-analyze not installed (Debian package systemd; .ci/run installs it)';

/** verify's complaints about `file` (it may also mention unrelated units of the host). */
function verify(file: string): { status: number | null; complaints: string[] } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
  const name = file.split('/').pop()!;
  const complaints = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(name));
  return { status: r.status, complaints };
}

function settings(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('[')) continue;
    const eq = t.indexOf('=');
    const k = t.slice(0, eq);
    m.set(k, [...(m.get(k) ?? []), t.slice(eq + 1)]);
  }
  return m;
}

test('the unit template and an instance pass systemd-analyze verify with no warnings', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-unit-'));
  const instance = join(dir, 'longhaul@site-a.service');
  copyFileSync(UNIT, instance);
  for (const f of [UNIT, instance]) {
    const r = verify(f);
    assert.equal(r.status, 0, r.complaints.join('\n'));
    assert.deepEqual(r.complaints, []);
  }
});

test('verify would catch a broken unit (the check can fail)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lh-unit-'));
  const broken = join(dir, 'longhaul@.service');
  writeFileSync(broken, readFileSync(UNIT, 'utf8').replace(/^Type=notify$/m, 'Type=notify-sometimes'));
  assert.ok(verify(broken).complaints.some((l) => /Type|service type/i.test(l)));
});

test('install-service --print writes ExecStart with this node and CLI, and that unit verifies', { skip }, () => {
  const r = spawnSync(process.execPath, [CLI, 'install-service', '--print'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const exec = settings(r.stdout).get('ExecStart');
  assert.deepEqual(exec, [`${process.execPath} ${CLI} gateway --config /etc/longhaul/%i.yaml --log-json`]);
  const dir = mkdtempSync(join(tmpdir(), 'lh-unit-'));
  const file = join(dir, 'longhaul@.service');
  writeFileSync(file, r.stdout);
  const v = verify(file);
  assert.equal(v.status, 0, v.complaints.join('\n'));
  assert.deepEqual(v.complaints, []);
});

test('the unit is Type=notify with a watchdog and SIGHUP reload, and hardened as issue #15 lists', () => {
  const s = settings(readFileSync(UNIT, 'utf8'));
  const one = (k: string): string | undefined => s.get(k)?.at(-1);
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'main');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.ok(one('WatchdogSec'));
  assert.match(one('ExecStart') ?? '', /gateway --config \/etc\/longhaul\/%i\.yaml/);
  assert.equal(one('User'), 'longhaul');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.equal(one('CapabilityBoundingSet'), '', 'no capabilities for ports above 1024');
  assert.equal(one('RestrictAddressFamilies'), 'AF_INET AF_INET6 AF_UNIX');
  assert.ok(Number(one('LimitNOFILE')) >= 1024 + 64, 'room for the default maxConnections');
  assert.equal(s.has('MemoryDenyWriteExecute'), false, "V8's JIT needs W+X pages");
});
