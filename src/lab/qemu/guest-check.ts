// The guest's side of a run: boot it and wait until its workload has filled memory, then, after
// a migration, check on the destination that it is the same guest still running (its heartbeat
// continues, same boot id, no reboot) and that every page it wrote is intact.

import type { GuestChannel, GuestMessage } from './guest-channel.ts';
import type { QemuVm } from './vm.ts';

/** Boot plus filling memory under TCG (measured: ~4 s boot, ~0.3 s per 100 MiB filled). */
const READY_TIMEOUT_MS = 120_000;
/** Heartbeats come every 250 ms; a guest that sends none for this long is not running. */
const HEARTBEAT_TIMEOUT_MS = 10_000;
/** Re-checking every page under TCG: generous per MiB, bounded. */
const VERIFY_BASE_MS = 30_000;
const VERIFY_MS_PER_MIB = 100;

export interface GuestReady {
  /** Pages the workload filled and keeps checksums of. */
  pages: number;
  bootId: string;
  /** Page counts per class as the guest drew them. */
  classes: Record<string, number>;
  fillMs: number;
  /** The guest kernel's MemTotal in KiB. */
  totalKiB: number;
}

export async function waitReady(channel: GuestChannel): Promise<GuestReady> {
  const m = await channel.waitFor((x) => x.type === 'ready', READY_TIMEOUT_MS);
  const f = m.fields;
  return {
    pages: Number(f.pages),
    bootId: f.boot ?? '',
    fillMs: Number(f.fill_ms),
    totalKiB: Number(f.total_kib),
    classes: { zero: Number(f.zero), text: Number(f.text), structured: Number(f.structured), random: Number(f.random) },
  };
}

export function heartbeatSeq(m: GuestMessage | undefined): number {
  return m === undefined ? -1 : Number(m.fields.seq);
}

export interface Verification {
  verified: boolean;
  /** What was checked, or what failed. */
  detail: string;
  bad_pages?: number;
  checked_pages?: number;
  verify_ms?: number;
}

/**
 * On the destination: QEMU runs the guest, a heartbeat arrives with the source's boot id and a
 * later sequence number than the last one seen on the source, and the guest re-checks all
 * `ready.pages` pages with zero bad ones.
 */
export async function verifyOnDestination(dst: QemuVm, ready: GuestReady, lastSourceSeq: number): Promise<Verification> {
  const status = await dst.qmp.execute<{ status: string; running: boolean }>('query-status', undefined, 5_000);
  if (!status.running) return { verified: false, detail: `destination QEMU status ${status.status}` };
  let channel: GuestChannel | undefined;
  try {
    channel = await dst.control();
    const hb = await channel.waitFor((m) => m.type === 'hb', HEARTBEAT_TIMEOUT_MS).catch((e: unknown) => e as Error);
    if (hb instanceof Error) return { verified: false, detail: `no heartbeat from the guest on the destination: ${hb.message}` };
    if (hb.fields.boot !== ready.bootId)
      return { verified: false, detail: `the guest rebooted: boot id ${hb.fields.boot}, was ${ready.bootId}` };
    if (heartbeatSeq(hb) <= lastSourceSeq)
      return { verified: false, detail: `heartbeat sequence went back: ${heartbeatSeq(hb)} after ${lastSourceSeq}` };
    const from = channel.messages.length;
    channel.send('verify');
    const timeout = VERIFY_BASE_MS + VERIFY_MS_PER_MIB * ((ready.pages * 4096) / 2 ** 20);
    const v = await channel.waitFor((m) => m.type === 'verified', timeout, from).catch((e: unknown) => e as Error);
    if (v instanceof Error) return { verified: false, detail: `the guest did not answer verify: ${v.message}` };
    const checked = Number(v.fields.pages),
      bad = Number(v.fields.bad),
      ms = Number(v.fields.ms);
    const base = { checked_pages: checked, bad_pages: bad, verify_ms: ms };
    if (checked !== ready.pages) return { ...base, verified: false, detail: `the guest checked ${checked} pages, filled ${ready.pages}` };
    if (bad !== 0)
      return {
        ...base,
        verified: false,
        detail: `${bad} of ${checked} pages corrupt on the destination (first: page ${v.fields.first_bad})`,
      };
    return {
      ...base,
      verified: true,
      detail: `running, heartbeat ${lastSourceSeq} -> ${heartbeatSeq(hb)} (boot ${ready.bootId}), ${checked} pages checked, 0 bad`,
    };
  } catch (e) {
    return { verified: false, detail: `verification failed: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    channel?.close();
  }
}
