// Public surface of the sans-IO transport core. The gateway, the simulator and the
// benchmarks are written against these types; change them only compatibly.

/** Milliseconds on a monotonic clock supplied by the caller (performance.now() or virtual time). */
export type Millis = number;

/** A datagram the core wants sent. The caller owns `data` after the call returns. */
export interface Transmit {
  data: Uint8Array;
}

export type ConnectionEvent =
  | { type: 'connected' }
  /** The peer opened a stream; it is readable/writable from now on. */
  | { type: 'stream-opened'; streamId: number }
  /** New in-order bytes (or the FIN) are ready to `read()`. */
  | { type: 'stream-readable'; streamId: number }
  /** Send buffer or flow-control credit freed up after `write()` accepted fewer bytes than offered. */
  | { type: 'stream-writable'; streamId: number }
  /** The peer's FIN arrived and every byte before it has been read. */
  | { type: 'stream-finished'; streamId: number }
  /** The peer reset the stream, or it was reset locally because of a protocol error. */
  | { type: 'stream-reset'; streamId: number; code: number }
  /** All data we wrote and finished on this stream was acknowledged; its state is freed. */
  | { type: 'stream-closed'; streamId: number }
  | { type: 'closed'; code: number; reason: string; byPeer: boolean };

/** Statistics counted where things happen (one object, read by status/metrics/benchmarks). */
export interface ConnectionStats {
  rttMs: number; // smoothed RTT
  minRttMs: number;
  bandwidthBps: number; // controller's bottleneck estimate, bits/s
  pacingRateBps: number; // bits/s
  cwndBytes: number; // cap on data in flight
  bytesInFlight: number;
  packetSize: number; // current max datagram size the core produces
  packetsSent: number;
  packetsReceived: number;
  packetsLost: number; // declared lost
  bytesSent: number; // datagram bytes
  bytesReceived: number;
  streamBytesSent: number; // first transmissions of stream payload
  streamBytesWritten: number; // accepted by write(), minus what stream resets dropped unsent
  streamBytesRetransmitted: number;
  streamBytesReceived: number; // unique, in-order-delivered payload
  datagramsDropped: number; // undecodable or rejected input
  activeStreams: number;
  /** Time the sender waited, in all, for the congestion window, the pacer, and data to send. */
  sendWaits: { windowMs: number; pacingMs: number; dataMs: number };
}

export interface ConnectionConfig {
  /** Max UDP payload the core may produce (after whatever the packet-protection layer adds). */
  maxPacketSize: number; // e.g. 1452 - protection overhead
  initialPacketSize: number; // 1200 - protection overhead
  streamReceiveWindow: number; // bytes per stream
  connectionReceiveWindow: number; // bytes per association
  streamSendBuffer: number; // bytes `write()` accepts per stream before refusing
  maxStreams: number; // concurrent streams the peer may open
  idleTimeoutMs: number;
  keepaliveMs: number;
  /** Rate controller factory; default is the model-based controller. */
  rateController?: () => import('./congestion/controller.ts').RateController;
  /** Deterministic randomness (the simulator seeds it). Returns [0,1). */
  random?: () => number;
  /**
   * Ack-eliciting packets received per ACK sent (default 2, RFC 9000 §13.2.2). Higher values
   * cut the ACK packet rate (each costs a syscall and packet protection in the gateway) at the
   * price of coarser delivery-rate samples; gaps are still acknowledged at once.
   */
  ackFrequency?: number;
}

/**
 * One association between two gateways (many streams). Pure state machine: feed it
 * datagrams, timeouts and application calls; drain transmits and events.
 * Implemented by `Connection` in connection.ts.
 *
 * Driver loop (adapter or simulator):
 *   on datagram:   conn.handleDatagram(bytes, now)
 *   on timer:      conn.handleTimeout(now)
 *   after either, and after app calls: while ((t = conn.pollTransmit(now))) send(t.data);
 *                  while ((e = conn.pollEvent())) dispatch(e);
 *                  arm one timer at conn.nextTimeout()   (null = none)
 * pollTransmit returns null when nothing may leave *now* (pacing or window); the pacer's
 * next release time is included in nextTimeout().
 * Application calls may queue events too (read() queues 'stream-finished' once the FIN is
 * read): while any event is unpolled, nextTimeout() returns a time no later than the latest
 * `now` the core was given, so a driver whose handlers read (or write) and then arm the
 * timer wakes at once and polls them. Draining events before arming the timer avoids the
 * extra wake-up.
 */
export interface TransportConnection {
  /**
   * A datagram from the peer, received at `now`. The core copies what it keeps (stream data into
   * the stream's receive ring): `data` is the caller's again once this returns.
   */
  handleDatagram(data: Uint8Array, now: Millis): void;
  handleTimeout(now: Millis): void;
  pollTransmit(now: Millis): Transmit | null;
  /**
   * pollTransmit written into out[at, ...) instead of a new buffer (a driver builds straight into
   * its socket's send queue): the datagram's length, 0 when nothing may leave now. The room from
   * `at` must be at least maxDatagramSize (a RangeError otherwise: a caller bug).
   */
  pollTransmitInto(now: Millis, out: Uint8Array, at: number): number;
  /** The largest datagram the connection sends (its configured packet sizes). */
  readonly maxDatagramSize: number;
  pollEvent(): ConnectionEvent | null;
  nextTimeout(): Millis | null;

  /** Client side starts the handshake by being constructed; both sides may open streams once connected. */
  readonly isConnected: boolean;
  readonly isClosed: boolean;

  /** Opens a locally initiated stream; returns its id, or -1 when the peer's stream limit is reached. */
  openStream(): number;
  /** Queues bytes; returns how many were accepted (0 when the send buffer is full: wait for 'stream-writable'). The core copies what it accepts. */
  write(streamId: number, data: Uint8Array): number;
  /** No more writes on this stream; FIN follows the last byte. */
  finish(streamId: number): void;
  /** In-order bytes, up to `max`, copied out; null when nothing is ready. Reading returns flow-control credit. */
  read(streamId: number, max?: number): Uint8Array | null;
  /**
   * In-order bytes as a view of the stream's receive ring, without a copy (up to `max`, and only
   * up to the ring's wrap: call again for the rest). The view stays valid until release() covers
   * it; the stream's credit returns with release(). Use either read() or readView() on a stream.
   */
  readView(streamId: number, max?: number): Uint8Array | null;
  /** The caller is done with the next `bytes` it read by readView(); true when that made credit to announce. */
  release(streamId: number, bytes: number): boolean;
  /** Frees the send and receive rings of streams that hold nothing (now and then, e.g. once a second). */
  trimBuffers(): void;
  /** Abort a stream in both directions, telling the peer `code`. */
  resetStream(streamId: number, code: number): void;
  /** Graceful close with a reason (sends CLOSE, then drains). */
  close(code: number, reason: string, now: Millis): void;
  stats(): ConnectionStats;
  /** Stream bytes held: unacknowledged sends, unreleased receives, and the memory their rings take. */
  bufferedBytes(): { send: number; sendAllocated: number; recv: number; recvAllocated: number };
}
