// Association-level flow control (RFC 9000 §4.1): the credit the peer gave us for new stream
// bytes, and the credit we give it, returned as the application consumes what arrived.

import { writeMaxData } from '../frame.ts';
import { Ctrl, type SentPacket } from '../sent-packets.ts';
import { CREDIT_REFRESH_FRACTION } from './recv.ts';

// A MAX_DATA frame's largest size (type byte and an 8-byte varint).
const MAX_DATA_FRAME_SIZE = 9;

export class ConnectionFlowControl {
  /** Credit the peer gave us (absolute). */
  #peerMaxData = 0;
  /** New stream bytes we sent. */
  #sent = 0;
  /** Credit we advertised (absolute). */
  #localMaxData: number;
  /** Sum of the streams' highest offsets received. */
  #received = 0;
  /** Bytes read by the application or discarded. */
  #consumed = 0;
  #maxDataDue = false;
  readonly #window: number;

  constructor(window: number) {
    this.#window = window;
    this.#localMaxData = window;
  }

  get localMaxData(): number {
    return this.#localMaxData;
  }

  get maxDataDue(): boolean {
    return this.#maxDataDue;
  }

  /** New stream bytes the peer still lets us send. */
  sendCredit(): number {
    return this.#peerMaxData - this.#sent;
  }

  onSent(bytes: number): void {
    this.#sent += bytes;
  }

  /** The peer's initial credit, from its transport parameters. */
  setPeerMaxData(max: number): void {
    this.#peerMaxData = max;
  }

  /** The peer's MAX_DATA; true when it raised the credit. */
  raisePeerMaxData(max: number): boolean {
    if (max <= this.#peerMaxData) return false;
    this.#peerMaxData = max;
    return true;
  }

  /** `growth` more received bytes stay within the credit we gave. */
  allowsReceive(growth: number): boolean {
    return this.#received + growth <= this.#localMaxData;
  }

  onReceived(growth: number): void {
    this.#received += growth;
  }

  /** Received bytes read or discarded: credit is re-advertised once an eighth of it was used. */
  onConsumed(bytes: number): void {
    this.#consumed += bytes;
    if (this.#localMaxData - this.#consumed <= this.#window * (1 - CREDIT_REFRESH_FRACTION)) {
      this.#localMaxData = this.#consumed + this.#window;
      this.#maxDataDue = true;
    }
  }

  /** Writes the MAX_DATA frame when one is due and fits. */
  writeMaxData(buf: Uint8Array, pos: number, limit: number, sp: SentPacket): number {
    if (!this.#maxDataDue || pos + MAX_DATA_FRAME_SIZE > limit) return pos;
    this.#maxDataDue = false;
    sp.ctrl |= Ctrl.MAX_DATA;
    return writeMaxData(buf, pos, this.#localMaxData);
  }

  /** A packet with our MAX_DATA was lost: send the current value again. */
  onMaxDataLost(): void {
    this.#maxDataDue = true;
  }
}
