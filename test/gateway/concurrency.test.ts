// 1000 concurrent echo connections through a gateway pair (separate processes) over an emulated
// link (delay and random loss): every client gets its bytes back exactly, none is reset, and
// afterwards neither gateway holds a connection or a stream (issue #14: 304 of 1000 reset, and
// streams leaked on the answering gateway).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort, freeUdpPort, makeKeys, sendAndRead, sleep, spawnGateway, startUdpRelay, stopChild } from './helpers.ts';

const CONNECTIONS = 1000;
const BYTES_EACH = 64 * 1024;

interface Status {
  connections: { active: number };
  inbound: { active: number };
  associations: Array<{ activeStreams: number }>;
}

async function status(controlPort: number): Promise<Status> {
  return (await (await fetch(`http://127.0.0.1:${controlPort}/status`)).json()) as Status;
}

function openCounts(s: Status): { connections: number; inbound: number; streams: number } {
  return { connections: s.connections.active, inbound: s.inbound.active, streams: s.associations.reduce((n, a) => n + a.activeStreams, 0) };
}

test(`${CONNECTIONS} concurrent echo connections over a lossy, delayed link: all byte-exact, none reset, nothing left open`, {
  timeout: 180_000,
}, async () => {
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as { port: number }).port;
  const keys = makeKeys();
  const bWan = await freeUdpPort();
  const relay = await startUdpRelay(bWan, { delayMs: 5, lossRate: 0.002 });
  const [listen, ctlA, ctlB] = [await freePort(), await freePort(), await freePort()];
  const procs: ChildProcess[] = [];
  try {
    // A small memory budget keeps the send backlogs full, where the closes used to lose data.
    const common = ['--max-connections', String(CONNECTIONS * 2), '--memory', '64MiB'];
    procs.push(
      await spawnGateway([
        '--name',
        'b',
        '--wan',
        `127.0.0.1:${bWan}`,
        '--key',
        keys.bKey,
        '--peer-key',
        keys.aPub,
        '--allow',
        '127.0.0.1',
        '--control',
        `127.0.0.1:${ctlB}`,
        ...common,
      ]),
    );
    procs.push(
      await spawnGateway([
        '--name',
        'a',
        '--wan',
        '127.0.0.1:0',
        '--peer',
        `127.0.0.1:${relay.port}`,
        '--key',
        keys.aKey,
        '--peer-key',
        keys.bPub,
        '--tunnel',
        `127.0.0.1:${listen}=127.0.0.1:${echoPort}`,
        '--control',
        `127.0.0.1:${ctlA}`,
        ...common,
      ]),
    );

    const results = await Promise.all(Array.from({ length: CONNECTIONS }, () => sendAndRead(listen, randomBytes(BYTES_EACH))));
    const failures = new Map<string, number>();
    for (const r of results) if (r !== 'ok') failures.set(r, (failures.get(r) ?? 0) + 1);
    assert.deepEqual([...failures], [], `${CONNECTIONS - results.filter((r) => r === 'ok').length} of ${CONNECTIONS} failed`);

    // Closed connections' streams are freed once their last acks are in (a few RTTs).
    const deadline = Date.now() + 15_000;
    let counts = [openCounts(await status(ctlA)), openCounts(await status(ctlB))];
    while (counts.some((c) => c.connections + c.inbound + c.streams > 0) && Date.now() < deadline) {
      await sleep(200);
      counts = [openCounts(await status(ctlA)), openCounts(await status(ctlB))];
    }
    const zero = { connections: 0, inbound: 0, streams: 0 };
    assert.deepEqual(counts, [zero, zero], 'open connections, inbound connections and streams at A and B');
  } finally {
    for (const p of procs.reverse()) await stopChild(p);
    await relay.close();
    echo.close();
  }
});
