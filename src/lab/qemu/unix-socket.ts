// Connecting to a QEMU socket that may not exist yet: QEMU creates its QMP and chardev sockets
// a moment after it starts, so connects are retried every 100 ms until a deadline.

import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const RETRY_MS = 100;

/**
 * Connects to `path` and hands the socket to `setUp` (which may wait for a greeting), retrying
 * both until `timeoutMs` has passed; the error names `what` and the last failure.
 */
export async function connectWithRetry<T>(
  path: string,
  timeoutMs: number,
  what: string,
  setUp: (socket: Socket, deadline: number) => Promise<T> | T,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const socket = await new Promise<Socket>((done, fail) => {
        const s = connect(path);
        s.once('connect', () => {
          s.off('error', fail);
          done(s);
        });
        s.once('error', fail);
      });
      return await setUp(socket, deadline);
    } catch (e) {
      last = e;
      await sleep(RETRY_MS);
    }
  }
  throw new Error(`${what} on ${path}: not ready within ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`);
}
