// Config reload (SIGHUP, POST /reload; Gateway.reload): a transfer runs across 10 reloads,
// alternately valid and invalid, and completes byte-exact without a reset; valid changes apply
// live (tunnels added, re-pointed and removed, rate, compression, log level, limits, allow-list,
// peers), invalid ones are refused with one line naming the key, settings that need a restart
// are refused saying so, and the old configuration keeps running.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateStaticKeyPair, writeKeyFiles } from '../../src/crypto/keys.ts';
import { loadConfigFile } from '../../src/gateway/config.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { runGateway } from '../../src/gateway/run.ts';
import type { RunningGateway } from '../../src/gateway/run.ts';
import { LogCapture, freePort, makeKeys, reportIfProcessLingers, startB, startVerifyTarget, verifiedExchange } from './helpers.ts';
import type { KeySet, TransferResult } from './helpers.ts';

reportIfProcessLingers('reload.test.ts');

interface ASettings {
  bPort: number;
  tunnels: Array<{ listen: number; target: number }>;
  extra?: string;
}

function aYaml(keys: KeySet, s: ASettings): string {
  const tunnels = s.tunnels.map((t) => `  - { listen: "127.0.0.1:${t.listen}", peer: b, target: "127.0.0.1:${t.target}" }`).join('\n');
  return `name: a
wan: 127.0.0.1:0
key: ${keys.aKey}
peers:
  - { name: b, address: "127.0.0.1:${s.bPort}", publicKey: ${keys.bPub} }
tunnels:
${tunnels || '  []'}
control: false
logLevel: debug
${s.extra ?? ''}
`;
}

async function startFromFile(file: string, log: LogCapture): Promise<RunningGateway> {
  const r = loadConfigFile(file);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return runGateway(r.config, {
    logger: createLogger({ level: 'debug', destination: log.stream }),
    reloadConfig: () => loadConfigFile(file),
  });
}

/** Resolves with the connection's error code (ECONNREFUSED when nothing listens), or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

test('a transfer runs across 10 reloads (valid and invalid alternately): every byte verified, no reset, changes applied live', async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logA = new LogCapture();
  const logB = new LogCapture();
  const b = await startB({ target: '', allow: ['127.0.0.1/32'] }, keys, logB);
  const bPort = b.gateway.wanAddress.port;
  const p1 = await freePort();
  const p2 = await freePort();
  const file = join(keys.dir, 'a.yaml');
  const base: ASettings = { bPort, tunnels: [{ listen: p1, target: target.port }] };
  writeFileSync(file, aYaml(keys, base));
  const a = await startFromFile(file, logA);
  try {
    // Paced upload (64 KiB every 40 ms, ~4 s) so it spans every reload.
    let settled = false;
    const transfer = verifiedExchange(p1, 6 * 1024 * 1024, 4 * 1024 * 1024, 40).finally(() => {
      settled = true;
    });
    await logA.waitFor('connection opened');
    const later: { tunnel2: Promise<TransferResult> | null } = { tunnel2: null };
    const steps: Array<{ yaml: string; valid: boolean; key?: RegExp; check?: () => Promise<void> }> = [
      {
        // 0: a second tunnel
        yaml: aYaml(keys, { ...base, tunnels: [...base.tunnels, { listen: p2, target: target.port }] }),
        valid: true,
        check: async () => {
          assert.equal(a.gateway.tunnels.length, 2);
          // A slow transfer on the new tunnel, still running when the tunnel is removed (step 6).
          later.tunnel2 = verifiedExchange(p2, 2 * 1024 * 1024, 64 * 1024, 60);
        },
      },
      {
        yaml: aYaml(keys, {
          ...base,
          tunnels: [
            { listen: p1, target: target.port },
            { listen: p2, target: target.port },
          ],
        }).replace('peer: b, target', 'peer: c, target'),
        valid: false,
        key: /tunnels\[0\]\.peer: unknown peer "c"/,
      },
      {
        // 2: log level and compression
        yaml: aYaml(keys, { ...base, tunnels: [...base.tunnels, { listen: p2, target: target.port }], extra: 'compression: lz4' }).replace(
          'logLevel: debug',
          'logLevel: info',
        ),
        valid: true,
        check: async () => {
          assert.equal(a.gateway.log.level, 'info');
          // A connection opened after the reload compresses with lz4 (the running one keeps 'auto').
          const before = a.gateway.status().codec.encode.blocksLz4;
          const z = await verifiedExchange(p1, 256 * 1024, 1000, 0, (n) => Buffer.alloc(n, 7));
          assert.ok(z.uploadOk && z.downloadOk);
          assert.ok(a.gateway.status().codec.encode.blocksLz4 > before, 'lz4 blocks after the reload');
        },
      },
      { yaml: 'wan: [unclosed', valid: false, key: /not valid YAML/ },
      {
        // 4: rate: the running association is re-pointed at a fixed 200 Mbit/s controller
        yaml: aYaml(keys, {
          ...base,
          tunnels: [...base.tunnels, { listen: p2, target: target.port }],
          extra: 'rate: { controller: fixed, committedRate: 200M }',
        }),
        valid: true,
        check: async () => {
          const assoc = a.gateway.status().associations;
          assert.equal(assoc.length, 1);
          assert.equal(assoc[0]!.pacingRateBps, 200e6);
        },
      },
      {
        yaml: aYaml(keys, base).replace('wan: 127.0.0.1:0', 'wan: 127.0.0.1:1'),
        valid: false,
        key: /wan: "127\.0\.0\.1:0" -> "127\.0\.0\.1:1" cannot change on a running gateway: restart it/,
      },
      {
        // 6: tunnel 2 removed while its connection runs; a smaller connection limit
        yaml: aYaml(keys, { ...base, extra: 'limits: { maxConnections: 500 }' }),
        valid: true,
        check: async () => {
          assert.equal(a.gateway.tunnels.length, 1);
          assert.equal(a.gateway.config.limits.maxConnections, 500);
          assert.equal(await tryConnect(p2), 'ECONNREFUSED', 'a removed tunnel refuses new connections');
          assert.equal(settled, false);
        },
      },
      { yaml: aYaml(keys, base).replace(keys.bPub, join(keys.dir, 'missing.pub')), valid: false, key: /missing\.pub/ },
      { yaml: aYaml(keys, base), valid: true },
      {
        // 9: a new tunnel on an address another process holds: nothing changes (all or nothing)
        yaml: aYaml(keys, {
          ...base,
          tunnels: [...base.tunnels, { listen: target.port, target: target.port }],
          extra: 'logLevel: warn',
        }).replace('logLevel: debug\n', ''),
        valid: false,
        key: /tunnels\[1\]\.listen: 127\.0\.0\.1:\d+ is already in use by another process/,
        check: async () => {
          assert.equal(a.gateway.tunnels.length, 1);
          assert.equal(a.gateway.log.level, 'debug', 'the log level of the refused file was not applied either');
        },
      },
    ];
    let refusedLines = 0;
    for (const [i, step] of steps.entries()) {
      writeFileSync(file, step.yaml);
      const o = await a.reload();
      assert.equal(o.ok, step.valid, `step ${i}: ${JSON.stringify(o)}`);
      if (!o.ok) {
        assert.ok(
          o.errors.some((e) => step.key!.test(e)),
          `step ${i}: ${o.errors.join(' | ')}`,
        );
        const lines = logA.lines.filter((l) => l.msg.startsWith('reload refused, still running the previous configuration'));
        assert.equal(lines.length, ++refusedLines, 'one log line per refused reload');
        assert.match(lines.at(-1)!.msg, step.key!);
      } else {
        assert.ok(logA.lines.some((l) => l.msg.startsWith('configuration reloaded')));
      }
      await step.check?.();
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.equal(settled, false, 'the transfer was still running after the 10th reload');
    const r = await transfer;
    assert.ok(r.uploadOk && r.downloadOk, 'every byte of both directions verified');
    const r2 = await later.tunnel2;
    assert.ok(r2?.uploadOk && r2.downloadOk, 'the connection on the removed tunnel finished, verified');
    const resets = [...logA.lines, ...logB.lines].filter((l) => l.msg === 'connection closed' && l.end !== 'closed');
    assert.deepEqual(resets, [], 'no connection reset');
    assert.equal(logA.lines.filter((l) => l.msg === 'association connected').length, 1, 'the association carried on (never re-opened)');
  } finally {
    await a.stop(0);
    await b.stop(0);
    await target.close();
  }
});

test('reload at the answering side: allow-list applies to new connections; a peer given another key loses its association; a rotated private key needs a restart', async () => {
  const keys = makeKeys();
  const target = await startVerifyTarget();
  const logA = new LogCapture();
  const logB = new LogCapture();
  const bFile = join(keys.dir, 'b.yaml');
  const bYaml = (allow: string, peers = `peers: [{ name: a, publicKey: ${keys.aPub} }]`): string =>
    `name: b\nwan: 127.0.0.1:0\nkey: ${keys.bKey}\n${peers}\nallow: ${allow}\ncontrol: false\nlogLevel: debug\n`;
  writeFileSync(bFile, bYaml('["127.0.0.1/32"]'));
  const b = await startFromFile(bFile, logB);
  const p1 = await freePort();
  const aFile = join(keys.dir, 'a.yaml');
  writeFileSync(aFile, aYaml(keys, { bPort: b.gateway.wanAddress.port, tunnels: [{ listen: p1, target: target.port }] }));
  const a = await startFromFile(aFile, logA);
  try {
    assert.ok((await verifiedExchange(p1, 100_000, 100_000)).uploadOk);
    // Allow-list without the target: the next connection is refused at B.
    writeFileSync(bFile, bYaml('["10.0.0.0/8"]'));
    const o = await b.reload();
    assert.ok(o.ok && o.changes.some((c) => c.startsWith('allow: [10.0.0.0/8]')), JSON.stringify(o));
    await assert.rejects(verifiedExchange(p1, 1000, 1000));
    await logB.waitFor('inbound connection refused', (l) => /not in the allow-list/.test(String(l.reason)));
    writeFileSync(bFile, bYaml('["127.0.0.1/32"]'));
    assert.ok((await b.reload()).ok);
    assert.ok((await verifiedExchange(p1, 100_000, 100_000)).downloadOk, 'allowed again after the next reload');

    // A new key for peer a (rotated on A's side): B drops the old session and association.
    const other = writeKeyFiles(keys.dir, 'a2', generateStaticKeyPair());
    assert.ok(other.ok);
    writeFileSync(bFile, bYaml('["127.0.0.1/32"]', `peers: [{ name: a, publicKey: ${join(keys.dir, 'a2.pub')} }]`));
    const k = await b.reload();
    assert.ok(k.ok && k.changes.some((c) => c.startsWith('peer a: publicKey file')), JSON.stringify(k));
    await logB.waitFor('association closed', (l) => l.reason === 'peer public key changed');
    // B's private key file rewritten: its identity cannot change live.
    const rotated = writeKeyFiles(keys.dir, 'b', generateStaticKeyPair(), true);
    assert.ok(rotated.ok);
    const r = await b.reload();
    assert.ok(!r.ok && /key: .* now holds another private key: .*restart it to apply/.test(r.errors.join()), JSON.stringify(r));
  } finally {
    await a.stop(0);
    await b.stop(0);
    await target.close();
  }
});

test('a gateway started from flags alone refuses reloads, saying why', async () => {
  const keys = makeKeys();
  const log = new LogCapture();
  const b = await startB({ target: '', allow: [] }, keys, log);
  try {
    const o = await b.reload();
    assert.ok(!o.ok && /no config file to re-read/.test(o.errors[0]!));
    await log.waitFor(/^reload refused: no config file/);
  } finally {
    await b.stop(0);
  }
});

test('reload adds a peer (it can associate and carry connections at once) and removes it (its association closes)', async () => {
  const keys = makeKeys();
  const c = writeKeyFiles(keys.dir, 'c', generateStaticKeyPair());
  assert.ok(c.ok);
  const target = await startVerifyTarget();
  const logB = new LogCapture();
  const logC = new LogCapture();
  const bFile = join(keys.dir, 'b.yaml');
  const bYaml = (peers: string): string =>
    `name: b\nwan: 127.0.0.1:0\nkey: ${keys.bKey}\npeers: [${peers}]\nallow: ["127.0.0.1/32"]\ncontrol: false\nlogLevel: debug\n`;
  writeFileSync(bFile, bYaml(`{ name: a, publicKey: ${keys.aPub} }`));
  const b = await startFromFile(bFile, logB);
  const pc = await freePort();
  const cFile = join(keys.dir, 'c.yaml');
  writeFileSync(
    cFile,
    `name: c\nwan: 127.0.0.1:0\nkey: ${join(keys.dir, 'c.key')}\npeers: [{ name: b, address: "127.0.0.1:${b.gateway.wanAddress.port}", publicKey: ${keys.bPub} }]\n` +
      `tunnels: [{ listen: "127.0.0.1:${pc}", peer: b, target: "127.0.0.1:${target.port}" }]\ncontrol: false\nlimits: { connectWaitMs: 10000 }\n`,
  );
  const gc = await startFromFile(cFile, logC);
  try {
    // Not a peer of B yet: B drops C's handshake; C's connection waits (connectWaitMs).
    const waiting = verifiedExchange(pc, 200_000, 200_000);
    await logB.waitFor(/^handshake from .* with an unknown key/);
    writeFileSync(bFile, bYaml(`{ name: a, publicKey: ${keys.aPub} }, { name: c, publicKey: ${join(keys.dir, 'c.pub')} }`));
    const o = await b.reload();
    assert.ok(o.ok && o.changes.includes('peer added: c'), JSON.stringify(o));
    // C's handshake retransmission (every 5 s) is now answered and the waiting connection carried.
    const r = await waiting;
    assert.ok(r.uploadOk && r.downloadOk);
    await logB.waitFor('association connected', (l) => l.peer === 'c');
    writeFileSync(bFile, bYaml(`{ name: a, publicKey: ${keys.aPub} }`));
    const rm = await b.reload();
    assert.ok(rm.ok && rm.changes.includes('peer removed: c (its association closes)'), JSON.stringify(rm));
    await logB.waitFor('association closed', (l) => l.peer === 'c' && l.reason === 'peer removed from the configuration');
    assert.equal(
      b.gateway.status().peers.some((p) => p.name === 'c'),
      false,
    );
  } finally {
    await gc.stop(0);
    await b.stop(0);
    await target.close();
  }
});
