// `longhaul gateway`: runs one gateway from a config file and/or quick-start flags.
import { type Command, Option } from 'commander';
import { configFromFlags, DEFAULT_CONTROL } from '../gateway/config.ts';
import type { GatewayFlags } from '../gateway/config.ts';
import { createLogger } from '../gateway/logger.ts';
import { restartWithGatewayHeap } from './gateway-heap.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const EXAMPLES = `
Examples:
  # site A: listen locally on 6600, carry connections to 10.0.0.7:6600 behind site B
  longhaul gateway --wan 0.0.0.0:4500 --peer 198.18.0.6:4500 \\
      --tunnel 127.0.0.1:6600=10.0.0.7:6600 --key a.key --peer-key b.pub

  # site B: accept site A, and let it reach only 10.0.0.0/24
  longhaul gateway --wan 0.0.0.0:4500 --key b.key --peer-key a.pub --allow 10.0.0.0/24

  # everything from a YAML file (same keys as the flags; flags given as well override it)
  longhaul gateway --config site-a.yaml

Config file (YAML):
  name: site-a
  wan: 0.0.0.0:4500
  wanReusePort: false              # true: share the WAN address with other sockets (SO_REUSEPORT)
  key: a.key                       # from \`longhaul keygen a\`; must be mode 0600
  cipher: aes-256-gcm              # or chacha20-poly1305; the same on both gateways
  peers:
    - { name: dc2, address: 198.18.0.6:4500, publicKey: b.pub }
  tunnels:
    - { listen: 127.0.0.1:6600, peer: dc2, target: 10.0.0.7:6600 }
  intercept:                       # transparent interception (docs/intercept.md)
    - { peer: dc2, subnets: [10.2.0.0/16], ports: [443, 3260, 6600-6700] }
  interceptListener: { listen: 0.0.0.0:4510, method: tproxy }   # longhaul intercept install
  allow: [10.0.0.0/24, "192.168.1.5:22"]   # targets peers may reach through us
  rate: { controller: model, committedRate: 100M, maxRate: 1G }
  limits: { maxConnections: 1024, memoryBudget: 256MiB, connectWaitMs: 10000,
            targetConnectTimeoutMs: 10000, shutdownGraceMs: 10000,
            peerTimeoutMs: 180000,        # outage budget: a silent peer keeps its connections this long
            peerRestartDetectMs: 5000 }   # in use and silent this long: check for a peer restart
  compression: auto                # auto | lz4 | zstd | none
  mtu: 1500                        # WAN path MTU; larger sizes are probed before use
  control: 127.0.0.1:4501          # dashboard (/), status, metrics, health, reload over HTTP; false to disable
  controlTokenFile: control.token  # bearer token it requires; needed when control is not loopback
  logLevel: info

Signals: SIGTERM/SIGINT close the listeners, let open connections finish for
limits.shutdownGraceMs, then close the association; a second signal exits at once.
SIGHUP (or \`longhaul reload\`) re-reads --config: a valid file applies live, an invalid one is
refused with one log line naming the key, and the gateway keeps running as it was.
`;

export function registerGatewayCommand(program: Command): void {
  program
    .command('gateway')
    .description('run a gateway: TCP tunnels to a peer gateway over the accelerated, encrypted UDP transport')
    .option('-c, --config <file>', 'YAML config file (flags given as well override its settings), e.g. --config site-a.yaml')
    .option('--name <name>', 'name of this gateway in logs and status, e.g. --name site-a')
    .option('--wan <host:port>', 'UDP address for the WAN side, e.g. --wan 0.0.0.0:4500')
    .option(
      '--wan-reuse-port',
      "share the WAN address with other sockets (SO_REUSEPORT; the kernel then spreads the peer's datagrams over them); without it the gateway refuses an address another process holds",
    )
    .option('--peer <host:port>', 'the peer gateway to open the association to, e.g. --peer 198.18.0.6:4500 (omit on the accepting side)')
    .option('--peer-name <name>', 'name for that peer in logs and status (default "peer"), e.g. --peer-name dc2')
    .option(
      '--tunnel <listen=target>',
      'tunnel: local TCP listener = target reached from the peer site; repeatable, e.g. --tunnel 127.0.0.1:6600=10.0.0.7:6600',
      collect,
    )
    .option(
      '--intercept <[peer=]subnets[:ports]>',
      'intercept TCP connections to these remote subnets (and ports) and carry them to the peer (docs/intercept.md); repeatable, e.g. --intercept 10.2.0.0/16:443,3260,6600-6700',
      collect,
    )
    .option(
      '--intercept-listen <host:port>',
      'where the kernel delivers intercepted connections (default 0.0.0.0:4510), e.g. --intercept-listen 0.0.0.0:4510',
    )
    .addOption(
      new Option(
        '--intercept-method <method>',
        'how connections are diverted: tproxy (default; needs CAP_NET_ADMIN) or redirect (NAT, SO_ORIGINAL_DST)',
      ).choices(['tproxy', 'redirect']),
    )
    .option('--key <file>', "this gateway's private key (from `longhaul keygen NAME`, mode 0600), e.g. --key a.key")
    .option('--peer-key <file>', "the peer's public key, e.g. --peer-key b.pub")
    .addOption(
      new Option(
        '--cipher <name>',
        'WAN packet cipher, the same on both gateways (default aes-256-gcm), e.g. --cipher chacha20-poly1305',
      ).choices(['aes-256-gcm', 'chacha20-poly1305']),
    )
    .option(
      '--allow <cidr[:port]>',
      'targets the peer may reach through this gateway; repeatable or comma-separated, e.g. --allow 10.0.0.0/24 --allow 192.168.1.5:22',
      collect,
    )
    .addOption(
      new Option(
        '--controller <kind>',
        'rate controller: model (probes the path, default) or fixed (sends at --rate), e.g. --controller fixed',
      ).choices(['model', 'fixed']),
    )
    .option('--rate <bps>', 'committed rate in bits/s (fixed: the rate; model: the starting rate), e.g. --rate 100M')
    .option('--max-rate <bps>', 'never send faster than this, e.g. --max-rate 1G')
    .option('--max-connections <n>', 'maximum concurrent TCP connections (default 1024), e.g. --max-connections 500')
    .option('--memory <size>', 'memory budget for buffers (default 256MiB), e.g. --memory 512MiB')
    .addOption(
      new Option('--compression <mode>', 'stream compression, e.g. --compression zstd (default auto)').choices([
        'auto',
        'lz4',
        'zstd',
        'none',
      ]),
    )
    .option(
      '--mtu <bytes>',
      'path MTU of the WAN (default 1500; 9000 on jumbo-frame links; EXPERIMENTAL above 1500: transfers can stall), e.g. --mtu 9000',
    )
    .option(
      '--control <host:port|off>',
      `status/metrics HTTP address (default ${DEFAULT_CONTROL}, loopback), e.g. --control 127.0.0.1:4601`,
    )
    .option(
      '--control-token-file <file>',
      'bearer token the control interface requires (needed when --control is not loopback), e.g. --control-token-file /etc/longhaul/control.token',
    )
    .addOption(
      new Option('--log-level <level>', 'log level, e.g. --log-level debug').choices([
        'fatal',
        'error',
        'warn',
        'info',
        'debug',
        'trace',
        'silent',
      ]),
    )
    .option('--log-json', 'JSON log lines even on a terminal')
    .option(
      '--insecure-plaintext',
      'DEBUG ONLY: no authentication or encryption on the WAN (for measuring crypto cost); no config file can set this',
    )
    .addHelpText('after', EXAMPLES)
    .action(async (flags: GatewayFlags & { logJson?: boolean }) => {
      const result = configFromFlags(flags);
      if (!result.ok) {
        process.stderr.write(`longhaul gateway: invalid configuration; not starting:\n${result.errors.map((e) => `  ${e}`).join('\n')}\n`);
        process.exitCode = 2;
        return;
      }
      const config = result.config;
      restartWithGatewayHeap();
      const logger = createLogger({ level: config.logLevel, name: config.name, pretty: flags.logJson ? false : undefined });
      if (config.insecurePlaintext)
        logger.warn('--insecure-plaintext: WAN traffic is NOT authenticated or encrypted (debug/benchmark use only)');
      try {
        // Loaded here so that `status`, `keygen` and `--help` do not load the transport.
        const { installSignalHandlers, runGateway } = await import('../gateway/run.ts');
        // A reload re-reads the file and re-applies the same flags on top of it.
        const reloadConfig = flags.config !== undefined ? () => configFromFlags(flags) : undefined;
        const running = await runGateway(config, { logger, warmUp: true, ...(reloadConfig ? { reloadConfig } : {}) });
        installSignalHandlers(running, logger);
      } catch (err) {
        // Once: a JSON log line for those who asked for JSON, else one line on stderr.
        if (flags.logJson) {
          logger.error({ err: (err as Error).message }, 'gateway failed to start');
          logger.flush?.();
        } else {
          process.stderr.write(`longhaul gateway: ${(err as Error).message}\n`);
        }
        process.exitCode = 1;
      }
    });
}
