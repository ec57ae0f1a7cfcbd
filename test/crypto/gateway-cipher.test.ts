// The cipher setting through real gateways on loopback: a pair configured with ChaCha20-Poly1305
// carries hash-verified data; a pair whose sides disagree never associates, and the answering side
// logs the mismatch and counts it.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import type { PacketCipher } from '../../src/crypto/aead.ts';
import { validateConfig } from '../../src/gateway/config.ts';
import { createLogger } from '../../src/gateway/logger.ts';
import { createMetrics } from '../../src/gateway/metrics.ts';
import { runGateway, type RunningGateway } from '../../src/gateway/run.ts';
import { LogCapture, makeKeys, startVerifyTarget, verifiedExchange, type KeySet } from '../gateway/helpers.ts';

async function start(raw: Record<string, unknown>, log: LogCapture): Promise<RunningGateway> {
  const r = validateConfig({ wan: '127.0.0.1:0', control: false, logLevel: 'debug', ...raw });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return runGateway(r.config, { logger: createLogger({ level: 'debug', destination: log.stream }) });
}

async function gatewayPair(keys: KeySet, cipherA: PacketCipher, cipherB: PacketCipher, target: string) {
  const logA = new LogCapture();
  const logB = new LogCapture();
  const b = await start(
    { name: 'b', key: keys.bKey, peers: [{ name: 'a', publicKey: keys.aPub }], allow: ['127.0.0.1/32'], cipher: cipherB },
    logB,
  );
  const a = await start(
    {
      name: 'a',
      key: keys.aKey,
      cipher: cipherA,
      limits: { connectWaitMs: 3000 },
      peers: [{ name: 'b', address: `127.0.0.1:${b.gateway.wanAddress.port}`, publicKey: keys.bPub }],
      tunnels: [{ listen: '127.0.0.1:0', peer: 'b', target }],
    },
    logA,
  );
  return {
    a,
    b,
    logA,
    logB,
    port: a.gateway.tunnels[0]!.address.port,
    stop: async () => {
      await a.stop(0);
      await b.stop(0);
    },
  };
}

test('gateways on chacha20-poly1305 carry hash-verified data both ways', { timeout: 60_000 }, async () => {
  const target = await startVerifyTarget();
  const pair = await gatewayPair(makeKeys(), 'chacha20-poly1305', 'chacha20-poly1305', `127.0.0.1:${target.port}`);
  try {
    const r = await verifiedExchange(pair.port, 300_000, 500_000);
    assert.ok(r.uploadOk && r.downloadOk);
    const started = pair.logA.find('gateway started');
    assert.equal((started?.datapath as { cipher?: string } | undefined)?.cipher, 'chacha20-poly1305');
    const ep = pair.b.gateway.status().crypto.endpoint!;
    assert.equal(ep.cipher, 'chacha20-poly1305');
    assert.ok(ep.packetsOpened > 0);
  } finally {
    await pair.stop();
    await target.close();
  }
});

test('gateways with different ciphers never associate; the answering side says why', { timeout: 60_000 }, async () => {
  const target = await startVerifyTarget();
  const pair = await gatewayPair(makeKeys(), 'aes-256-gcm', 'chacha20-poly1305', `127.0.0.1:${target.port}`);
  try {
    const client = connect(pair.port, '127.0.0.1');
    client.on('error', () => {});
    const warning = await pair.logB.waitFor(/handshake refused: the initiator uses the other cipher/);
    assert.equal(warning.cipher, 'chacha20-poly1305');
    // The tunnel connection is given up after connectWaitMs: nothing got through.
    await new Promise<void>((resolve) => {
      client.on('close', () => resolve());
    });
    const ep = pair.b.gateway.status().crypto.endpoint!;
    assert.ok(ep.cipherMismatches >= 1);
    const metrics = await createMetrics(() => pair.b.gateway.status()).metrics();
    assert.match(metrics, new RegExp(`longhaul_crypto_cipher_mismatches_total ${ep.cipherMismatches}\\b`));
    assert.equal(ep.handshakeResponsesSent, 0);
    assert.equal(ep.sessions, 0);
    assert.equal(pair.a.gateway.status().crypto.endpoint!.sessions, 0);
    assert.equal(pair.logA.find('secure session established'), undefined);
    assert.equal(pair.logB.find('secure session established'), undefined);
  } finally {
    await pair.stop();
    await target.close();
  }
});
