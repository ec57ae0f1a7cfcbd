// Large packets end to end over the simulator, configured as the gateway configures its
// associations for `--mtu 9000` (packets probed up to 8900 bytes, the controller's window
// floor sized for 1452-byte packets, a small receive window so credit updates are needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../src/transport/connection.ts';
import { defaultConnectionConfig } from '../../src/transport/config.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { findProfile } from '../../src/link/profiles.ts';
import { runBulkTransfer } from '../../src/sim/scenarios.ts';

const MiB = 1024 * 1024;

test('8900-byte packets on a sub-millisecond path: credit keeps flowing, the transfer completes', () => {
  // The receiver's window is below one packet (here: a first window of one 1452-byte packet,
  // which a receiver that only acknowledges keeps): before the fix its credit updates, sized as
  // full 8900-byte packets, never fitted and the transfer stalled.
  const r = runBulkTransfer({
    seed: 1,
    profile: findProfile('baseline')!,
    bytes: 24 * MiB,
    streams: 2,
    untilMs: 30_000,
    makeConnection: (role, now, random) =>
      new Connection({
        role,
        now,
        config: defaultConnectionConfig({
          random,
          maxPacketSize: 8900,
          connectionReceiveWindow: 4 * MiB,
          streamReceiveWindow: 4 * MiB,
          rateController: () => new ModelBasedController({ random, ...(role === 'server' ? { initialWindowPackets: 1 } : {}) }),
        }),
      }),
  });
  assert.deepEqual(r.errors, []);
  assert.ok(r.completed && r.byteExact);
  assert.equal(r.client.packetSize, 8900);
  assert.equal(r.server.packetSize, 8900);
  assert.ok(r.server.cwndBytes < 8900, `receiver window ${r.server.cwndBytes} (the case under test)`);
});
