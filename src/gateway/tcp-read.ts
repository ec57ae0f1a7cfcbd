// TCP reads into one buffer shared by every socket of the gateway, instead of a fresh 64 KiB
// ArrayBuffer per read.
//
// Why: the sending gateway reads ~16,000 buffers per GiB and copies each into a stream's send
// ring at once. Every one of them was an ArrayBuffer whose external memory V8 counts, and that
// count drove major garbage collections: ~28% of the sending gateway's CPU in the lab went to
// V8's marking threads (perf, 1 Gbit/s, bench/results/datapath-2026-12-06.md). A shared buffer
// also bounds what a paused socket holds: a read callback that returns false stops reading at
// once, where a paused stream keeps the reads it has already made.
//
// How: Node offers this as `onread` for sockets it creates (`new Socket({ onread })`), not for
// the ones a server accepts. Accepted sockets carry the same internal slots, so they are filled
// in the same way (found by their symbols' names); where they are missing (another Node), the
// caller falls back to 'data' events. The callback must consume the bytes before it returns:
// the next read, of any socket, overwrites them.
import type { Socket } from 'node:net';

const SHARED_READ_BYTES = 64 * 1024;
const shared = Buffer.allocUnsafe(SHARED_READ_BYTES);

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
  reading?: boolean;
}

function slot(socket: Socket, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(socket).find((s) => s.description === name);
}

/**
 * Routes `socket`'s reads into the shared buffer and calls `onRead` with a view of each read;
 * returning false pauses the socket. Must be called before the socket starts reading (paused,
 * as accepted with pauseOnConnect or paused before connecting). False if this Node does not
 * offer the slots: use 'data' events then.
 */
export function readIntoSharedBuffer(socket: Socket, onRead: (data: Buffer) => boolean): boolean {
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle;
  const kBuffer = slot(socket, 'kBuffer');
  const kBufferCb = slot(socket, 'kBufferCb');
  const kBufferGen = slot(socket, 'kBufferGen');
  if (!handle || typeof handle.useUserBuffer !== 'function' || handle.reading || !kBuffer || !kBufferCb || !kBufferGen) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  fields[kBuffer] = shared;
  fields[kBufferGen] = null;
  fields[kBufferCb] = (nread: number, buffer: Buffer): boolean => onRead(buffer.subarray(0, nread));
  handle.useUserBuffer(shared);
  return true;
}

/** True if `data` is (a view of) the shared read buffer, so it must be copied to be kept. */
export function isSharedReadBuffer(data: Uint8Array): boolean {
  return data.buffer === shared.buffer;
}
