// A new UDP link's counters, for both backends (udp-link.ts, udp-batch.ts).
import type { UdpLinkStats } from './udp-link.ts';

/** Every counter at zero: a link's stats when it opens. */
export function newUdpLinkStats(): UdpLinkStats {
  return {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    sendErrors: 0,
    sendCalls: 0,
    recvCalls: 0,
    recvBufferBytes: 0,
    sendBufferBytes: 0,
  };
}
