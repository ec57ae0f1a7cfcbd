// The gateway's TCP reads go into one shared buffer (tcp-read.ts). It relies on Node's internal
// slots for `onread`, so these tests pin that it still works on the pinned Node: for accepted
// and for connected sockets, byte-exact, and a callback that returns false stops reading.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { isSharedReadBuffer, readIntoSharedBuffer } from '../../src/gateway/tcp-read.ts';

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

test('accepted and connected sockets read into the shared buffer, byte-exact, both ways at once', async () => {
  const payload = randomBytes(4 * 1024 * 1024);
  const got = { server: createHash('sha256'), client: createHash('sha256') };
  const counts = { server: 0, client: 0, sharedViews: 0 };
  let ended = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const attach = (s: Socket, side: 'server' | 'client'): void => {
    const ok = readIntoSharedBuffer(s, (view) => {
      if (isSharedReadBuffer(view)) counts.sharedViews++;
      got[side].update(view);
      counts[side] += view.length;
      return true;
    });
    assert.equal(ok, true, `${side} socket: this Node offers the onread slots`);
    s.on('end', () => {
      if (++ended === 2) done();
    });
    s.resume();
  };
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
    attach(s, 'server');
    s.end(payload);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  client.pause();
  await new Promise<void>((r) => client.once('connect', r));
  attach(client, 'client');
  client.end(payload);
  await finished;
  server.close();
  assert.equal(counts.server, payload.length);
  assert.equal(counts.client, payload.length);
  assert.equal(got.server.digest('hex'), sha(payload));
  assert.equal(got.client.digest('hex'), sha(payload));
  assert.ok(counts.sharedViews >= 2 * (payload.length / (64 * 1024)), `every read was a view of the shared buffer (${counts.sharedViews})`);
});

test('a read callback that returns false stops reading until resume()', async () => {
  const payload = randomBytes(1024 * 1024);
  let reads = 0;
  let bytes = 0;
  const server = createServer({ pauseOnConnect: true }, (s) => {
    readIntoSharedBuffer(s, (view) => {
      reads++;
      bytes += view.length;
      return false;
    });
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
  client.write(payload);
  await new Promise((r) => setTimeout(r, 300));
  // One read, then nothing: the rest waits in the kernel, not in the process.
  assert.equal(reads, 1);
  assert.ok(bytes > 0 && bytes <= 64 * 1024, `first read ${bytes} bytes`);
  client.destroy();
  server.close();
});
