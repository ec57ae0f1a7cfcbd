// A minimal writer of the "newc" cpio format the Linux kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Written here rather than
// calling cpio(1) so the archive can hold root-owned files and the /dev/console device node
// without creating either on disk (the kernel opens /dev/console before it runs /init).

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function header(ino: number, mode: number, nlink: number, size: number, rdev: [number, number], name: string): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length))]);
}

/** The archive's bytes; paths are relative to the root (no leading slash). */
export function newcArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        parts.push(header(ino++, S_IFDIR | (e.mode ?? 0o755), 2, 0, [0, 0], path));
        break;
      case 'file':
        parts.push(
          header(ino++, S_IFREG | (e.mode ?? 0o644), 1, e.data.length, [0, 0], path),
          Buffer.from(e.data),
          Buffer.alloc(pad4(e.data.length)),
        );
        break;
      case 'symlink': {
        const target = Buffer.from(e.target, 'utf8');
        parts.push(header(ino++, S_IFLNK | 0o777, 1, target.length, [0, 0], path), target, Buffer.alloc(pad4(target.length)));
        break;
      }
      case 'chardev':
        parts.push(header(ino++, S_IFCHR | (e.mode ?? 0o600), 1, 0, [e.major, e.minor], path));
        break;
    }
  }
  parts.push(header(0, 0, 1, 0, [0, 0], TRAILER));
  return Buffer.concat(parts);
}
