import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Association, type AssociationSetup } from '../../src/gateway/association.ts';
import { OutageWatch } from '../../src/gateway/outage.ts';
import { SwitchableRateController } from '../../src/gateway/rate-switch.ts';
import { fixedRateController } from '../../src/transport/index.ts';
import type { TransportConnection } from '../../src/transport/types.ts';

/**
 * A core whose next deadline is always `aheadMs` from now (a pacer waiting for tokens)
 * and that never has anything to send; `limit` calls to nextTimeout later it goes quiet,
 * so a driver that spins on such deadlines ends instead of looping forever.
 */
function waitingCore(aheadMs: number, limit = 1000): TransportConnection & { timeouts: number } {
  const core = {
    timeouts: 0,
    isClosed: false,
    isConnected: true,
    nextTimeout(): number | null {
      if (++core.timeouts > limit) return null;
      return performance.now() + aheadMs;
    },
    handleTimeout(): void {},
    pollTransmit: () => null,
    pollEvent: () => null,
    stats: () => ({ streamBytesSent: 0 }),
  };
  return core as unknown as TransportConnection & { timeouts: number };
}

const hooks = { transmit: (): number => 0, onConnected(): void {}, onStreamOpened(): void {}, onClosed(): void {} };

function setup(): AssociationSetup {
  return {
    peerName: 'peer',
    role: 'client',
    remote: { host: '127.0.0.1', port: 1 },
    watch: null,
    outage: new OutageWatch(2000),
    rate: new SwitchableRateController(fixedRateController({ rateBps: 1e6 })()),
  };
}

test('driver sleeps on a timer while the pacer waits for tokens, instead of spinning with setImmediate', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
  t.after(() => mock.timers.reset());
  const assoc = new Association(waitingCore(0.2), setup(), hooks);
  assoc.schedule();
  mock.timers.tick(0);
  assert.equal(assoc.driver.flushes, 1, 'one flush, then nothing until the timer');
  assert.equal(assoc.driver.timerWakeups, 0);
  mock.timers.tick(1);
  assert.equal(assoc.driver.timerWakeups, 1, 'the timer woke the driver');
  assert.equal(assoc.driver.flushes, 2);
  assoc.abandon('test over');
});

test('driver serves a deadline already due at once, without a timer', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
  t.after(() => mock.timers.reset());
  // Due now (events queued after the last poll): the next flush must not wait a millisecond.
  const assoc = new Association(waitingCore(-5, 3), setup(), hooks);
  assoc.schedule();
  mock.timers.tick(0);
  mock.timers.tick(0);
  assert.equal(assoc.driver.flushes, 2, 'a second flush ran in the same millisecond');
  assert.equal(assoc.driver.timerWakeups, 0);
  assoc.abandon('test over');
});

test('bytes a stream reset dropped unsent leave the send backlog, so later connections are not stalled', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
  t.after(() => mock.timers.reset());
  // A core that accepts writes and sends nothing (a full window); a reset drops what is unsent,
  // as Connection.resetSendSide does.
  const core = {
    isClosed: false,
    isConnected: true,
    written: 0,
    nextTimeout: (): number | null => null,
    handleTimeout(): void {},
    pollTransmit: () => null,
    pollEvent: () => null,
    write(_id: number, data: Uint8Array): number {
      core.written += data.length;
      return data.length;
    },
    resetAll(): void {
      core.written = 0;
    },
    stats: () => ({ streamBytesSent: 0, streamBytesWritten: core.written }),
  };
  const limit = 1024 * 1024;
  const assoc = new Association(core as unknown as TransportConnection, setup(), hooks, limit);
  assoc.write(1, new Uint8Array(2 * limit));
  mock.timers.tick(0);
  let resumed = false;
  assert.equal(
    assoc.sendBacklogFull(() => {
      resumed = true;
    }),
    true,
    'a full backlog pauses TCP readers',
  );
  core.resetAll();
  assoc.schedule();
  mock.timers.tick(0);
  assert.equal(assoc.backlog().bytes, 0);
  assert.equal(resumed, true, 'the paused reader was resumed');
  assert.equal(
    assoc.sendBacklogFull(() => {}),
    false,
    'a new connection may read',
  );
  assoc.abandon('test over');
});
