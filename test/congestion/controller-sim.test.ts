// The rate controllers driving a minimal packet pump (toy-flow.ts) over simulated links:
// their behaviour on real queue dynamics, independent of the transport core.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, linkOptionsFromProfile } from '../../src/sim/simulation.ts';
import { ModelBasedController } from '../../src/transport/congestion/model-based.ts';
import { FixedRateController } from '../../src/transport/congestion/fixed-rate.ts';
import { findProfile, type LinkProfile } from '../../src/link/profiles.ts';
import type { RateController } from '../../src/transport/congestion/controller.ts';
import { Prng } from '../../src/sim/prng.ts';
import type { Link } from '../../src/sim/link.ts';
import { ToyReceiver, ToySender } from './toy-flow.ts';

// UDP payload share of the wire with 1452-byte datagrams and 28 bytes of IP/UDP headers.
const PAYLOAD_SHARE = 1452 / 1480;

interface Flow {
  sender: ToySender;
  receiver: ToyReceiver;
}

function setup(p: LinkProfile, seed: number): { sim: Simulation; fwd: Link; add: (c: RateController) => Flow } {
  const sim = new Simulation({ seed });
  const fwd = sim.createLink('forward', linkOptionsFromProfile(p));
  const rev = sim.createLink('reverse', linkOptionsFromProfile(p));
  const add = (c: RateController): Flow => {
    const sender = new ToySender(c);
    const receiver = new ToyReceiver();
    const a = sim.addNode(sender);
    const b = sim.addNode(receiver);
    sim.route(a, b, fwd);
    sim.route(b, a, rev);
    sim.wake(a);
    return { sender, receiver };
  };
  return { sim, fwd, add };
}

/** Link utilization by `flow` between t0 and t1 (payload delivered / payload capacity). */
function utilization(sim: Simulation, flow: Flow, rateBps: number, t0: number, t1: number): number {
  let at0 = 0;
  sim.at(t0, () => (at0 = flow.receiver.bytesReceived));
  sim.run({ until: t1 });
  return ((flow.receiver.bytesReceived - at0) * 8000) / (t1 - t0) / (rateBps * PAYLOAD_SHARE);
}

test('model-based: 3% random loss keeps the link full, with no bufferbloat', () => {
  const p = findProfile('loss3')!;
  const { sim, fwd, add } = setup(p, 1);
  const rng = new Prng(2);
  const flow = add(new ModelBasedController({ random: () => rng.next() }));
  const u = utilization(sim, flow, p.rateBps, 1000, 3000);
  // What got through is 97% of what the link carried.
  assert.ok(u > 0.9, `utilization ${u}`);
  assert.ok(fwd.stats().queueDelayMsMean < p.rttMs / 2, `queue ${fwd.stats().queueDelayMsMean} ms`);
});

test('model-based: when the path capacity halves, the rate follows and the queue stops overflowing', () => {
  const p: LinkProfile = { name: 'drop', description: '', rateBps: 400e6, rttMs: 20, lossRate: 0, jitterMs: 0, queueMs: 20 };
  const { sim, fwd, add } = setup(p, 3);
  const rng = new Prng(4);
  const c = new ModelBasedController({ random: () => rng.next() });
  const flow = add(c);
  sim.run({ until: 1500 });
  assert.ok(c.bandwidthEstimateBps() > 0.9 * p.rateBps * PAYLOAD_SHARE);
  fwd.setRate(200e6);
  sim.run({ until: 2500 });
  const dropsBefore = fwd.stats().queueDrops;
  const u = utilization(sim, flow, 200e6, 2500, 4000);
  assert.ok(c.bandwidthEstimateBps() < 1.15 * 200e6, `estimate ${c.bandwidthEstimateBps()}`);
  assert.ok(u > 0.85, `utilization after the change ${u}`);
  assert.ok(fwd.stats().queueDrops - dropsBefore < 50, `drops ${fwd.stats().queueDrops - dropsBefore}`);
});

test('model-based: two flows sharing a bottleneck converge to fair shares', () => {
  const p: LinkProfile = { name: 'shared', description: '', rateBps: 200e6, rttMs: 20, lossRate: 0, jitterMs: 0, queueMs: 20 };
  const { sim, add } = setup(p, 5);
  const rng = new Prng(6);
  const flows: Flow[] = [add(new ModelBasedController({ random: () => rng.next() }))];
  sim.at(1000, () => flows.push(add(new ModelBasedController({ random: () => rng.next() }))));
  sim.run({ until: 8000 });
  const at = flows.map((f) => f.receiver.bytesReceived);
  sim.run({ until: 10_000 });
  const got = flows.map((f, i) => f.receiver.bytesReceived - at[i]!);
  const total = got[0]! + got[1]!;
  for (const g of got) assert.ok(g / total >= 0.4 && g / total <= 0.6, `shares ${got.map((x) => (x / total).toFixed(2))}`);
  assert.ok((total * 8) / 2 / (p.rateBps * PAYLOAD_SHARE) > 0.85, 'the link stays busy');
});

test('fixed-rate: paces at the committed rate through loss and never overflows a faster link', () => {
  const p = findProfile('loss3')!;
  const { sim, fwd, add } = setup(p, 7);
  const flow = add(new FixedRateController({ rateBps: 600e6 }));
  let at0 = 0;
  sim.at(500, () => (at0 = flow.sender.packetsSent));
  sim.run({ until: 1500 });
  const sentBps = (flow.sender.packetsSent - at0) * 1452 * 8; // over exactly 1 s
  assert.ok(Math.abs(sentBps - 600e6) < 0.02 * 600e6, `sending rate ${sentBps}`);
  assert.equal(fwd.stats().queueDrops, 0);
});
