// Prometheus metrics, filled from the gateway's status snapshot at scrape time, so the
// figures are counted once (in the gateway and the transport) and never recomputed twice.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayStatus } from './gateway.ts';

export function createMetrics(status: () => GatewayStatus): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'longhaul_process_' });
  let snapshot: GatewayStatus | null = null;
  // One snapshot per scrape, taken by the first gauge collected.
  const fresh = (): GatewayStatus => {
    if (!snapshot) {
      snapshot = status();
      setImmediate(() => {
        snapshot = null;
      });
    }
    return snapshot;
  };

  type AssocKey = keyof GatewayStatus['associations'][number];
  const assocGauge = (name: string, help: string, key: AssocKey, scale = 1): void => {
    new Gauge({
      name,
      help,
      labelNames: ['peer', 'role'],
      registers: [registry],
      collect() {
        this.reset();
        for (const a of fresh().associations) this.set({ peer: a.peer, role: a.role }, Number(a[key]) * scale);
      },
    });
  };
  assocGauge('longhaul_association_rtt_seconds', 'Smoothed RTT', 'rttMs', 1e-3);
  assocGauge('longhaul_association_min_rtt_seconds', 'Minimum RTT', 'minRttMs', 1e-3);
  assocGauge('longhaul_association_bandwidth_bps', 'Rate controller bottleneck bandwidth estimate (bits/s)', 'bandwidthBps');
  assocGauge('longhaul_association_pacing_rate_bps', 'Pacing rate (bits/s)', 'pacingRateBps');
  assocGauge('longhaul_association_send_rate_bps', 'Measured WAN send rate over the last second (bits/s)', 'sendRateBps');
  assocGauge('longhaul_association_receive_rate_bps', 'Measured WAN receive rate over the last second (bits/s)', 'receiveRateBps');
  assocGauge(
    'longhaul_association_raw_send_rate_bps',
    'TCP-side bytes into the association over the last second (bits/s)',
    'rawSendRateBps',
  );
  assocGauge(
    'longhaul_association_raw_receive_rate_bps',
    'TCP-side bytes out of the association over the last second (bits/s)',
    'rawReceiveRateBps',
  );
  assocGauge('longhaul_association_cwnd_bytes', 'Cap on data in flight', 'cwndBytes');
  assocGauge('longhaul_association_bytes_in_flight', 'Bytes in flight', 'bytesInFlight');
  assocGauge('longhaul_association_loss_ratio', 'Packets declared lost / packets sent', 'lossRate');
  assocGauge('longhaul_association_retransmit_ratio', 'Retransmitted / first-sent stream bytes', 'retransmitRate');
  assocGauge('longhaul_association_packets_sent_total', 'Datagrams sent', 'packetsSent');
  assocGauge('longhaul_association_packets_received_total', 'Datagrams received', 'packetsReceived');
  assocGauge('longhaul_association_packets_lost_total', 'Datagrams declared lost', 'packetsLost');
  assocGauge('longhaul_association_stream_bytes_sent_total', 'Stream bytes sent for the first time', 'streamBytesSent');
  assocGauge('longhaul_association_stream_bytes_retransmitted_total', 'Stream bytes sent again after a loss', 'streamBytesRetransmitted');
  assocGauge('longhaul_association_raw_bytes_out_total', 'TCP bytes sent into tunnels', 'bytesOutRaw');
  assocGauge('longhaul_association_raw_bytes_in_total', 'TCP bytes delivered out of tunnels', 'bytesInRaw');
  assocGauge('longhaul_association_wire_bytes_out_total', 'UDP payload bytes sent', 'bytesOutWire');
  assocGauge('longhaul_association_wire_bytes_in_total', 'UDP payload bytes received', 'bytesInWire');
  assocGauge('longhaul_association_streams', 'Open streams', 'activeStreams');

  type TunnelKey = 'active' | 'total' | 'failed' | 'bytesFromClients' | 'bytesToClients';
  const tunnelGauge = (name: string, help: string, key: TunnelKey): void => {
    new Gauge({
      name,
      help,
      labelNames: ['tunnel', 'peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const t of fresh().tunnels) this.set({ tunnel: t.name, peer: t.peer }, t[key]);
      },
    });
  };
  tunnelGauge('longhaul_tunnel_connections', 'Open client connections', 'active');
  tunnelGauge('longhaul_tunnel_connections_total', 'Client connections accepted', 'total');
  tunnelGauge('longhaul_tunnel_connections_failed_total', 'Client connections closed before a stream carried them', 'failed');
  tunnelGauge('longhaul_tunnel_client_bytes_in_total', 'Bytes read from clients (closed connections)', 'bytesFromClients');
  tunnelGauge('longhaul_tunnel_client_bytes_out_total', 'Bytes written to clients (closed connections)', 'bytesToClients');

  // Interception (docs/intercept.md): per rule as the tunnels, and the open connections per original destination.
  type InterceptKey = 'active' | 'total' | 'failed' | 'bytesFromClients' | 'bytesToClients';
  const interceptGauge = (name: string, help: string, key: InterceptKey): void => {
    new Gauge({
      name,
      help,
      labelNames: ['rule', 'peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of fresh().intercept?.rules ?? []) this.set({ rule: r.name, peer: r.peer }, r[key]);
      },
    });
  };
  interceptGauge('longhaul_intercept_connections', 'Open intercepted connections', 'active');
  interceptGauge('longhaul_intercept_connections_total', 'Intercepted connections accepted', 'total');
  interceptGauge('longhaul_intercept_connections_failed_total', 'Intercepted connections closed before a stream carried them', 'failed');
  interceptGauge(
    'longhaul_intercept_client_bytes_in_total',
    'Bytes read from intercepted clients (closed connections)',
    'bytesFromClients',
  );
  interceptGauge(
    'longhaul_intercept_client_bytes_out_total',
    'Bytes written to intercepted clients (closed connections)',
    'bytesToClients',
  );
  new Gauge({
    name: 'longhaul_intercept_destination_connections',
    help: 'Open intercepted connections by original destination (the listed ones, see /status)',
    labelNames: ['destination', 'peer'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, { peer: string; n: number }>();
      for (const c of fresh().intercept?.connections ?? []) {
        const k = `${c.originalDst}\0${c.peer}`;
        const e = counts.get(k) ?? { peer: c.peer, n: 0 };
        e.n++;
        counts.set(k, e);
      }
      for (const [k, e] of counts) this.set({ destination: k.split('\0')[0]!, peer: e.peer }, e.n);
    },
  });

  type Peer = GatewayStatus['peers'][number];
  const peerGauge = (name: string, help: string, get: keyof Peer | ((p: Peer) => number)): void => {
    new Gauge({
      name,
      help,
      labelNames: ['peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of fresh().peers) this.set({ peer: p.name }, typeof get === 'function' ? get(p) : Number(p[get]));
      },
    });
  };
  peerGauge('longhaul_peer_reachable', '1 while the peer answers, 0 during a WAN outage (silent while in use)', (p) =>
    p.reachable ? 1 : 0,
  );
  peerGauge('longhaul_peer_unreachable_seconds', 'How long the current outage has lasted (0 when reachable)', 'unreachableForSec');
  peerGauge('longhaul_peer_outages_total', 'WAN outages seen (the peer silent while in use)', 'outages');
  peerGauge(
    'longhaul_peer_restarts_detected_total',
    'Peer gateway restarts detected (it lost our association, or opened a new one)',
    'restartsDetected',
  );
  peerGauge(
    'longhaul_peer_reassociations_total',
    'Associations that replaced one lost abnormally (restart, timeout, peer close)',
    'reassociations',
  );
  peerGauge(
    'longhaul_peer_liveness_probes_total',
    'Liveness probes sent because the peer went silent while the association was in use',
    'livenessProbes',
  );
  peerGauge('longhaul_peer_rehandshakes_total', 'Handshakes started because a liveness probe went unanswered', 'rehandshakes');

  const simple = (name: string, help: string, get: (s: GatewayStatus) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(get(fresh()));
      },
    });
  };
  simple('longhaul_connections', 'Open TCP connections (both sides)', (s) => s.connections.active);
  simple('longhaul_inbound_connections', 'Open target connections', (s) => s.inbound.active);
  simple('longhaul_inbound_connections_total', 'Inbound streams', (s) => s.inbound.total);
  simple('longhaul_inbound_refused_total', 'Inbound streams refused by the allow-list', (s) => s.inbound.refused);
  simple('longhaul_inbound_failed_total', 'Inbound streams whose target failed', (s) => s.inbound.failed);
  simple('longhaul_intercept_unserved_total', 'Diverted connections no intercept rule serves (reset)', (s) => s.intercept?.unserved ?? 0);
  simple('longhaul_codec_encode_bytes_in_total', 'Bytes given to the compressor', (s) => s.codec.encode.bytesIn);
  simple('longhaul_codec_encode_bytes_out_total', 'Framed bytes out of the compressor', (s) => s.codec.encode.bytesOut);
  simple('longhaul_codec_encode_ratio', 'Wire/application bytes, sending side', (s) => s.codec.encode.ratio);
  simple('longhaul_codec_blocks_raw_total', 'Blocks sent uncompressed', (s) => s.codec.encode.blocksRaw);
  simple('longhaul_codec_auto_trials_total', "Trials of raw against the codec by compression 'auto'", (s) => s.codec.encode.arbiter.trials);
  simple('longhaul_codec_encode_cpu_seconds_total', 'Time spent compressing', (s) => s.codec.encode.cpuMs / 1000);
  simple('longhaul_codec_decode_cpu_seconds_total', 'Time spent decompressing', (s) => s.codec.decode.cpuMs / 1000);
  simple('longhaul_codec_decode_errors_total', 'Streams failed by a bad compression block', (s) => s.codec.decode.errors);
  simple('longhaul_udp_datagrams_in_total', 'UDP datagrams received', (s) => s.udp.datagramsIn);
  simple('longhaul_udp_datagrams_out_total', 'UDP datagrams sent', (s) => s.udp.datagramsOut);
  simple('longhaul_udp_send_errors_total', 'UDP send errors', (s) => s.udp.sendErrors);
  simple('longhaul_crypto_unroutable_total', 'Datagrams with no association to go to', (s) => s.crypto.unroutable);
  simple('longhaul_liveness_probe_answers_total', 'Liveness probes from peers answered', (s) => s.crypto.probeAnswers.sent);
  simple(
    'longhaul_liveness_probe_answers_limited_total',
    'Liveness probes from peers dropped by the per-peer rate bound',
    (s) => s.crypto.probeAnswers.limited,
  );
  simple(
    'longhaul_crypto_held_for_handshake_total',
    'Transport datagrams held until the secure session to their peer existed',
    (s) => s.crypto.heldForHandshake.held,
  );
  simple(
    'longhaul_crypto_held_for_handshake_dropped_total',
    'Held transport datagrams dropped (hold full, handshake failed)',
    (s) => s.crypto.heldForHandshake.dropped,
  );
  const cryptoKeys = [
    'packetsSealed',
    'packetsOpened',
    'authFailures',
    'replays',
    'tooOld',
    'malformed',
    'unknownIndex',
    'handshakesCompleted',
    'handshakesFailed',
    'cipherMismatches',
    'cookiesSent',
    'rateLimited',
    'sessions',
  ] as const;
  for (const k of cryptoKeys) {
    const snake = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    simple(`longhaul_crypto_${snake}${k === 'sessions' ? '' : '_total'}`, `Packet protection: ${k}`, (s) => s.crypto.endpoint?.[k] ?? 0);
  }
  return registry;
}
