import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StandingQueue } from '../../src/transport/congestion/standing-queue.ts';

/** `n` rounds of `roundMs` each after `from` (advanced in place), whose smallest RTT is `rttMs`: whether a queue was detected. */
function rounds(q: StandingQueue, from: { round: number; now: number }, n: number, roundMs: number, rttMs: number): boolean {
  let detected = false;
  for (let i = 0; i < n; i++) {
    from.round++;
    from.now += roundMs;
    q.onRound(from.round, rttMs, from.now);
    if (q.takeDetection()) detected = true;
  }
  return detected;
}

test('on a 20 ms path three rounds of queue are a standing queue', () => {
  const q = new StandingQueue();
  const at = { round: 0, now: 0 };
  assert.equal(rounds(q, at, 30, 20, 20), false, 'no queue at the base RTT');
  assert.equal(rounds(q, at, 2, 32, 32), false, 'two rounds are not enough');
  assert.equal(rounds(q, at, 1, 32, 32), true, 'the third round detects it');
});

test('on a sub-millisecond path the queue must also stand for 30 ms: shorter hiccups of the hosts are not one', () => {
  const q = new StandingQueue();
  const at = { round: 0, now: 0 };
  assert.equal(rounds(q, at, 30, 0.5, 0.5), false, 'no queue at the base RTT');
  // 3 ms rounds at 3 ms RTT (a host busy for 10 ms): over the threshold (1.25 x 0.5 + 1 ms), 4 rounds.
  assert.equal(rounds(q, at, 4, 3, 3), false, 'a 12 ms spell is not a standing queue');
  assert.equal(rounds(q, at, 1, 0.5, 0.5), false, 'the base RTT is back');
  // A queue that stays: detected once it has stood 30 ms after its first round.
  assert.equal(rounds(q, at, 10, 3, 3), false, 'not before 30 ms');
  assert.equal(rounds(q, at, 1, 3, 3), true, 'detected after 30 ms');
});
