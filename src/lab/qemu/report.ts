// The `qemu` workload's part of the bench's Markdown: what was migrated, and one row per run
// with QEMU's own figures (its time, downtime, bytes sent, dirty-sync rounds), the wire bytes,
// each process's CPU and how the destination was checked.

import type { BenchResult } from '../bench/runner.ts';
import { formatSeconds } from '../bench/figures.ts';
import { describeQemu, type QemuSettings } from './settings.ts';

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0);

export function qemuWorkloadText(s: QemuSettings, results: BenchResult[]): string {
  const q = results.find((r) => r.qemu?.qemu_version !== undefined)?.qemu;
  const filled = results.find((r) => r.qemu?.filled_pages !== undefined)?.qemu;
  return (
    `live migration of a real QEMU guest (${q?.qemu_version ?? 'QEMU'}, TCG, kernel ${q?.kernel_package ?? 'linux-image-amd64'}, ` +
    `busybox initramfs): ${describeQemu(s)}` +
    (filled?.filled_pages !== undefined
      ? ` (${mib(filled.filled_pages * 4096)} MiB filled of the guest kernel's ${mib((filled.guest_mem_total_kib ?? 0) * 1024)} MiB)`
      : '') +
    `; QEMU's plain TCP migration stream, max-bandwidth raised above every link`
  );
}

/** CPU seconds of a run's processes, each named. */
export function qemuCpuCell(r: BenchResult): string {
  if (r.cpu_seconds === undefined) return 'unknown';
  const roles: Array<[string, string]> = [
    ['qemu_src', 'QEMU A'],
    ['qemu_dst', 'QEMU B'],
    ...(r.method === 'longhaul'
      ? ([
          ['gateway_a', 'gw A'],
          ['gateway_b', 'gw B'],
        ] as Array<[string, string]>)
      : r.method === 'kcptun'
        ? ([
            ['kcptun_client', 'kcp A'],
            ['kcptun_server', 'kcp B'],
          ] as Array<[string, string]>)
        : []),
    ['emulator', 'emu'],
  ];
  return roles
    .map(([role, name]) => {
      const v = r.cpu_seconds?.[role];
      return `${name} ${typeof v === 'number' ? v.toFixed(1) : '?'}`;
    })
    .join(', ');
}

function verifiedCell(r: BenchResult): string {
  if (r.skipped) return 'skipped';
  if (r.verified) return 'yes';
  if (r.capped) return 'capped';
  return 'no';
}

export function qemuRunsTable(results: BenchResult[]): string[] {
  const lines = [
    '| profile | method | seconds | QEMU total s | downtime ms | QEMU sent MiB | dirty-sync rounds | wire MiB (A->B) | wire / sent | CPU s per process | verified | check / error |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|',
  ];
  for (const r of results) {
    const q = r.qemu;
    const sent = q?.transferred_bytes ?? null;
    const check = r.skipped
      ? r.skipped
      : r.error
        ? `${r.error}${q?.verification && !r.error.includes(q.verification) ? ` (${q.verification})` : ''}`
        : (q?.verification ?? '');
    lines.push(
      `| ${r.profile} | ${r.method} | ${formatSeconds(r)} | ${q?.total_time_ms != null ? (q.total_time_ms / 1000).toFixed(2) : ''} | ` +
        `${r.downtime_ms !== undefined ? r.downtime_ms.toFixed(0) : ''} | ${sent !== null ? mib(sent) : ''} | ${r.rounds ?? ''} | ${mib(r.wire_bytes)} | ` +
        `${sent ? (r.wire_bytes / sent).toFixed(2) : ''} | ${qemuCpuCell(r)} | ${verifiedCell(r)} | ${check.replaceAll('|', '/')} |`,
    );
  }
  return lines;
}

export const QEMU_NOTES =
  'Seconds: from QMP `migrate` on the source until the destination QEMU reports the guest running; ' +
  'a run has a time only if it is verified: the destination runs the guest, its heartbeat continues with the same boot id ' +
  '(no reboot), and the guest re-checked the checksum of every page it wrote and found none bad. "QEMU total s", "downtime ms", ' +
  '"QEMU sent" (ram.transferred) and "dirty-sync rounds" are QEMU\'s own figures from the source\'s last `query-migrate` ' +
  '(with `--qemu-compression`, QEMU 7.2 counts the pages before its compression: a 128 MiB guest with zstd on 2 channels showed 92 MB sent and 39 MB on the wire over plain TCP). ' +
  'Capped runs were cancelled at the cap (`migrate_cancel`; the guest stays on the source) and show what was sent until then. ' +
  "CPU seconds are counted from `migrate` to the destination running (QEMU A and B each include their guest's vCPU under TCG).";
