// One gateway: the WAN socket, one association per peer, the tunnel listeners, the
// far-side target connections, and the figures status/metrics report.
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BlockDecoder, BlockEncoder, CodecStats } from '../codec/index.ts';
import type { CodecStatsSnapshot } from '../codec/index.ts';
import {
  Connection,
  defaultConnectionConfig,
  fixedRateController,
  modelBasedController,
  type ConnectionConfig,
  type RateController,
} from '../transport/index.ts';
import { defaultPacketAead } from '../crypto/aead-backend.ts';
import {
  COLLECT_AT_BUDGET_SHARE,
  COLLECT_INTERVAL_MS,
  cHeapStats,
  collectDue,
  collectGarbage,
  trimMemoryIfWorthIt,
  trimThreshold,
} from './memory-trim.ts';
import { Association } from './association.ts';
import { HOST_LATENCY_ALLOWANCE_MS, withHostLatencyAllowance } from './host-allowance.ts';
import { formatEndpoint } from './address.ts';
import type { Endpoint } from './address.ts';
import { StreamBridge } from './bridge.ts';
import type { BridgeSummary } from './bridge.ts';
import { DEFAULT_PEER_TIMEOUT_MS, peerRestartDetectMs } from './config.ts';
import type { GatewayConfig } from './config.ts';
import { InboundOpen } from './far-side.ts';
import type { InboundOutcome } from './far-side.ts';
import { LivenessWatch } from './liveness.ts';
import { OutageWatch } from './outage.ts';
import type { Logger } from './logger.ts';
import { ResetCode, encodeOpenHeader } from './open-header.ts';
import { TunnelListener } from './tunnel-listener.ts';
import type { TunnelCounters } from './tunnel-listener.ts';
import { InterceptListener } from './intercept/listener.ts';
import { InterceptFigures } from './intercept/figures.ts';
import type { InterceptStatus } from './intercept/figures.ts';
import { DEFAULT_INTERCEPT_LISTENER, interceptRuleName, matchIntercept } from './intercept/config.ts';
import { UdpLink, pathCoalescingUs } from './udp-link.ts';
import { bindError, resolveSetting } from './startup-address.ts';
import { LogLimit } from './log-limit.ts';
import { SwitchableRateController } from './rate-switch.ts';
import { describeChanges, restartNeeded, tunnelKey } from './reload.ts';
import { createWanSecurity, loadPeerKeys, protectionOverhead } from './wan-security.ts';
import type { ReloadPeer } from './wan-security.ts';
import { loadPrivateKeyFile } from '../crypto/keys.ts';
import { resolveKeyPath } from './config.ts';
import type { WanSecurity, WanSecurityStats } from './wan-security.ts';

/** Per peer: how often its associations were lost and re-established, and WAN outages. */
export interface PeerLivenessCounters {
  /** Spells of silence while in use long enough to count as a WAN outage (see OutageWatch). */
  outages: number;
  /** The peer restarted: it answered that it lost our association, or (answering side) opened a new one. */
  restartsDetected: number;
  /** Associations that replaced one lost abnormally (peer restart, peer silent past peerTimeoutMs, peer closed it). */
  reassociations: number;
  /** Liveness probes sent after the peer went silent while the association was in use. */
  livenessProbes: number;
  /** Fresh packet-protection handshakes started because a probe went unanswered. */
  rehandshakes: number;
}

interface PeerState {
  name: string;
  address: Endpoint | null;
  /** The current association (client side: the one we opened; server side: latest accepted). */
  current: Association | null;
  /** The current association was lost (not closed by us): the next one to connect is a re-association. */
  lost: boolean;
  counters: PeerLivenessCounters;
}

function newPeerState(name: string, address: Endpoint | null): PeerState {
  return {
    name,
    address,
    current: null,
    lost: false,
    counters: { outages: 0, restartsDetected: 0, reassociations: 0, livenessProbes: 0, rehandshakes: 0 },
  };
}

export interface InboundCounters {
  active: number;
  total: number;
  refused: number;
  failed: number;
}

/** Where a client connection goes: a tunnel's fixed target, or an intercepted connection's original destination. */
interface ClientRoute {
  peer: string;
  target: Endpoint;
  counters: TunnelCounters;
  /** Named in every log line of the connection ({ tunnel } or { intercept, originalDst }). */
  fields: Record<string, unknown>;
  /** Called once the stream exists; returns what to call when the connection ends. */
  onOpened?: (client: string, streamId: number) => () => void;
}

export interface GatewayOptions {
  logger: Logger;
  /** Overrides of the transport config (tests shorten timeouts). */
  transport?: Partial<ConnectionConfig>;
}

/** What reload() did: the live changes applied, or why nothing was (the old config still runs). */
export type ReloadOutcome = { ok: true; changes: string[] } | { ok: false; errors: string[] };

/** One configured peer's readiness (GET /readyz). */
export interface PeerReadiness {
  peer: string;
  ready: boolean;
  /** Why not, in words, when not ready. */
  reason?: string;
}

// Silence while in use for this long (or restartDetectMs if shorter) is reported as an outage:
// far beyond any RTT or scheduler stall, short enough that an operator sees it at once.
const OUTAGE_AFTER_MS = 2000;

// Less than this over the WAN in a rate sample (~1 s) counts as quiet, for trimming the C heap.
const QUIET_BYTES_PER_SAMPLE = 1024 * 1024;

// Past maxConnections every new client is refused: a line every 10 s says so and counts them,
// rather than one line per client of a crowd.
const REFUSED_LOG_INTERVAL_MS = 10_000;

// Plaintext mode (debug only) bounds the associations a stranger can make us create.
const MAX_SERVER_ASSOCIATIONS = 64;

/** A performance.now() instant as an ISO wall-clock time. */
function wallClock(perfMs: number): string {
  return new Date(Date.now() - (performance.now() - perfMs)).toISOString();
}

export class Gateway {
  /** The running configuration; reload() replaces it whole. */
  #config: GatewayConfig;
  readonly log: Logger;
  readonly codecStats = new CodecStats();
  readonly inbound: InboundCounters = { active: 0, total: 0, refused: 0, failed: 0 };
  readonly tunnels: TunnelListener[] = [];
  /** Transparent interception (docs/intercept.md), when the config has intercept rules. */
  #intercept: { listener: InterceptListener; figures: InterceptFigures } | null = null;
  readonly startedAt = Date.now();
  #link: UdpLink;
  #security: WanSecurity<Association>;
  #transportConfig: ConnectionConfig;
  #transportOverrides: Partial<ConnectionConfig> | undefined;
  #peers = new Map<string, PeerState>();
  #associations = new Set<Association>();
  #bridges = new Set<StreamBridge>();
  #pendingConnections = new Set<Socket>();
  #sampler: NodeJS.Timeout;
  #livenessTimer: NodeJS.Timeout;
  #restartDetectMs: number;
  #stopping = false;
  /** When the gateway last collected garbage itself (collectDue). */
  #collectedAt = -Infinity;
  /** When the sampler last ran (a collection at that time is trimmed after at this run). */
  #lastSampleAt = -1;
  /** The memory upkeep the sampler did, and the main-thread time it took (status). */
  #upkeep = { collections: 0, collectMs: 0, trims: 0, trimMs: 0 };
  /** Connections refused at the limit (or while stopping): one line per interval, with the count between. */
  #refusedLog = new LogLimit(REFUSED_LOG_INTERVAL_MS);

  private constructor(config: GatewayConfig, link: UdpLink, security: WanSecurity<Association>, opts: GatewayOptions) {
    this.#config = config;
    this.log = opts.logger;
    this.#link = link;
    this.#security = security;
    this.#transportOverrides = opts.transport;
    this.#transportConfig = transportConfigFor(config, opts.transport);
    this.#sampler = setInterval(() => this.#sampleRates(), 1000);
    this.#sampler.unref();
    this.#restartDetectMs = peerRestartDetectMs(config.limits);
    // A few checks per detection period: detection is late by at most a quarter of it.
    const tick = Math.min(1000, Math.max(50, Math.floor(this.#restartDetectMs / 4)));
    this.#livenessTimer = setInterval(() => this.#livenessTick(), tick);
    this.#livenessTimer.unref();
  }

  /** Binds everything; rejects (with a readable message) when a socket or key cannot be set up. */
  static async start(config: GatewayConfig, opts: GatewayOptions): Promise<Gateway> {
    const security = createWanSecurity<Association>(config);
    if (!security.ok) throw new Error(security.error);
    const wan = await resolveSetting(config, 'wan', config.wan, 4);
    const link = await UdpLink.bind(wan, { reusePort: config.wanReusePort }).catch((err: unknown) => {
      throw bindError(config, 'wan', config.wan, err);
    });
    const gw = new Gateway(config, link, security.value, opts);
    try {
      await gw.#init();
    } catch (err) {
      // It never started: no "gateway stopped" after the caller's "failed to start".
      await gw.stop(0, { quiet: true });
      throw err;
    }
    return gw;
  }

  async #init(): Promise<void> {
    for (const [i, p] of this.config.peers.entries()) {
      const address = p.address ? await resolveSetting(this.config, `peers[${i}].address`, p.address) : null;
      this.#peers.set(p.name, newPeerState(p.name, address));
    }
    this.#security.attach({
      send: (data, to) => this.#link.send(data, to.port, to.host),
      sendBatch: (batch, to) => this.#link.sendBatch(batch, to),
      deliver: (assoc, data, arrival) => {
        assoc.traffic.wireIn += data.length;
        assoc.input(data, arrival);
      },
      accept: (peerName, from) => this.#acceptAssociation(peerName, from),
      peerForAddress: (from) => this.#peerForAddress(from),
      onProbeAnswer: (assoc, known) => this.#onProbeAnswer(assoc, known),
      log: this.log,
    });
    this.#link.onDatagrams(this.#security, { transient: this.#security.takesTransientDatagrams });
    for (const [i, t] of this.config.tunnels.entries()) {
      const listen = await resolveSetting(this.config, `tunnels[${i}].listen`, t.listen);
      const tunnel = new TunnelListener(
        { name: t.name ?? `tunnel${i}`, listen, peer: t.peer, target: t.target },
        (s, tl) => this.#onClientConnection(s, tl),
        tunnelKey(t),
        Math.min(65535, Math.max(511, this.config.limits.maxConnections)),
      );
      this.tunnels.push(tunnel);
      await tunnel.listen().catch((err: unknown) => {
        throw bindError(this.config, `tunnels[${i}].listen`, t.listen, err);
      });
    }
    if (this.config.intercept.length > 0) await this.#startIntercept();
    // The datapath backends (native addons or their fallbacks) decide throughput: say which run.
    const datapath = {
      udp: this.#link.backend,
      aead: this.#security.mode.startsWith('plaintext') ? 'none' : defaultPacketAead(this.config.cipher).name,
      cipher: this.config.cipher,
    };
    this.log.info(
      {
        wan: formatEndpoint(this.#link.address),
        tunnels: this.tunnels.map((t) => t.describe()),
        ...(this.#intercept
          ? { intercept: `${formatEndpoint(this.#intercept.listener.address)} (${this.#intercept.listener.method})` }
          : {}),
        security: this.#security.mode,
        datapath,
      },
      'gateway started',
    );
  }

  get config(): GatewayConfig {
    return this.#config;
  }

  get wanAddress(): Endpoint {
    return this.#link.address;
  }

  get activeConnections(): number {
    return this.#bridges.size + this.#pendingConnections.size;
  }

  // ---- associations ----

  #newAssociation(role: 'client' | 'server', peerName: string, remote: Endpoint): Association {
    const rate = new SwitchableRateController(this.#newRateController());
    const conn = new Connection({ role, config: { ...this.#transportConfig, rateController: () => rate }, now: performance.now() });
    const assoc = new Association(
      conn,
      {
        peerName,
        role,
        remote,
        rate,
        watch: role === 'client' ? new LivenessWatch(this.#restartDetectMs) : null,
        outage: new OutageWatch(Math.min(OUTAGE_AFTER_MS, this.#restartDetectMs)),
      },
      {
        transmit: this.#security.transmitter(remote),
        onConnected: (a) => this.#onConnected(a),
        onStreamOpened: (a, id) => this.#onStreamOpened(a, id),
        onClosed: (a, code, reason, byPeer) => this.#onAssociationClosed(a, code, reason, byPeer),
      },
      this.#sendBacklogLimit(),
    );
    this.#associations.add(assoc);
    return assoc;
  }

  #newRateController(): RateController {
    const make = this.#transportConfig.rateController;
    if (!make) throw new Error('transportConfigFor always sets rateController');
    return make();
  }

  #sendBacklogLimit(): number {
    return Math.min(32 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(this.config.limits.memoryBudget / 8)));
  }

  /** The association to `peerName`, opening it if needed; null when it cannot connect in time. */
  async #associationFor(peerName: string): Promise<Association | null> {
    const peer = this.#peers.get(peerName);
    if (!peer?.address) return null;
    const deadline = Date.now() + this.config.limits.connectWaitMs;
    let assoc = peer.current;
    // Heard nothing for a while (idle between keepalives, or silent in use): if the peer restarted
    // meanwhile, a connection opened on this association would be reset, so ask first.
    if (assoc?.watch && !assoc.isClosed && assoc.isConnected) {
      const now = performance.now();
      if (assoc.watch.quietFor(now, assoc.lastInputAt) && assoc.watch.probeNow(now, assoc.lastInputAt, assoc.stats().rttMs)) {
        peer.counters.livenessProbes++;
        this.log.debug({ peer: peerName }, 'association quiet before a new connection: probing the peer');
        this.#security.probe(assoc);
      }
    }
    // A probe is out, or the peer is unreachable: wait for the verdict (the peer answers, or is
    // found restarted and replaced) or the outage's end, at most connectWaitMs.
    while (assoc && !assoc.isClosed && (assoc.watch?.suspect || assoc.outage.unreachable)) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await this.#waitVerdict(assoc, left);
      assoc = peer.current;
    }
    if (this.#stopping) return null;
    if (!assoc || assoc.isClosed) {
      assoc = this.#newAssociation('client', peerName, peer.address);
      peer.current = assoc;
      this.log.info({ peer: peerName, remote: formatEndpoint(peer.address) }, 'opening association');
      this.#security.openClient(assoc, peerName, peer.address);
      assoc.schedule();
    }
    const ok = await assoc.waitConnected(Math.max(1, deadline - Date.now()));
    return ok ? assoc : null;
  }

  #waitVerdict(assoc: Association, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        const i = assoc.verdictWaiters.indexOf(done);
        if (i >= 0) assoc.verdictWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      assoc.verdictWaiters.push(done);
    });
  }

  #releaseVerdictWaiters(assoc: Association): void {
    for (const w of [...assoc.verdictWaiters]) w();
  }

  // ---- liveness: restart detection of peers we open associations to ----

  #livenessTick(): void {
    const now = performance.now();
    for (const e of this.#associations) {
      if (e.isClosed || !e.isConnected) continue;
      const s = e.stats();
      const inUse = s.bytesInFlight > 0 || s.activeStreams > 0;
      const peer = this.#peers.get(e.peerName);
      this.#checkOutage(e, now, inUse, peer);
      const w = e.watch;
      if (!w) continue;
      const wasSuspect = w.suspect;
      const action = w.check({ now, lastInputAt: e.lastInputAt, inUse, rttMs: s.rttMs });
      if (action === 'probe') {
        if (peer) peer.counters.livenessProbes++;
        this.log.debug(
          { peer: e.peerName, silentMs: Math.round(w.silentMs(now)) },
          'peer silent while the association is in use: probing it',
        );
        this.#security.probe(e);
      } else if (action === 'rehandshake') {
        if (peer) peer.counters.rehandshakes++;
        // During an outage this repeats (backed off); the outage's own lines say what happens.
        (e.outage.unreachable ? this.log.debug : this.log.warn).call(
          this.log,
          { peer: e.peerName, silentMs: Math.round(w.silentMs(now)) },
          'peer silent and not answering probes: new handshake to find out whether it restarted',
        );
        this.#security.rehandshake(e);
      }
      if (wasSuspect && !w.suspect) {
        this.log.debug({ peer: e.peerName }, 'peer heard from again: association kept');
        this.#releaseVerdictWaiters(e);
      }
    }
  }

  /** One log line when the peer becomes unreachable while in use, one when it is heard again. */
  #checkOutage(e: Association, now: number, inUse: boolean, peer: PeerState | undefined): void {
    const change = e.outage.check({ now, lastInputAt: e.lastInputAt, inUse });
    if (change === null) return;
    const peerName = e.peerName;
    if (change.kind === 'began') {
      if (peer) peer.counters.outages++;
      const budgetMs = this.#transportConfig.idleTimeoutMs;
      this.log.warn(
        {
          peer: peerName,
          remote: formatEndpoint(e.remote),
          since: wallClock(change.since),
          silentMs: Math.round(now - change.since),
          connections: e.streams.size,
          keptForMs: budgetMs,
        },
        `peer unreachable (WAN outage, or the peer is down): nothing heard for ${((now - change.since) / 1000).toFixed(1)} s; ` +
          `its connections are kept for up to ${Math.round(budgetMs / 1000)} s (limits.peerTimeoutMs)`,
      );
    } else {
      this.log.warn(
        { peer: peerName, since: wallClock(change.since), outageMs: Math.round(change.lastedMs), connections: e.streams.size },
        `peer reachable again after a ${(change.lastedMs / 1000).toFixed(1)} s outage; connections kept`,
      );
      this.#releaseVerdictWaiters(e);
    }
  }

  #onProbeAnswer(assoc: Association, known: boolean): void {
    if (!known) {
      this.#onPeerLostAssociation(assoc);
      return;
    }
    const w = assoc.watch;
    if (!w) return;
    const wasSuspect = w.suspect;
    w.heard(performance.now());
    if (wasSuspect) {
      this.log.debug({ peer: assoc.peerName }, 'peer answered the liveness probe: association intact');
      this.#releaseVerdictWaiters(assoc);
    }
  }

  /** The peer said it has no such association: it restarted, and the streams' state died with it. */
  #onPeerLostAssociation(assoc: Association): void {
    if (assoc.isClosed) return;
    const peerName = assoc.peerName;
    const peer = this.#peers.get(peerName);
    if (peer) peer.counters.restartsDetected++;
    const silentMs = assoc.watch ? Math.round(assoc.watch.silentMs(performance.now())) : undefined;
    this.log.warn(
      { peer: peerName, remote: formatEndpoint(assoc.remote), silentMs, connections: assoc.streams.size },
      'peer gateway restarted (it no longer knows this association): resetting its connections and re-associating',
    );
    assoc.abandon('peer gateway restarted; connection state lost');
    // Re-associate at once, so the next connection does not wait for the handshake.
    if (assoc.role === 'client' && !this.#stopping) void this.#associationFor(peerName);
  }

  /** Security layer: a new peer association arrives (after the handshake when keys are on). */
  #acceptAssociation(peerName: string, from: Endpoint): Association | null {
    if (this.#stopping) return null;
    let servers = 0;
    for (const e of this.#associations) if (e.role === 'server' && !e.isClosed) servers++;
    if (servers >= MAX_SERVER_ASSOCIATIONS) return null;
    const assoc = this.#newAssociation('server', peerName, from);
    this.log.info({ peer: peerName, remote: formatEndpoint(from) }, 'association accepted');
    return assoc;
  }

  #peerForAddress(from: Endpoint): string {
    for (const p of this.#peers.values()) if (p.address && p.address.host === from.host && p.address.port === from.port) return p.name;
    // A responder usually knows its peer only by key; with one peer configured, that is who it is.
    if (this.#peers.size === 1) return [...this.#peers.keys()][0]!;
    return formatEndpoint(from);
  }

  #onConnected(assoc: Association): void {
    const peerName = assoc.peerName;
    let peer = this.#peers.get(peerName);
    if (!peer) {
      peer = newPeerState(peerName, null);
      this.#peers.set(peerName, peer);
    }
    // One association per peer: on the answering side a newer one (the peer restarted) replaces the old, whose streams reset.
    const old = peer.current;
    const replaces = assoc.role === 'server' && old !== null && old !== assoc && !old.isClosed && old.role === 'server';
    const reassociation = peer.lost || replaces;
    if (reassociation) peer.counters.reassociations++;
    peer.lost = false;
    this.log.info({ peer: peerName, remote: formatEndpoint(assoc.remote), role: assoc.role, reassociation }, 'association connected');
    if (assoc.role !== 'server') return;
    peer.current = assoc;
    if (replaces) {
      peer.counters.restartsDetected++;
      this.log.warn({ peer: peerName }, 'peer re-established its association; closing the old one');
      old.close(0, 'replaced by a newer association');
    }
  }

  #onAssociationClosed(assoc: Association, code: number, reason: string, byPeer: boolean): void {
    this.#associations.delete(assoc);
    this.#security.forget(assoc);
    this.#link.release(assoc.remote);
    this.#releaseVerdictWaiters(assoc);
    const peer = this.#peers.get(assoc.peerName);
    if (peer && peer.current === assoc) {
      peer.current = null;
      if (!this.#stopping) peer.lost = true;
    }
    const log = this.#stopping ? this.log.info.bind(this.log) : this.log.warn.bind(this.log);
    // Silent past the outage budget: the transport's idle timeout ends it.
    const outage =
      assoc.outage.unreachable && reason === 'idle timeout'
        ? {
            unreachableSince: wallClock(assoc.outage.since),
            why: 'the peer stayed unreachable past the outage budget (limits.peerTimeoutMs): its connections are reset',
          }
        : {};
    log(
      { peer: assoc.peerName, code, reason, byPeer, ...outage, rawOut: assoc.traffic.rawOut, rawIn: assoc.traffic.rawIn },
      'association closed',
    );
  }

  // ---- near side: client connections ----

  #onClientConnection(socket: Socket, tunnel: TunnelListener): Promise<void> {
    const { name, peer, target } = tunnel.spec;
    return this.#carryClient(socket, { peer, target, counters: tunnel.counters, fields: { tunnel: name } });
  }

  async #startIntercept(): Promise<void> {
    const cfg = this.config.interceptListener;
    const listen = cfg.listen ?? DEFAULT_INTERCEPT_LISTENER.listen;
    const figures = new InterceptFigures();
    const listener = new InterceptListener({
      listen,
      method: cfg.method,
      backlog: Math.min(65535, Math.max(511, this.config.limits.maxConnections)),
      onConnection: (socket, dst) => this.#onInterceptedConnection(socket, dst, figures),
    });
    await listener.listen().catch((err: unknown) => {
      throw bindError(this.config, 'interceptListener.listen', listen, err);
    });
    this.#intercept = { listener, figures };
  }

  /** A connection the kernel diverted: its original destination picks the rule, hence the peer. */
  #onInterceptedConnection(socket: Socket, dst: Endpoint | null, figures: InterceptFigures): void {
    const client = `${socket.remoteAddress}:${socket.remotePort}`;
    const m = dst ? matchIntercept(this.config.intercept, dst.host, dst.port) : null;
    if (!dst || !m) {
      if (dst) figures.unserved++;
      else figures.unreadable++;
      socket.on('error', () => {});
      socket.resetAndDestroy();
      const unlogged = this.#refusedLog.take(performance.now());
      if (unlogged !== null) {
        this.log.warn(
          { client, originalDst: dst ? formatEndpoint(dst) : null, ...(unlogged > 0 ? { refusedUnlogged: unlogged } : {}) },
          dst
            ? 'intercepted connection reset: no intercept rule serves its destination (are the installed rules from another config?)'
            : 'intercepted connection reset: its original destination could not be read',
        );
      }
      return;
    }
    const rule = interceptRuleName(m.rule, m.index);
    const peer = m.rule.peer;
    void this.#carryClient(socket, {
      peer,
      target: dst,
      counters: figures.countersFor(rule),
      fields: { intercept: rule, originalDst: formatEndpoint(dst) },
      onOpened: (c, stream) => figures.opened({ client: c, originalDst: dst, rule, peer, stream }),
    });
  }

  async #carryClient(socket: Socket, route: ClientRoute): Promise<void> {
    const client = `${socket.remoteAddress}:${socket.remotePort}`;
    const c = route.counters;
    if (this.#stopping || this.activeConnections >= this.config.limits.maxConnections) {
      c.failed++;
      // Refused as it is accepted, with a reset: a clean close would read as an empty reply.
      socket.resetAndDestroy();
      const unlogged = this.#refusedLog.take(performance.now());
      if (unlogged !== null) {
        this.log.warn(
          { ...route.fields, client, max: this.config.limits.maxConnections, ...(unlogged > 0 ? { refusedUnlogged: unlogged } : {}) },
          this.#stopping ? 'connection refused: shutting down' : 'connection refused: connection limit reached',
        );
      }
      return;
    }
    this.#pendingConnections.add(socket);
    let clientGone = false;
    const onEarlyClose = (): void => {
      clientGone = true;
    };
    socket.once('close', onEarlyClose);
    socket.on('error', () => {});
    const assoc = await this.#associationFor(route.peer);
    this.#pendingConnections.delete(socket);
    socket.off('close', onEarlyClose);
    if (clientGone) {
      c.failed++;
      return;
    }
    if (!assoc) {
      c.failed++;
      const current = this.#peers.get(route.peer)?.current;
      const outage = current?.outage.unreachable ? { unreachableSince: wallClock(current.outage.since) } : {};
      this.log.warn(
        { ...route.fields, client, peer: route.peer, waitedMs: this.config.limits.connectWaitMs, ...outage },
        outage.unreachableSince
          ? 'connection reset: peer gateway unreachable (WAN outage) for limits.connectWaitMs'
          : 'connection reset: peer gateway unreachable',
      );
      socket.resetAndDestroy();
      return;
    }
    const id = assoc.openStream();
    if (id < 0) {
      c.failed++;
      this.log.warn({ ...route.fields, client }, 'connection closed: peer stream limit reached');
      socket.resetAndDestroy();
      return;
    }
    assoc.write(id, encodeOpenHeader(route.target));
    c.active++;
    c.total++;
    const target = formatEndpoint(route.target);
    this.log.info({ ...route.fields, client, peer: route.peer, target, stream: id }, 'connection opened');
    const forget = route.onOpened?.(client, id);
    this.#bridge(assoc, id, socket, undefined, (s) => {
      forget?.();
      c.active--;
      c.bytesFromClients += s.bytesFromSocket;
      c.bytesToClients += s.bytesToSocket;
      this.#logClose({ ...route.fields, client, target }, s);
    });
  }

  // ---- far side: inbound streams ----

  #onStreamOpened(assoc: Association, streamId: number): void {
    if (this.#stopping || this.activeConnections >= this.config.limits.maxConnections) {
      this.inbound.failed++;
      const unlogged = this.#refusedLog.take(performance.now());
      if (unlogged !== null) {
        this.log.warn(
          { peer: assoc.peerName, stream: streamId, ...(unlogged > 0 ? { refusedUnlogged: unlogged } : {}) },
          this.#stopping ? 'inbound stream refused: shutting down' : 'inbound stream refused: connection limit reached',
        );
      }
      assoc.resetStream(streamId, this.#stopping ? ResetCode.shutdown : ResetCode.overloaded);
      return;
    }
    this.inbound.active++;
    this.inbound.total++;
    new InboundOpen({
      assoc,
      streamId,
      allow: this.config.allow,
      connectTimeoutMs: this.config.limits.targetConnectTimeoutMs,
      onOutcome: (o) => this.#onInboundOutcome(assoc, streamId, o),
    });
  }

  #onInboundOutcome(assoc: Association, streamId: number, o: InboundOutcome): void {
    const peer = assoc.peerName;
    if (o.kind === 'failed') {
      this.inbound.active--;
      const target = o.target ? formatEndpoint(o.target) : undefined;
      if (o.code === ResetCode.refused) {
        this.inbound.refused++;
        this.log.warn({ peer, stream: streamId, target, reason: o.reason }, 'inbound connection refused');
      } else {
        this.inbound.failed++;
        this.log.warn({ peer, stream: streamId, target, reason: o.reason }, 'inbound connection failed');
      }
      return;
    }
    const target = formatEndpoint({ host: o.address, port: o.target.port });
    this.log.info({ peer, stream: streamId, target }, 'connection opened');
    const bridge = this.#bridge(assoc, streamId, o.socket, o.initial, (s) => {
      this.inbound.active--;
      this.#logClose({ peer, target }, s);
    });
    if (o.finished) bridge.onFinished();
  }

  // ---- both sides ----

  #bridge(
    assoc: Association,
    streamId: number,
    socket: Socket,
    initial: Uint8Array | undefined,
    done: (s: BridgeSummary) => void,
  ): StreamBridge {
    // The link is read live, once per output window: the estimate sampled once a second may date
    // from a short, application-limited exchange far below the link.
    const encoder = new BlockEncoder({
      mode: this.config.compression,
      stats: this.codecStats,
      pathMemory: assoc.pathMemory,
      linkNow: () => {
        const s = assoc.stats();
        return { rateBps: assoc.isClosed ? 0 : s.bandwidthBps, sentBytes: s.bytesSent };
      },
    });
    const decoder = new BlockDecoder({ stats: this.codecStats });
    const bridge = new StreamBridge({
      assoc,
      streamId,
      socket,
      encoder,
      decoder,
      initial,
      traffic: assoc.traffic,
      onDone: (s) => {
        this.#bridges.delete(bridge);
        assoc.encoders.delete(encoder);
        done(s);
      },
    });
    assoc.encoders.add(encoder);
    this.#bridges.add(bridge);
    return bridge;
  }

  #logClose(fields: Record<string, unknown>, s: BridgeSummary): void {
    const line = {
      ...fields,
      stream: s.streamId,
      bytesSent: s.bytesFromSocket,
      bytesReceived: s.bytesToSocket,
      durationMs: Math.round(s.durationMs),
      end: s.end,
      ...(s.detail ? { reason: s.detail } : {}),
    };
    if (s.end === 'closed') this.log.info(line, 'connection closed');
    else this.log.warn(line, 'connection closed');
  }

  #sampleRates(): void {
    const now = performance.now();
    let movedBytes = 0;
    for (const e of this.#associations) {
      const dt = (now - e.lastSample.at) / 1000;
      if (dt <= 0) continue;
      const t = e.traffic;
      const stats = e.stats();
      const wireOut = stats.bytesSent;
      e.rates = {
        wireOutBps: ((wireOut - e.lastSample.wireOut) * 8) / dt,
        wireInBps: ((t.wireIn - e.lastSample.wireIn) * 8) / dt,
        rawOutBps: ((t.rawOut - e.lastSample.rawOut) * 8) / dt,
        rawInBps: ((t.rawIn - e.lastSample.rawIn) * 8) / dt,
      };
      movedBytes += wireOut - e.lastSample.wireOut + t.wireIn - e.lastSample.wireIn;
      const packetsInPerSecond = (stats.packetsReceived - e.lastSample.packetsIn) / dt;
      e.lastSample = { at: now, wireOut, wireIn: t.wireIn, rawOut: t.rawOut, rawIn: t.rawIn, packetsIn: stats.packetsReceived };
      // Streams between bursts keep no receive memory (thousands of idle connections).
      e.trimBuffers();
      if (e.isClosed || !e.isConnected) continue;
      // The codec's 'auto' policy needs the link rate: the transport's bottleneck estimate.
      if (stats.bandwidthBps > 0) for (const enc of e.encoders) enc.setLinkRateBps(stats.bandwidthBps);
      // The peer's datagrams are read (and acknowledged) in batches sized by its rate and round trip.
      e.recvCoalescingUs = pathCoalescingUs(this.#link.recvCoalescingUs, stats.minRttMs, packetsInPerSecond);
      this.#link.setRecvCoalescing(e.remote, e.recvCoalescingUs);
    }
    // Near the budget, garbage goes at once (collectDue), and the pages it freed go back a second
    // later (V8 frees the buffers' memory as it sweeps); else free C-heap pages go back once
    // enough lie free (trimThreshold).
    const budget = this.config.limits.memoryBudget;
    const rss = process.memoryUsage.rss();
    const afterCollection = this.#collectedAt === this.#lastSampleAt;
    this.#lastSampleAt = now;
    if (rss >= budget * COLLECT_AT_BUDGET_SHARE && now - this.#collectedAt >= COLLECT_INTERVAL_MS) {
      const b = this.#bufferedBytes();
      const held = b.transportSendAllocatedBytes + b.transportRecvAllocatedBytes + b.bridgePendingBytes + b.socketWriteQueueBytes;
      if (collectDue(budget, rss, process.memoryUsage().external, held, now - this.#collectedAt)) {
        this.#collectedAt = now;
        const c = performance.now();
        collectGarbage({ trim: false });
        this.#upkeep.collections++;
        this.#upkeep.collectMs += performance.now() - c;
      }
    }
    const t = performance.now();
    if (trimMemoryIfWorthIt(trimThreshold(budget, movedBytes < QUIET_BYTES_PER_SAMPLE, afterCollection))) {
      this.#upkeep.trims++;
      this.#upkeep.trimMs += performance.now() - t;
    }
  }

  // ---- reload (SIGHUP, POST /reload) ----

  /**
   * Applies a new validated config to the running gateway, all or nothing: settings that need a
   * restart, key files that do not load, names that do not resolve and tunnel addresses that do
   * not bind refuse the whole reload (the running config stays). Connections on tunnels the
   * reload keeps, and the associations carrying them, are not touched; a removed tunnel stops
   * accepting and its open connections finish; a peer removed, or given another public key,
   * loses its association (its connections are reset: their peer is no longer trusted).
   */
  async reload(next: GatewayConfig): Promise<ReloadOutcome> {
    if (this.#stopping) return { ok: false, errors: ['the gateway is shutting down'] };
    const running = this.#config;
    const prefix = next.origin?.file !== undefined ? `${next.origin.file}: ` : '';
    const errors = restartNeeded(running, next);
    if (errors.length) return { ok: false, errors };
    // Same key file name, other contents (a rotated identity): a restart too.
    if (!next.insecurePlaintext && next.key) {
      const own = loadPrivateKeyFile(resolveKeyPath(next, next.key));
      const current = this.#security.localPublicKey();
      if (!own.ok) return { ok: false, errors: [`${prefix}key: ${own.error}`] };
      if (current && !Buffer.from(current).equals(own.value.publicKey)) {
        return {
          ok: false,
          errors: [
            `${prefix}key: ${next.key} now holds another private key: this gateway's identity cannot change on a running gateway: restart it to apply`,
          ],
        };
      }
    }
    let keys: Map<string, { id: string; publicKey: Uint8Array }> | null = null;
    if (!next.insecurePlaintext) {
      const r = loadPeerKeys(next);
      if (!r.ok) return { ok: false, errors: [`${prefix}${r.error}`] };
      keys = new Map(r.value.map((p) => [p.name, { id: p.id, publicKey: p.publicKey }]));
    }
    const addresses = new Map<string, Endpoint | null>();
    for (const [i, p] of next.peers.entries()) {
      try {
        addresses.set(p.name, p.address ? await resolveSetting(next, `peers[${i}].address`, p.address) : null);
      } catch (err) {
        return { ok: false, errors: [(err as Error).message] };
      }
    }
    // New tunnel addresses are bound before anything changes, so a failure leaves nothing half done.
    const keep = new Map(this.tunnels.map((t) => [t.key, t]));
    const added: TunnelListener[] = [];
    const specs = new Map<TunnelListener, import('./tunnel-listener.ts').TunnelSpec>();
    for (const [i, t] of next.tunnels.entries()) {
      const name = t.name ?? `tunnel${i}`;
      const old = keep.get(tunnelKey(t));
      if (old) {
        specs.set(old, { name, listen: old.spec.listen, peer: t.peer, target: t.target });
        continue;
      }
      try {
        const listen = await resolveSetting(next, `tunnels[${i}].listen`, t.listen);
        const tl = new TunnelListener(
          { name, listen, peer: t.peer, target: t.target },
          (s, tl2) => this.#onClientConnection(s, tl2),
          tunnelKey(t),
          Math.min(65535, Math.max(511, this.config.limits.maxConnections)),
        );
        await tl.listen().catch((err: unknown) => {
          throw bindError(next, `tunnels[${i}].listen`, t.listen, err);
        });
        added.push(tl);
      } catch (err) {
        for (const tl of added) tl.close();
        return { ok: false, errors: [(err as Error).message] };
      }
    }
    if (this.#stopping) {
      for (const tl of added) tl.close();
      return { ok: false, errors: ['the gateway is shutting down'] };
    }

    // ---- valid: apply ----
    const changes = describeChanges(running, next);
    // Peers removed or re-keyed: their associations end first (CLOSE still goes out under the old keys).
    const untrusted = new Set<string>();
    for (const name of this.#peers.keys()) {
      const configured = running.peers.some((p) => p.name === name);
      if (!configured) continue;
      const nowKey = keys?.get(name)?.id;
      if (!next.peers.some((p) => p.name === name)) untrusted.add(name);
      else if (keys && this.#security.peerIdOf(name) !== nowKey) untrusted.add(name);
    }
    let closing = false;
    for (const e of [...this.#associations]) {
      if (!untrusted.has(e.peerName) || e.isClosed) continue;
      const removed = !next.peers.some((p) => p.name === e.peerName);
      e.close(0, removed ? 'peer removed from the configuration' : 'peer public key changed');
      closing = true;
    }
    if (closing) await new Promise<void>((r) => setImmediate(r));
    const reloadPeers: ReloadPeer[] = next.peers.map((p) => ({
      name: p.name,
      initiator: p.address !== undefined,
      id: keys?.get(p.name)?.id ?? null,
      publicKey: keys?.get(p.name)?.publicKey ?? null,
    }));
    this.#security.setPeers(reloadPeers);
    for (const name of [...this.#peers.keys()]) {
      if (running.peers.some((p) => p.name === name) && !next.peers.some((p) => p.name === name)) this.#peers.delete(name);
    }
    for (const p of next.peers) {
      const state = this.#peers.get(p.name);
      const address = addresses.get(p.name) ?? null;
      if (state) state.address = address;
      else this.#peers.set(p.name, newPeerState(p.name, address));
    }
    // Tunnels: re-pointed in place, removed ones stop accepting, new ones are already listening.
    for (const [tl, spec] of specs) tl.spec = spec;
    for (const tl of [...this.tunnels]) {
      if (specs.has(tl)) continue;
      tl.close();
      this.tunnels.splice(this.tunnels.indexOf(tl), 1);
    }
    this.tunnels.push(...added);
    // Rate: new associations get the new controller; running ones are re-pointed to a fresh one.
    const rateChanged = JSON.stringify(running.rate) !== JSON.stringify(next.rate);
    this.#config = next;
    this.#transportConfig = transportConfigFor(next, this.#transportOverrides);
    if (rateChanged) for (const e of this.#associations) if (!e.isClosed) e.rate.replace(this.#newRateController());
    if (running.logLevel !== next.logLevel) this.log.level = next.logLevel;
    return { ok: true, changes };
  }

  // ---- health (GET /readyz) ----

  /**
   * Per configured peer: ready when its association is connected, authenticated (keys on) and
   * not in a WAN outage or under suspicion of a peer restart. A peer we have an address for and
   * no association to is asked for one now (associations otherwise open on the first
   * connection), so a probe that finds it not ready finds it ready a handshake later.
   */
  readiness(): PeerReadiness[] {
    const out: PeerReadiness[] = [];
    for (const p of this.#config.peers) {
      const state = this.#peers.get(p.name);
      const e = state?.current ?? null;
      if (!e || e.isClosed) {
        if (state?.address && !this.#stopping) void this.#associationFor(p.name);
        out.push({
          peer: p.name,
          ready: false,
          reason: state?.address ? 'no association yet (opening one now)' : 'no association: the peer has not connected to this gateway',
        });
      } else if (!e.isConnected) {
        out.push({ peer: p.name, ready: false, reason: 'association handshake in progress' });
      } else if (e.outage.unreachable) {
        out.push({ peer: p.name, ready: false, reason: `peer unreachable since ${wallClock(e.outage.since)}` });
      } else if (e.watch?.suspect) {
        out.push({ peer: p.name, ready: false, reason: 'peer silent: checking whether it restarted' });
      } else {
        out.push({ peer: p.name, ready: true });
      }
    }
    return out;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  // ---- status ----

  status(): GatewayStatus {
    const mem = process.memoryUsage();
    return {
      name: this.config.name,
      uptimeSec: Math.round((Date.now() - this.startedAt) / 1000),
      wan: formatEndpoint(this.#link.address),
      security: this.#security.mode,
      connections: { active: this.activeConnections, max: this.config.limits.maxConnections },
      associations: [...this.#associations].map((e) => {
        const s = e.stats();
        return {
          peer: e.peerName,
          role: e.role,
          remote: formatEndpoint(e.remote),
          connected: e.isConnected,
          reachable: !e.outage.unreachable,
          unreachableSince: e.outage.unreachable ? wallClock(e.outage.since) : null,
          ageSec: Math.round((Date.now() - e.createdAt) / 1000),
          rttMs: s.rttMs,
          minRttMs: s.minRttMs,
          bandwidthBps: s.bandwidthBps,
          pacingRateBps: s.pacingRateBps,
          sendRateBps: e.rates.wireOutBps,
          receiveRateBps: e.rates.wireInBps,
          rawSendRateBps: e.rates.rawOutBps,
          rawReceiveRateBps: e.rates.rawInBps,
          cwndBytes: s.cwndBytes,
          bytesInFlight: s.bytesInFlight,
          sendWaits: s.sendWaits,
          lossRate: s.packetsSent > 0 ? s.packetsLost / s.packetsSent : 0,
          retransmitRate: s.streamBytesSent > 0 ? s.streamBytesRetransmitted / s.streamBytesSent : 0,
          packetsSent: s.packetsSent,
          packetsReceived: s.packetsReceived,
          packetsLost: s.packetsLost,
          streamBytesSent: s.streamBytesSent,
          streamBytesRetransmitted: s.streamBytesRetransmitted,
          datagramsDropped: s.datagramsDropped,
          bytesOutRaw: e.traffic.rawOut,
          bytesInRaw: e.traffic.rawIn,
          bytesOutWire: s.bytesSent,
          bytesInWire: e.traffic.wireIn,
          activeStreams: s.activeStreams,
          sendBacklogBytes: e.backlog().bytes,
          readersWaitingForBacklog: e.backlog().blockedReaders,
          tcpReadYields: e.traffic.readYields,
          driver: { ...e.driver },
          recvCoalescingUs: e.recvCoalescingUs,
        };
      }),
      tunnels: this.tunnels.map((t) => ({
        name: t.spec.name,
        listen: formatEndpoint(t.address),
        peer: t.spec.peer,
        target: formatEndpoint(t.spec.target),
        ...t.counters,
      })),
      peers: [...this.#peers.values()].map((p) => {
        const o = p.current && !p.current.isClosed && p.current.outage.unreachable ? p.current.outage : null;
        return {
          name: p.name,
          reachable: o === null,
          unreachableSince: o ? wallClock(o.since) : null,
          unreachableForSec: o ? Math.round((performance.now() - o.since) / 100) / 10 : 0,
          ...p.counters,
        };
      }),
      intercept: this.#intercept
        ? this.#intercept.figures.snapshot(this.config.intercept, this.#intercept.listener.address, this.#intercept.listener.method)
        : null,
      liveness: { restartDetectMs: this.#restartDetectMs },
      inbound: { ...this.inbound },
      codec: this.codecStats.snapshot(),
      crypto: this.#security.stats(),
      udp: { ...this.#link.stats },
      memory: {
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        heapTotalBytes: mem.heapTotal,
        externalBytes: mem.external,
        arrayBuffersBytes: mem.arrayBuffers,
        rssAnonBytes: rssAnonBytes(),
        budgetBytes: this.config.limits.memoryBudget,
        cHeap: cHeapStats(),
        upkeep: { ...this.#upkeep },
        ...this.#bufferedBytes(),
      },
    };
  }

  #bufferedBytes(): Pick<
    GatewayStatus['memory'],
    | 'transportSendBytes'
    | 'transportSendAllocatedBytes'
    | 'transportRecvBytes'
    | 'transportRecvAllocatedBytes'
    | 'bridgePendingBytes'
    | 'socketWriteQueueBytes'
  > {
    const m = {
      transportSendBytes: 0,
      transportSendAllocatedBytes: 0,
      transportRecvBytes: 0,
      transportRecvAllocatedBytes: 0,
      bridgePendingBytes: 0,
      socketWriteQueueBytes: 0,
    };
    for (const e of this.#associations) {
      if (e.isClosed) continue;
      const x = e.bufferedBytes();
      m.transportSendBytes += x.send;
      m.transportSendAllocatedBytes += x.sendAllocated;
      m.transportRecvBytes += x.recv;
      m.transportRecvAllocatedBytes += x.recvAllocated;
    }
    for (const b of this.#bridges) {
      m.bridgePendingBytes += b.pendingBytes;
      m.socketWriteQueueBytes += b.socketWriteQueueBytes;
    }
    return m;
  }

  // ---- shutdown ----

  /**
   * Stops accepting, lets open connections finish for `graceMs`, resets what is left,
   * then closes the associations cleanly and the WAN socket.
   */
  async stop(graceMs = this.config.limits.shutdownGraceMs, opts: { quiet?: boolean } = {}): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#sampler);
    clearInterval(this.#livenessTimer);
    for (const t of this.tunnels) t.close();
    this.#intercept?.listener.close();
    for (const s of this.#pendingConnections) s.destroy();
    const deadline = Date.now() + graceMs;
    if (this.#bridges.size > 0 && graceMs > 0) {
      this.log.info({ open: this.#bridges.size, graceMs }, 'waiting for open connections to finish');
      while (this.#bridges.size > 0 && Date.now() < deadline) await sleep(50);
    }
    if (this.#bridges.size > 0) {
      this.log.warn({ open: this.#bridges.size }, 'grace period over: resetting remaining connections');
      for (const b of [...this.#bridges]) b.abort();
    }
    const closing = [...this.#associations].filter((e) => !e.isClosed);
    for (const e of closing) e.close(0, 'gateway shutting down');
    // Give CLOSE a moment to leave and be answered; the core drains on its own timer.
    const closeDeadline = Date.now() + 1000;
    while ([...this.#associations].some((e) => !e.isClosed) && Date.now() < closeDeadline) await sleep(20);
    this.#security.close();
    await this.#link.close();
    if (!opts.quiet) this.log.info('gateway stopped');
  }
}

/** Anonymous resident memory (/proc/self/smaps_rollup), 0 where it cannot be read. */
function rssAnonBytes(): number {
  try {
    const m = /^Anonymous:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Transport settings derived from the gateway config (memory budget, limits, rate). */
// IP + UDP headers: the UDP payload that fits the configured path MTU. A WAN address of IPv4
// makes the path IPv4 (20 bytes of header, not IPv6's 40: at 1500 bytes 1.4% more payload per
// packet); a host name or IPv6 address counts IPv6's. 1200 is the floor every IPv6 path
// guarantees before path-MTU discovery (as QUIC's).
const IPV4_UDP_HEADERS = 28;
const IPV6_UDP_HEADERS = 48;
const MIN_UDP_PAYLOAD = 1200;

export function transportConfigFor(config: GatewayConfig, overrides: Partial<ConnectionConfig> = {}): ConnectionConfig {
  const budget = config.limits.memoryBudget;
  const MiB = 1024 * 1024;
  const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.floor(v)));
  const { controller, committedRate, maxRate } = config.rate;
  const overhead = protectionOverhead(config);
  const headers = isIP(config.wan.host) === 4 ? IPV4_UDP_HEADERS : IPV6_UDP_HEADERS;
  const maxPacketSize = config.mtu - headers - overhead;
  // The controller's window floor is counted in packets of `mss`: sized to the largest packet
  // the path may carry, so a jumbo-MTU path never has a window smaller than one packet.
  const rateController = withHostLatencyAllowance(
    controller === 'fixed'
      ? fixedRateController({ rateBps: (committedRate ?? maxRate)!, mss: maxPacketSize })
      : // Math.random: the controller's probe-phase draws only de-synchronise associations that
        // share a bottleneck (the tested path; without it the draws come from an ack-time hash).
        modelBasedController({
          maxRateBps: maxRate,
          initialRateBps: committedRate,
          mss: maxPacketSize,
          random: Math.random,
          // The hosts' scheduling latency the window allows for is also the shortest round: a
          // sub-millisecond path's probes and bandwidth filter then span more than one hiccup.
          minRoundMs: HOST_LATENCY_ALLOWANCE_MS,
        }),
  );
  // The receive window bounds what the peer may have in flight towards us across all
  // streams; a quarter of the budget leaves the rest for send buffers and TCP-side queues.
  const connectionReceiveWindow = clamp(budget / 4, 1 * MiB, 64 * MiB);
  const base = defaultConnectionConfig();
  const peerTimeout = config.limits.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
  return defaultConnectionConfig({
    maxPacketSize,
    initialPacketSize: MIN_UDP_PAYLOAD - overhead,
    connectionReceiveWindow,
    streamReceiveWindow: Math.min(connectionReceiveWindow, Math.max(base.streamReceiveWindow, 16 * MiB)),
    streamSendBuffer: clamp(budget / 8, 1 * MiB, 16 * MiB),
    maxStreams: Math.max(base.maxStreams, config.limits.maxConnections),
    rateController,
    // Keepalives at a third of the timeout (at most 10 s), so two may be lost before the peer counts as gone.
    idleTimeoutMs: peerTimeout,
    keepaliveMs: Math.min(base.keepaliveMs, Math.floor(peerTimeout / 3)),
    ...overrides,
  });
}

export interface GatewayStatus {
  name: string;
  uptimeSec: number;
  wan: string;
  security: string;
  connections: { active: number; max: number };
  associations: Array<{
    peer: string;
    role: 'client' | 'server';
    remote: string;
    connected: boolean;
    /** False during a WAN outage (see OutageWatch); unreachableSince is then the last time the peer was heard. */
    reachable: boolean;
    unreachableSince: string | null;
    ageSec: number;
    rttMs: number;
    minRttMs: number;
    bandwidthBps: number;
    pacingRateBps: number;
    sendRateBps: number;
    receiveRateBps: number;
    /** Time the sender waited, in all, for the congestion window (acks), the pacer, and data to send. */
    sendWaits: { windowMs: number; pacingMs: number; dataMs: number };
    /** TCP-side bytes per second into (send) and out of (receive) the association over the last second, as bits/s. */
    rawSendRateBps: number;
    rawReceiveRateBps: number;
    cwndBytes: number;
    bytesInFlight: number;
    lossRate: number;
    retransmitRate: number;
    packetsSent: number;
    packetsReceived: number;
    packetsLost: number;
    datagramsDropped: number;
    streamBytesSent: number;
    streamBytesRetransmitted: number;
    bytesOutRaw: number;
    bytesInRaw: number;
    bytesOutWire: number;
    bytesInWire: number;
    activeStreams: number;
    sendBacklogBytes: number;
    readersWaitingForBacklog: number;
    /** Times a connection stopped reading TCP for the rest of an event-loop turn (its read budget spent behind a long backlog). */
    tcpReadYields: number;
    driver: { flushes: number; timerWakeups: number; transmits: number };
    /** How long the peer's datagrams are left to gather before a read (and an ack), microseconds. */
    recvCoalescingUs: number;
  }>;
  tunnels: Array<{ name: string; listen: string; peer: string; target: string } & import('./tunnel-listener.ts').TunnelCounters>;
  /** Per configured (or accepted) peer: restarts detected and re-associations. */
  peers: Array<{ name: string; reachable: boolean; unreachableSince: string | null; unreachableForSec: number } & PeerLivenessCounters>;
  /** Transparent interception: rules with their counters, open connections with their original destinations; null when off. */
  intercept: InterceptStatus | null;
  liveness: { restartDetectMs: number };
  inbound: InboundCounters;
  codec: CodecStatsSnapshot;
  crypto: WanSecurityStats;
  udp: import('./udp-link.ts').UdpLinkStats;
  memory: {
    rssBytes: number;
    heapUsedBytes: number;
    /** V8's heap as reserved (used + free pages it keeps), and memory outside it V8 knows of (ArrayBuffers included). */
    heapTotalBytes: number;
    externalBytes: number;
    arrayBuffersBytes: number;
    /** The RSS without mapped files (the node binary's code and data): what the process allocated. 0 where unknown. */
    rssAnonBytes: number;
    budgetBytes: number;
    /** The C heap (glibc): in use, free but held, and mmapped bytes. */
    cHeap: { inUseBytes: number; freeBytes: number; mmappedBytes: number };
    /** Garbage collections the gateway made itself near its budget (collectDue) and C-heap trims, with the main-thread ms they took. */
    upkeep: { collections: number; collectMs: number; trims: number; trimMs: number };
    /** Stream bytes the transport holds: unacknowledged sends (and their rings' size), unread receives. */
    transportSendBytes: number;
    transportSendAllocatedBytes: number;
    transportRecvBytes: number;
    transportRecvAllocatedBytes: number;
    /** Bytes the TCP sides hold: read but not yet taken by the transport, and written but not yet taken by the kernel. */
    bridgePendingBytes: number;
    socketWriteQueueBytes: number;
  };
}
