// Every stream reset from the peer reaches the TCP client as a reset: the peer's own reset, and
// just as much a target that was refused by the allow-list, unreachable, silent past its connect
// timeout, or over the far gateway's connection limit (a clean close would read as an empty reply).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { BlockDecoder, BlockEncoder } from '../../src/codec/index.ts';
import type { Association } from '../../src/gateway/association.ts';
import { StreamBridge } from '../../src/gateway/bridge.ts';
import type { BridgeSummary } from '../../src/gateway/bridge.ts';
import { ResetCode } from '../../src/gateway/open-header.ts';

/** Just what a bridge touches of its association: a stream that never has data. */
function stubAssociation(): Association {
  return {
    streams: new Map(),
    read: () => null,
    finish: () => {},
    resetStream: () => {},
    readView: () => null,
    reading: () => {},
    release: () => {},
    isClosed: false,
    schedule: () => {},
    cancelBacklogWait: () => {},
    backlog: () => ({ bytes: 0, blockedReaders: 0 }),
    sendBacklogFull: () => false,
    write: (_id: number, data: Uint8Array) => data.length,
  } as unknown as Association;
}

for (const [name, code] of Object.entries(ResetCode)) {
  test(`reset code ${name} (0x${code.toString(16)}) from the peer resets the client's TCP connection`, { timeout: 10_000 }, async () => {
    let accepted: (s: Socket) => void = () => {};
    const acceptedP = new Promise<Socket>((r) => {
      accepted = r;
    });
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => accepted(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1' });
    const seen = new Promise<string>((resolve) => {
      client.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      client.on('end', () => resolve('clean close'));
    });
    client.on('data', () => {});
    try {
      const socket = await acceptedP;
      let summary: BridgeSummary | null = null;
      const bridge = new StreamBridge({
        assoc: stubAssociation(),
        streamId: 4,
        socket,
        encoder: new BlockEncoder({ mode: 'none' }),
        decoder: new BlockDecoder(),
        traffic: { rawOut: 0, rawIn: 0, readYields: 0 },
        onDone: (s) => {
          summary = s;
        },
      });
      bridge.onReset(code);
      assert.equal(await seen, 'ECONNRESET');
      for (let i = 0; i < 100 && summary === null; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(summary!.end, 'reset-remote');
    } finally {
      client.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
}
