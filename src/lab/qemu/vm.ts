// One QEMU process of the lab: a TCG guest (the lab's kernel and initramfs) in a site's
// namespace, its QMP socket, its console in a file, and the guest's control line as a socket.
// The destination of a migration is the same machine started with `-incoming defer`.

import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { labExec, type LabId, type Site } from '../netns.ts';
import { stopProcess } from '../bench/methods.ts';
import type { GuestImage } from './guest-image.ts';
import { QmpClient } from './qmp.ts';
import { GuestChannel } from './guest-channel.ts';
import { guestRamKiB, mixWeights, type QemuSettings } from './settings.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface VmPaths {
  qmp: string;
  control: string;
  console: string;
  log: string;
}

export function vmPaths(dir: string, name: string): VmPaths {
  return {
    qmp: join(dir, `${name}-qmp.sock`),
    control: join(dir, `${name}-ctl.sock`),
    console: join(dir, `${name}-console.log`),
    log: join(dir, `${name}-qemu.log`),
  };
}

/**
 * QEMU's command line. Source and destination must describe the same machine, so both get
 * the same one; the destination adds `-incoming defer` (its channels are set over QMP first).
 */
export function qemuArgs(image: GuestImage, s: QemuSettings, paths: VmPaths, incoming: boolean): string[] {
  const append = [
    'console=ttyS0',
    'quiet',
    'panic=1',
    `lh.share=${s.fillShare}`,
    `lh.mix=${mixWeights(s.mix)}`,
    `lh.dirty=${s.dirtyPagesPerSec}`,
    `lh.seed=${s.seed}`,
  ].join(' ');
  return [
    '-accel',
    'tcg',
    '-machine',
    'pc',
    '-cpu',
    'qemu64',
    '-smp',
    '1',
    '-m',
    `${guestRamKiB(s.memoryMiB)}k`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    image.kernel,
    '-initrd',
    image.initrd,
    '-append',
    append,
    '-chardev',
    `file,id=con,path=${paths.console}`,
    '-serial',
    'chardev:con',
    '-chardev',
    `socket,id=ctl,path=${paths.control},server=on,wait=off`,
    '-serial',
    'chardev:ctl',
    '-qmp',
    `unix:${paths.qmp},server=on,wait=off`,
    ...(incoming ? ['-incoming', 'defer'] : []),
  ];
}

export class QemuVm {
  readonly child: ChildProcess;
  readonly paths: VmPaths;
  qmp!: QmpClient;
  #exitInfo: string | null = null;

  private constructor(child: ChildProcess, paths: VmPaths) {
    this.child = child;
    this.paths = paths;
    child.once('exit', (code, signal) => {
      this.#exitInfo = signal ? `signal ${signal}` : `code ${code}`;
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** How it exited ("code 1", "signal SIGKILL"), or null while it runs. */
  get exited(): string | null {
    return this.#exitInfo;
  }

  static async start(
    site: Site,
    lab: LabId,
    image: GuestImage,
    s: QemuSettings,
    dir: string,
    name: string,
    incoming: boolean,
  ): Promise<QemuVm> {
    mkdirSync(dir, { recursive: true });
    const paths = vmPaths(dir, name);
    for (const p of [paths.qmp, paths.control]) rmSync(p, { force: true });
    const fd = openSync(paths.log, 'w');
    let child: ChildProcess;
    try {
      child = labExec(site, [QEMU_BINARY, ...qemuArgs(image, s, paths, incoming)], { lab, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const vm = new QemuVm(child, paths);
    try {
      vm.qmp = await QmpClient.connect(paths.qmp);
    } catch (e) {
      await vm.stop();
      throw e;
    }
    return vm;
  }

  /** A new connection to the guest's control line (QEMU keeps one client at a time). */
  control(timeoutMs = 15_000): Promise<GuestChannel> {
    return GuestChannel.connect(this.paths.control, timeoutMs);
  }

  async stop(): Promise<void> {
    this.qmp?.close();
    await stopProcess(this.child);
  }
}
