// Default connection configuration. Windows are upper bounds on buffered bytes, not
// allocations: a stream only holds what the peer actually sent and the app has not read.

import type { ConnectionConfig } from './types.ts';

// 1 Gbit/s x 25 ms = 3.1 MB per BDP. Under loss the receiver holds data behind a hole for
// about an RTT more, and credit is returned at half a window, so a single stream needs
// roughly 4-5 BDPs of window to never be the bottleneck on that path.
const STREAM_WINDOW = 16 * 1024 * 1024;
// Several streams at full speed at once, without one slow reader blocking the rest.
const CONNECTION_WINDOW = 64 * 1024 * 1024;
// The send buffer holds unacknowledged bytes, so it must cover in-flight data plus a
// retransmission round trip: the same several BDPs as the receive window.
const STREAM_SEND_BUFFER = 16 * 1024 * 1024;

export function defaultConnectionConfig(overrides: Partial<ConnectionConfig> = {}): ConnectionConfig {
  return {
    // 1500-byte Ethernet MTU - 20 IPv4 - 8 UDP - 20 headroom for tunnels; the gateway
    // subtracts its packet-protection overhead from both sizes.
    maxPacketSize: 1452,
    // Every IPv4/IPv6 path the gateway runs on carries 1280-byte packets; 1200 leaves room.
    initialPacketSize: 1200,
    streamReceiveWindow: STREAM_WINDOW,
    connectionReceiveWindow: CONNECTION_WINDOW,
    streamSendBuffer: STREAM_SEND_BUFFER,
    maxStreams: 4096,
    idleTimeoutMs: 30_000,
    keepaliveMs: 10_000,
    ...overrides,
  };
}
