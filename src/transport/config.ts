// Default connection configuration. Windows are upper bounds on buffered bytes, not
// allocations: a stream only holds what the peer actually sent and the app has not read.

import type { ConnectionConfig } from './types.ts';

// 1 Gbit/s x 25 ms = 3.1 MB per BDP. Under loss the receiver holds data behind a hole for
// a few RTTs (detection, retransmission, sometimes its loss too), so a single stream needs
// several BDPs of window. Measured in the simulator at 1 Gbit/s, 25 ms, 3% loss: 16 MiB
// gives 82% goodput, 32 MiB 83% (the controller's ceiling there).
const STREAM_WINDOW = 32 * 1024 * 1024;
// Several streams at full speed at once, without one slow reader blocking the rest.
const CONNECTION_WINDOW = 64 * 1024 * 1024;
// The send buffer holds unacknowledged bytes, so it must cover in-flight data plus a
// retransmission round trip or two (16 MiB measured as not limiting on the path above).
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
