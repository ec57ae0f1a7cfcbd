// A wrong key on either side: the handshake fails in silence on the wire (the answering side
// tells a stranger nothing), so each gateway says it in its own log, once however often the
// opening side retries: the answering side names the source and what is wrong with its key, the
// opening side that its handshake goes unanswered and what to check. The waiting client is reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { makeKeys, startPair } from './helpers.ts';
import type { Pair } from './helpers.ts';

/** A client of the tunnel (it makes A open the association), and how its connection ended. */
function client(port: number): { socket: Socket; ended: Promise<string> } {
  const socket = connect({ port, host: '127.0.0.1' });
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.on('end', () => resolve('clean close'));
  });
  return { socket, ended };
}

// The client waits this long for the association, then is reset.
const CONNECT_WAIT_MS = 1500;

async function expectBothSidesExplain(pair: Pair, answering: RegExp, counted: () => number): Promise<void> {
  const c = client(pair.port);
  const started = Date.now();
  try {
    const b = await pair.logB.waitFor(answering, () => true, 5000);
    assert.equal(b.level, 40);
    assert.equal(b.source, `127.0.0.1:${pair.a.gateway.wanAddress.port}`);
    // The client is not left hanging, nor handed a clean close (an empty reply): a reset.
    assert.equal(await c.ended, 'ECONNRESET');
    assert.ok(Date.now() - started < CONNECT_WAIT_MS + 2000, `reset after ${Date.now() - started} ms`);
    // The opening side, at its first retransmission (5 s): actionable, naming the key.
    const a = await pair.logA.waitFor(/^no answer to the handshake/, () => true, 9000);
    assert.equal(a.peer, 'b');
    assert.match(a.msg, /does not accept our key/);
    assert.ok((a.waitedMs as number) >= 3000, `warned after ${String(a.waitedMs)} ms`);
    // The retransmission reaches B too: counted, not logged again.
    for (let i = 0; i < 100 && counted() < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(counted() >= 2, `B saw ${counted()} initiations`);
    assert.equal(pair.logB.lines.filter((l) => answering.test(l.msg)).length, 1, 'B logs once for repeated initiations');
    assert.equal(pair.logA.lines.filter((l) => l.msg.startsWith('no answer to the handshake')).length, 1);
    assert.equal(pair.b.gateway.status().associations.length, 0);
  } finally {
    c.socket.destroy();
  }
}

test('the answering gateway does not know our key: it logs "handshake from ... with an unknown key", we log that nobody answers', {
  timeout: 30_000,
}, async () => {
  const keys = makeKeys();
  const stranger = makeKeys();
  // B's peer entry holds some other gateway's key, not A's.
  const pair = await startPair({
    target: '127.0.0.1:9',
    allow: ['127.0.0.1'],
    keys: { ...keys, aPub: stranger.aPub },
    limits: { connectWaitMs: CONNECT_WAIT_MS },
  });
  try {
    await expectBothSidesExplain(
      pair,
      /^handshake from 127\.0\.0\.1:\d+ with an unknown key/,
      () => pair.b.gateway.status().crypto.endpoint!.unknownPeers,
    );
  } finally {
    await pair.stop();
  }
});

test('we hold the wrong key for the answering gateway: it logs a handshake "for another key", we log that nobody answers', {
  timeout: 30_000,
}, async () => {
  const keys = makeKeys();
  const stranger = makeKeys();
  // A encrypts to some other gateway's key, not B's.
  const pair = await startPair({
    target: '127.0.0.1:9',
    allow: ['127.0.0.1'],
    keys: { ...keys, bPub: stranger.bPub },
    limits: { connectWaitMs: CONNECT_WAIT_MS },
  });
  try {
    await expectBothSidesExplain(
      pair,
      /^handshake from 127\.0\.0\.1:\d+ for another key/,
      () => pair.b.gateway.status().crypto.endpoint!.invalidMac1,
    );
  } finally {
    await pair.stop();
  }
});
