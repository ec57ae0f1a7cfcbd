// The gateway restarts itself in place with a small young generation (src/cli/gateway-heap.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GATEWAY_SEMI_SPACE_MIB, gatewayRestartArgs } from '../../src/cli/gateway-heap.ts';
import { freeUdpPort, spawnGateway, stopChild } from '../gateway/helpers.ts';

const FLAG = `--max-semi-space-size=${GATEWAY_SEMI_SPACE_MIB}`;

test('the restart adds the semi-space flag once, ahead of the node flags already given', () => {
  assert.deepEqual(gatewayRestartArgs([], undefined), [FLAG]);
  assert.deepEqual(gatewayRestartArgs(['--cpu-prof'], ''), [FLAG, '--cpu-prof']);
  // Already ours (after the restart), or the operator's own: no restart.
  assert.equal(gatewayRestartArgs([FLAG], undefined), null);
  assert.equal(gatewayRestartArgs(['--max-semi-space-size', '8'], undefined), null);
  assert.equal(gatewayRestartArgs(['--max_semi_space_size=8'], undefined), null);
  assert.equal(gatewayRestartArgs([], '--max-old-space-size=512 --max-semi-space-size=16'), null);
  assert.deepEqual(gatewayRestartArgs([], '--max-old-space-size=512'), [FLAG]);
});

test('a gateway started from the command line runs with the flag, under the PID it was started with', async (t) => {
  const port = await freeUdpPort();
  const gw = await spawnGateway(['--insecure-plaintext', '--wan', `127.0.0.1:${port}`, '--allow', '127.0.0.1']);
  t.after(() => stopChild(gw));
  const cmdline = readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8').split('\0');
  assert.ok(cmdline.includes(FLAG), `cmdline: ${cmdline.join(' ')}`);
  assert.ok(cmdline.includes('gateway'), 'the same command, restarted in place');
});
