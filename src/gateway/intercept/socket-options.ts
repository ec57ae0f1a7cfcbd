// IP_TRANSPARENT listeners and SO_ORIGINAL_DST, which Node's net module cannot reach, through
// the small native addon native/lh_sock.c. Interception has no fallback without it: the error
// says how to build it.
import type { Socket } from 'node:net';
import type { Endpoint } from '../address.ts';
import { loadAddon } from '../../native/load.ts';

interface SockAddon {
  listen(host: string, port: number, backlog: number, transparent: boolean): number;
  originalDestination(fd: number): Endpoint | null;
}

function addon(): SockAddon {
  const a = loadAddon<SockAddon>('lh_sock');
  if (!a.ok) throw new Error(`transparent interception needs the lh_sock addon: ${a.error}`);
  return a.addon;
}

/** A bound, listening TCP socket's descriptor (IP_TRANSPARENT when `transparent`), for net.Server.listen({ fd }). */
export function listenFd(listen: Endpoint, backlog: number, transparent: boolean): number {
  return addon().listen(listen.host, listen.port, backlog, transparent);
}

/** An accepted socket's descriptor (libuv's, on Linux), or null once it is closed. */
export function socketFd(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

/** The destination before REDIRECT / DNAT rewrote it; null when conntrack holds no NAT for the connection. */
export function natOriginalDestination(socket: Socket): Endpoint | null {
  const fd = socketFd(socket);
  if (fd === null) return null;
  return addon().originalDestination(fd);
}
