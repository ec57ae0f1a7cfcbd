// The far gateway's half of a tunnel: a stream the peer opened starts with an open header
// naming the target; check it against the allow-list, connect, then hand over to a bridge.
import { lookup } from 'node:dns/promises';
import { connect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import type { Association, StreamListener } from './association.ts';
import { formatEndpoint, isAllowed } from './address.ts';
import type { AllowRule, Endpoint } from './address.ts';
import { MAX_OPEN_HEADER, ResetCode, decodeOpenHeader } from './open-header.ts';

export type InboundOutcome =
  | { kind: 'connected'; socket: Socket; target: Endpoint; address: string; initial: Uint8Array | undefined; finished: boolean }
  | { kind: 'failed'; code: number; target: Endpoint | null; reason: string };

export interface InboundOptions {
  assoc: Association;
  streamId: number;
  allow: readonly AllowRule[];
  connectTimeoutMs: number;
  onOutcome(outcome: InboundOutcome): void;
}

/** Listens on a fresh inbound stream until its target is connected (or refused). */
export class InboundOpen implements StreamListener {
  #o: InboundOptions;
  #header: Uint8Array = new Uint8Array(0);
  #opening = false;
  #finished = false;
  #socket: Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  #over = false;

  constructor(o: InboundOptions) {
    this.#o = o;
    o.assoc.streams.set(o.streamId, this);
    this.onReadable();
  }

  onReadable(): void {
    if (this.#opening || this.#over) return;
    const { assoc, streamId } = this.#o;
    const more = assoc.read(streamId, MAX_OPEN_HEADER - this.#header.length);
    if (more === null) return;
    this.#header = this.#header.length === 0 ? more : Buffer.concat([this.#header, more]);
    const h = decodeOpenHeader(this.#header);
    if (h.status === 'incomplete') {
      if (this.#header.length >= MAX_OPEN_HEADER) this.#fail(ResetCode.protocolError, null, 'open header too long');
      return;
    }
    if (h.status === 'error') {
      this.#fail(ResetCode.protocolError, null, `bad open header: ${h.reason}`);
      return;
    }
    this.#opening = true;
    const rest = this.#header.length > h.length ? this.#header.subarray(h.length) : undefined;
    void this.#open(h.target, rest);
  }

  async #open(target: Endpoint, initial: Uint8Array | undefined): Promise<void> {
    let address = target.host;
    if (isIP(address) === 0) {
      try {
        address = (await lookup(target.host)).address;
      } catch (err) {
        this.#fail(
          ResetCode.targetUnreachable,
          target,
          `cannot resolve ${target.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
        return;
      }
      if (this.#over) return;
    }
    // The check applies to the address actually dialled, so a name cannot smuggle a target past it.
    if (!isAllowed(this.#o.allow, address, target.port)) {
      this.#fail(ResetCode.refused, target, `target ${formatEndpoint({ host: address, port: target.port })} is not in the allow-list`);
      return;
    }
    const socket = connect({ host: address, port: target.port, allowHalfOpen: true });
    this.#socket = socket;
    socket.pause();
    this.#timer = setTimeout(() => {
      this.#fail(ResetCode.targetTimeout, target, `target did not answer within ${this.#o.connectTimeoutMs} ms`);
    }, this.#o.connectTimeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      this.#fail(ResetCode.targetUnreachable, target, `target connection failed: ${err.code ?? err.message}`);
    });
    socket.once('connect', () => {
      if (this.#over) return;
      this.#over = true;
      if (this.#timer) clearTimeout(this.#timer);
      socket.removeAllListeners('error');
      this.#o.assoc.streams.delete(this.#o.streamId);
      this.#o.onOutcome({ kind: 'connected', socket, target, address, initial, finished: this.#finished });
    });
  }

  #fail(code: number, target: Endpoint | null, reason: string): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#socket) this.#socket.destroy();
    const { assoc, streamId } = this.#o;
    assoc.streams.delete(streamId);
    if (!assoc.isClosed && code !== 0) {
      assoc.resetStream(streamId, code);
    }
    this.#o.onOutcome({ kind: 'failed', code, target, reason });
  }

  onWritable(): void {}

  onFinished(): void {
    this.#finished = true;
  }

  onReset(): void {
    this.#fail(0, null, 'stream reset by the peer before the target connected');
  }

  onClosed(): void {
    this.#fail(0, null, 'stream closed before the target connected');
  }

  onAssociationClosed(reason: string): void {
    this.#fail(0, null, reason);
  }
}
