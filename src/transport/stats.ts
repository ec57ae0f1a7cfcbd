// Counters beyond what the parts keep themselves (recovery its losses, MTU discovery its probes,
// the streams their bytes), counted where things happen and read through the connection's
// stats() and extendedStats().

/** Datagrams in and out (quinn's UdpStats). */
export class DatagramCounters {
  packetsSent = 0;
  packetsReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** Undecodable or rejected input. */
  dropped = 0;
  duplicates = 0;
}

/** Counters beyond ConnectionStats (diagnostics, tests). */
export interface ExtendedStats {
  duplicatePackets: number;
  mtuProbesSent: number;
  mtuProbesLost: number;
  mtuBlackHoles: number;
  ptoCount: number;
  bufferedSendBytes: number;
  bufferedRecvBytes: number;
  controller: string;
  spuriousLosses: number;
  packetThreshold: number;
}
