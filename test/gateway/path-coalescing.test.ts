// How long a peer's datagrams are left to gather before a read (and so before an ack): the link's
// configured pause on fast or short paths, up to an eighth of the RTT on slow, long ones.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathCoalescingUs } from '../../src/gateway/udp-link.ts';

test('a fast stream (1 Gbit/s: ~83k datagrams a second) keeps the configured pause on any RTT', () => {
  for (const rtt of [0.3, 5, 12, 25, 100]) assert.equal(pathCoalescingUs(1000, rtt, 83_000), 1000, `RTT ${rtt} ms`);
});

test('a 100 Mbit/s stream (~8k datagrams a second) is held for an eighth of the RTT, up to 3 ms', () => {
  assert.equal(pathCoalescingUs(1000, 20.8, 8200), 2600, 'mpls: 25 ms profile, 20.8 ms min RTT');
  assert.equal(pathCoalescingUs(1000, 12, 8200), 1500, 'metro RTT');
  assert.equal(pathCoalescingUs(1000, 100, 8200), 3000, 'a 100 ms path: capped at 3 ms');
  assert.equal(pathCoalescingUs(1000, 5, 8200), 1000, 'RTT/8 below the configured pause: the configured pause');
});

test('the pause lasts no longer than 32 datagrams take to come', () => {
  // 16k datagrams a second fill 32 in 2 ms, before the RTT's eighth (3 ms cap).
  assert.equal(pathCoalescingUs(1000, 100, 16_000), 2000);
});

test('acks, idle peers, unmeasured RTTs and coalescing turned off keep the configured pause', () => {
  assert.equal(pathCoalescingUs(1000, 25, 500), 1000, 'a sender reading 500 acks a second');
  assert.equal(pathCoalescingUs(1000, 25, 3999), 1000, 'fewer than 4 datagrams per configured pause');
  assert.equal(pathCoalescingUs(1000, 25, 0), 1000, 'idle: the next transfer may start at any rate');
  assert.equal(pathCoalescingUs(1000, 0, 8200), 1000, 'no RTT sample yet');
  assert.equal(pathCoalescingUs(1000, Number.NaN, 8200), 1000);
  assert.equal(pathCoalescingUs(0, 25, 8200), 0, 'coalescing off stays off');
  assert.equal(pathCoalescingUs(250, 25, 20_000), 1600, 'a smaller configured pause: 32 datagrams at 20k/s');
});
