// The QEMU workload's pieces that need no QEMU: the initramfs archive format, the guest's line
// protocol, QEMU's command line (the RAM size that avoids the TCG dirty-bitmap bug) and flags.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newcArchive } from '../../src/lab/qemu/cpio.ts';
import { parseGuestLine } from '../../src/lab/qemu/guest-channel.ts';
import { qemuArgs, vmPaths } from '../../src/lab/qemu/vm.ts';
import { DEFAULT_QEMU, effectiveMultifdChannels, guestRamKiB, mixWeights, parseMix } from '../../src/lab/qemu/settings.ts';

/** Reads a newc archive back: name, mode, size, rdev and data of each entry. */
function readNewc(buf: Buffer) {
  const out: Array<{ name: string; mode: number; data: Buffer; rdevmajor: number; rdevminor: number }> = [];
  let at = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    assert.equal(buf.toString('ascii', at, at + 6), '070701');
    const field = (i: number) => parseInt(buf.toString('ascii', at + 6 + i * 8, at + 14 + i * 8), 16);
    const mode = field(1),
      size = field(6),
      rdevmajor = field(9),
      rdevminor = field(10),
      namesize = field(11);
    const name = buf.toString('utf8', at + 110, at + 110 + namesize - 1);
    const dataAt = align(at + 110 + namesize);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode, data: buf.subarray(dataAt, dataAt + size), rdevmajor, rdevminor });
    at = align(dataAt + size);
  }
}

test('newc archive: entries read back with their modes, data, links and device numbers', () => {
  const data = Buffer.from('#!/bin/sh\necho hi\n');
  const archive = newcArchive([
    { kind: 'dir', path: '/bin' },
    { kind: 'file', path: 'init', data, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
  ]);
  assert.equal(archive.length % 4, 0);
  const entries = readNewc(archive);
  assert.deepEqual(
    entries.map((e) => e.name),
    ['bin', 'init', 'bin/sh', 'dev/console'],
  );
  assert.equal(entries[0]!.mode, 0o040755);
  assert.equal(entries[1]!.mode, 0o100755);
  assert.deepEqual(entries[1]!.data, data);
  assert.equal(entries[2]!.mode & 0o170000, 0o120000);
  assert.equal(entries[2]!.data.toString(), 'busybox');
  assert.equal(entries[3]!.mode, 0o020600);
  assert.deepEqual([entries[3]!.rdevmajor, entries[3]!.rdevminor], [5, 1]);
});

test('guest lines: type and key=value fields; noise is not a message', () => {
  const m = parseGuestLine('verified pages=87825 bad=0 first_bad=-1 ms=812\r');
  assert.equal(m?.type, 'verified');
  assert.deepEqual(m?.fields, { pages: '87825', bad: '0', first_bad: '-1', ms: '812' });
  assert.equal(parseGuestLine('[    1.2] kernel noise'), null);
  assert.equal(parseGuestLine(''), null);
});

test('guest RAM is never a multiple of 256 KiB (QEMU 7.2 TCG loses dirty pages there)', () => {
  for (const mib of [64, 128, 512, 1024]) {
    assert.notEqual(guestRamKiB(mib) % 256, 0);
    assert.ok(guestRamKiB(mib) > (mib - 1) * 1024);
  }
  const args = qemuArgs(
    { kernel: '/k', initrd: '/i', kernelPackage: 'p' },
    { ...DEFAULT_QEMU, memoryMiB: 512 },
    vmPaths('/tmp/x', 'src'),
    false,
  );
  assert.equal(args[args.indexOf('-m') + 1], '524272k');
  assert.equal(args.includes('-incoming'), false);
  const dst = qemuArgs(
    { kernel: '/k', initrd: '/i', kernelPackage: 'p' },
    { ...DEFAULT_QEMU, memoryMiB: 512 },
    vmPaths('/tmp/x', 'dst'),
    true,
  );
  assert.deepEqual(dst.slice(-2), ['-incoming', 'defer']);
  // Source and destination describe the same machine apart from their sockets and files.
  assert.deepEqual(
    args.filter((a) => !a.includes('/tmp/x')),
    dst.slice(0, -2).filter((a) => !a.includes('/tmp/x')),
  );
  assert.ok(args.includes('tcg'));
});

test('page mix and multifd flags', () => {
  const mix = parseMix('35,20,20,25');
  assert.equal(mixWeights(mix), '35,20,20,25');
  assert.equal(mixWeights(parseMix('1,0,0,1')), '50,0,0,50');
  assert.throws(() => parseMix('1,2,3'));
  assert.throws(() => parseMix('0,0,0,0'));
  assert.throws(() => parseMix('-1,2,3,4'));
  assert.equal(effectiveMultifdChannels({ ...DEFAULT_QEMU }), 0);
  assert.equal(effectiveMultifdChannels({ ...DEFAULT_QEMU, compression: 'zstd' }), 1);
  assert.equal(effectiveMultifdChannels({ ...DEFAULT_QEMU, multifdChannels: 4, compression: 'zstd' }), 4);
});
