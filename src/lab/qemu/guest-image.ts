// The lab's QEMU guest, built at first use from Debian packages and our own workload program:
// the kernel of `linux-image-amd64` (downloaded with apt-get download and unpacked, not
// installed: the host's /boot is not touched), and an initramfs of `busybox-static`, an /init
// script and lh-guestload (guest/lh-guestload.c, compiled static). Both are cached; the
// initramfs is named after a hash of what went into it, so editing the program rebuilds it.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newcArchive, type CpioEntry } from './cpio.ts';

const GUEST_SRC = join(resolve(dirname(fileURLToPath(import.meta.url))), 'guest');
export const DEFAULT_GUEST_CACHE = process.env.LONGHAUL_QEMU_CACHE ?? '/var/cache/longhaul/qemu-guest';
const KERNEL_META_PACKAGE = 'linux-image-amd64';
const BUSYBOX = '/bin/busybox';

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** The kernel package it came from (e.g. linux-image-6.1.0-57-amd64). */
  kernelPackage: string;
}

function sh(argv: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, timeout: 300_000 });
}

/** Why the guest cannot be built or run here, or null. */
export function guestUnavailable(): string | null {
  for (const [cmd, pkg] of [
    ['qemu-system-x86_64', 'qemu-system-x86'],
    ['gcc', 'gcc'],
    ['apt-get', 'apt'],
    ['dpkg-deb', 'dpkg'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      return `${cmd} is not installed (apt-get install -y ${pkg})`;
    }
  }
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install -y busybox-static)`;
  // A dynamic busybox would find no loader in the initramfs.
  if (readFileSync(BUSYBOX).includes('/lib64/ld-linux')) return `${BUSYBOX} is dynamically linked (apt-get install -y busybox-static)`;
  if (!existsSync('/usr/lib/x86_64-linux-gnu/libc.a')) return 'static libc is missing (apt-get install -y libc6-dev)';
  return null;
}

/** The versioned kernel package the meta-package points at. */
function kernelPackage(): string {
  let deps: string;
  try {
    deps = sh(['apt-cache', 'depends', KERNEL_META_PACKAGE]);
  } catch (e) {
    throw new Error(
      `apt-cache depends ${KERNEL_META_PACKAGE} failed (apt-get update first?): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const m = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(deps);
  if (!m) throw new Error(`cannot resolve ${KERNEL_META_PACKAGE}'s kernel package (apt-get update first?): ${deps.trim().slice(0, 200)}`);
  return m[1]!;
}

function ensureKernel(cache: string): { path: string; pkg: string } {
  const stamp = join(cache, 'kernel-package');
  const path = join(cache, 'vmlinuz');
  if (existsSync(path) && existsSync(stamp)) return { path, pkg: readFileSync(stamp, 'utf8').trim() };
  const pkg = kernelPackage();
  const tmp = mkdtempSync(join(cache, 'kernel-'));
  try {
    sh(['apt-get', 'download', '-q', pkg], { cwd: tmp });
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} left no .deb`);
    const listing = sh(['dpkg-deb', '-c', join(tmp, deb)]);
    const member = /\.\/boot\/vmlinuz-\S+/.exec(listing)?.[0];
    if (!member) throw new Error(`${deb} holds no /boot/vmlinuz`);
    sh(['dpkg-deb', '-x', join(tmp, deb), join(tmp, 'root')]);
    renameSync(join(tmp, 'root', member), path);
    writeFileSync(stamp, `${pkg}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { path, pkg };
}

function ensureInitrd(cache: string): string {
  const source = readFileSync(join(GUEST_SRC, 'lh-guestload.c'));
  const init = readFileSync(join(GUEST_SRC, 'init.sh'));
  const busybox = readFileSync(BUSYBOX);
  const hash = createHash('sha256').update(source).update(init).update(busybox).digest('hex').slice(0, 16);
  const path = join(cache, `initrd-${hash}.cpio`);
  if (existsSync(path)) return path;
  const tmp = mkdtempSync(join(cache, 'initrd-'));
  try {
    const binary = join(tmp, 'lh-guestload');
    sh(['gcc', '-O2', '-static', '-Wall', '-o', binary, join(GUEST_SRC, 'lh-guestload.c')]);
    const entries: CpioEntry[] = [
      ...['bin', 'dev', 'proc', 'sys', 'tmp'].map((d): CpioEntry => ({ kind: 'dir', path: d })),
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
      { kind: 'file', path: 'init', data: init, mode: 0o755 },
      { kind: 'file', path: 'lh-guestload', data: readFileSync(binary), mode: 0o755 },
    ];
    writeFileSync(join(tmp, 'initrd.cpio'), newcArchive(entries));
    renameSync(join(tmp, 'initrd.cpio'), path);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return path;
}

/** The guest's kernel and initramfs, built into `cache` on first use. */
export function ensureGuestImage(cache = DEFAULT_GUEST_CACHE): GuestImage {
  mkdirSync(cache, { recursive: true });
  const kernel = ensureKernel(cache);
  return { kernel: kernel.path, initrd: ensureInitrd(cache), kernelPackage: kernel.pkg };
}
