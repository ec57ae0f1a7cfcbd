// The tunnel stream's open header: the first bytes a gateway writes on a stream it opens
// name the target the far gateway should connect to (see docs/protocol.md "Tunnel streams").
//
//   u8 version (1) | u8 host length N (1..255) | N bytes host (ASCII) | u16 port (big endian)
//
// Everything after the header, in both directions, is compression blocks.
import type { Endpoint } from './address.ts';

export const OPEN_HEADER_VERSION = 1;
export const MAX_OPEN_HEADER = 2 + 255 + 2;

/** Stream reset codes the gateway uses (application codes, carried by RESET_STREAM). */
export const ResetCode = {
  /** Client or target sent a TCP RST / errored. */
  peerReset: 0x101,
  /** Target not in the far gateway's allow-list. */
  refused: 0x102,
  /** Target refused the TCP connection or could not be resolved. */
  targetUnreachable: 0x103,
  /** Target did not answer the TCP handshake in time. */
  targetTimeout: 0x104,
  /** Malformed open header or compression block. */
  protocolError: 0x105,
  /** The gateway is shutting down and the grace period ended. */
  shutdown: 0x106,
  /** The far gateway is at its connection limit. */
  overloaded: 0x107,
} as const;

export function describeReset(code: number): string {
  switch (code) {
    case ResetCode.peerReset:
      return 'connection reset on the far side';
    case ResetCode.refused:
      return 'target refused by the far gateway allow-list';
    case ResetCode.targetUnreachable:
      return 'target unreachable (connection refused or name not resolved)';
    case ResetCode.targetTimeout:
      return 'target did not answer in time';
    case ResetCode.protocolError:
      return 'tunnel protocol error';
    case ResetCode.shutdown:
      return 'far gateway shutting down';
    case ResetCode.overloaded:
      return 'far gateway at its connection limit';
    default:
      return `stream reset (code ${code})`;
  }
}

export function encodeOpenHeader(target: Endpoint): Uint8Array {
  const host = Buffer.from(target.host, 'ascii');
  if (host.length < 1 || host.length > 255) throw new RangeError(`target host length ${host.length} not in 1..255`);
  const out = Buffer.allocUnsafe(4 + host.length);
  out[0] = OPEN_HEADER_VERSION;
  out[1] = host.length;
  host.copy(out, 2);
  out.writeUInt16BE(target.port, 2 + host.length);
  return out;
}

export type OpenHeaderResult =
  | { status: 'incomplete' }
  | { status: 'ok'; target: Endpoint; length: number }
  | { status: 'error'; reason: string };

/** Parses the header from the start of `buf` (the bytes received so far). */
export function decodeOpenHeader(buf: Uint8Array): OpenHeaderResult {
  if (buf.length < 2) return { status: 'incomplete' };
  if (buf[0] !== OPEN_HEADER_VERSION) return { status: 'error', reason: `unknown open header version ${buf[0]}` };
  const n = buf[1]!;
  if (n === 0) return { status: 'error', reason: 'empty target host' };
  if (buf.length < 4 + n) return { status: 'incomplete' };
  const host = Buffer.from(buf.buffer, buf.byteOffset + 2, n).toString('latin1');
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) return { status: 'error', reason: 'target host has invalid characters' };
  const port = (buf[2 + n]! << 8) | buf[3 + n]!;
  if (port === 0) return { status: 'error', reason: 'target port 0' };
  return { status: 'ok', target: { host, port }, length: 4 + n };
}
