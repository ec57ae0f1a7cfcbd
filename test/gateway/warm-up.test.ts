// The start-up warm-up (warm-up.ts): a loopback gateway pair inside the process carries its bytes
// byte-count-exact, with the datapath settings of the config it is given, and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { validateConfig } from '../../src/gateway/config.ts';
import { warmUpDatapath } from '../../src/gateway/warm-up.ts';
import { makeKeys } from './helpers.ts';

const leftovers = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith('longhaul-warm-up-'));

test('the warm-up carries its bytes through a loopback gateway pair and removes its keys', async () => {
  const keys = makeKeys();
  const before = leftovers();
  for (const compression of ['auto', 'none'] as const) {
    const r = validateConfig({
      wan: '127.0.0.1:0',
      key: keys.aKey,
      peers: [{ name: 'b', publicKey: keys.bPub }],
      compression,
      cipher: 'chacha20-poly1305',
    });
    assert.ok(r.ok);
    const w = await warmUpDatapath(r.config);
    assert.equal(w.error, undefined);
    assert.equal(w.ok, true);
    assert.ok(w.ms > 0);
  }
  assert.deepEqual(leftovers(), before, 'its key directory is deleted');
});

test('the warm-up reports a failure instead of throwing (an MTU its pair cannot use)', async () => {
  const keys = makeKeys();
  const r = validateConfig({ wan: '127.0.0.1:0', key: keys.aKey, peers: [{ name: 'b', publicKey: keys.bPub }] });
  assert.ok(r.ok);
  const w = await warmUpDatapath({ ...r.config, mtu: 70000 });
  assert.equal(w.ok, false);
  assert.match(w.error ?? '', /mtu/);
});
