// What a `qemu` run records besides the bench's common figures (BenchResult.qemu).

import type { QemuSettings } from './settings.ts';

export interface QemuRunFigures {
  settings: QemuSettings;
  /** How QEMU's migration ended: completed, failed, or capped (cancelled at the cap). */
  status: string;
  /** QEMU's own figures from the source's last query-migrate (null when it gave none). */
  total_time_ms: number | null;
  setup_time_ms: number | null;
  /**
   * Bytes QEMU sent (ram.transferred: the main stream plus multifd channels). With multifd
   * compression QEMU 7.2 counts the pages before compression (wire_bytes tells what crossed).
   */
  transferred_bytes: number | null;
  multifd_bytes: number | null;
  ram_total_bytes: number | null;
  /** Pages sent as zero pages (duplicate) and in full (normal). */
  zero_pages: number | null;
  normal_pages: number | null;
  dirty_sync_count: number | null;
  /** Pages lh-guestload filled (and re-checked on the destination), by class. */
  filled_pages?: number;
  filled_classes?: Record<string, number>;
  guest_mem_total_kib?: number;
  /** Bad pages the guest found on the destination; absent when it was not asked. */
  bad_pages?: number;
  verify_ms?: number;
  /** What the verification checked, or why it failed. */
  verification: string;
  kernel_package?: string;
  qemu_version?: string;
}
