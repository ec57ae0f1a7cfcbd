// Whether the next packet may leave now, and how large it may be: the congestion window, the
// pacer's tokens, and path MTU probes interleaved with data. Notes what the sender waits for
// (send-waits.ts). Pure: time is the caller's, the pacer's release time goes to the timer table.

import type { Millis } from './types.ts';
import type { RateController } from './congestion/controller.ts';
import type { Recovery } from './recovery.ts';
import type { MtuDiscovery } from './mtud.ts';
import { Pacer } from './pacing.ts';
import { SendWait, SendWaits } from './send-waits.ts';
import { Timer, type TimerTable } from './timer.ts';

export class SendScheduler {
  readonly #pacer: Pacer;
  readonly #waits = new SendWaits();
  readonly #controller: RateController;
  readonly #recovery: Recovery;
  readonly #mtud: MtuDiscovery;
  readonly #timers: TimerTable;
  readonly #initialPacketSize: number;
  // Results of the last admit().
  #probe = 0;
  #blocked = false;

  constructor(
    controller: RateController,
    recovery: Recovery,
    mtud: MtuDiscovery,
    timers: TimerTable,
    initialPacketSize: number,
    now: Millis,
  ) {
    this.#controller = controller;
    this.#recovery = recovery;
    this.#mtud = mtud;
    this.#timers = timers;
    this.#initialPacketSize = initialPacketSize;
    this.#pacer = new Pacer(now, initialPacketSize);
  }

  /** The packet admit() allowed is a path MTU probe of this size (0: an ordinary packet). */
  get probe(): number {
    return this.#probe;
  }

  /** admit() found the window or the pacer in the way (not merely nothing to send). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /**
   * Size the next packet may have now, 0 when none may leave (the wait is noted; the pacer's
   * release time is set as the pacing timer). `size`: the path's packet size; `backlog`: bytes of
   * bulk data waiting (0 for control, handshake and retransmit-only packets); `mayProbe`: MTU
   * probes are allowed (the association is open).
   */
  admit(now: Millis, size: number, wantsData: boolean, backlog: number, mayProbe: boolean): number {
    const inFlight = this.#recovery.bytesInFlight;
    const room = this.#controller.cwndBytes() - inFlight;
    // Path MTU probes interleave with data (one outstanding at a time). A probe that does
    // not fit the window waits for room; data and credit updates never wait behind it.
    let probe = mayProbe ? this.#mtud.probeSize(now) : 0;
    if (probe > room && !(inFlight === 0 && !wantsData)) probe = 0;
    this.#probe = probe;
    this.#blocked = false;
    if (!wantsData && probe === 0) {
      this.#waits.note(SendWait.data, now);
      return 0;
    }
    const limit = probe > 0 ? probe : this.#packetLimit(size, room, inFlight);
    if (limit === 0) {
      this.#blocked = true;
      // Waiting for acks now, not for tokens: the pacer owes no catch-up for this spell.
      this.#pacer.forgetWait();
      this.#waits.note(SendWait.window, now);
      return 0;
    }
    this.#pacer.setRate(this.#controller.pacingRateBps(), size);
    // Bulk data leaves in quanta; everything else and the tail of application-limited data
    // wait only for their own tokens.
    const at = this.#pacer.releaseTime(now, limit, Math.max(backlog, limit));
    if (at > now) {
      this.#timers.set(Timer.pacing, at);
      this.#blocked = true;
      this.#waits.note(SendWait.pacing, now);
      return 0;
    }
    return limit;
  }

  /**
   * Size of the next data/control packet the window allows, 0 to wait for acks. Full-size
   * packets while the window holds one. With nothing in flight no ack will ever free room,
   * so a window smaller than one packet (a controller floor set for smaller packets than MTU
   * discovery reached) still sends a packet of what it holds, credit updates included.
   * (Packets cut to an arbitrary small remainder are not built: StreamsState.writeStreamFrames
   * assumes room for a chunk once MIN_STREAM_FRAME_ROOM is left.)
   */
  #packetLimit(size: number, room: number, inFlight: number): number {
    if (room >= size) return size;
    // Whole bytes: controllers compute windows in fractional bytes, and a fractional limit
    // overran the packet buffer (allocUnsafe truncates its size) by the fraction.
    if (inFlight === 0) return Math.min(size, Math.max(Math.floor(room), this.#initialPacketSize));
    return 0;
  }

  /** The sender is not waiting: it sent, or found nothing to send after all. */
  onSending(now: Millis): void {
    this.#waits.note(SendWait.none, now);
  }

  /** An ack-eliciting packet of `bytes` left (paced or not). */
  onSent(bytes: number): void {
    this.#pacer.onSent(bytes);
  }

  waitTotals(now: Millis): { windowMs: number; pacingMs: number; dataMs: number } {
    return this.#waits.totals(now);
  }
}
