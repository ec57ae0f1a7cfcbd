// Transport packet header (docs/protocol.md "Transport packets").
//
//   0      1      2 ............ 9   10 ........... 15
//   ver    flags  connection id (8)  packet number (48-bit, big endian)
//
// The packet number is never reused and never truncated: a retransmission is a new packet,
// so every acknowledgement gives an unambiguous RTT sample, and 2^48 packets outlast any
// association (89 years at 100k packets/s). The protection layer treats the header as
// associated data and appends its tag after the frames.

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 16;
export const CID_SIZE = 8;
export const MAX_PACKET_NUMBER = 2 ** 48 - 1;

/** Flag bits. Unknown bits are rejected so that a future meaning cannot be silently ignored. */
export const PacketFlags = {
  /** Reserved for the codec/protection layers (payload carries compressed blocks); the core passes it through. */
  COMPRESSED: 0x01,
} as const;
const KNOWN_FLAGS = PacketFlags.COMPRESSED;

export type PacketErrorKind = 'truncated' | 'bad-version' | 'bad-flags';

export interface PacketError {
  error: PacketErrorKind;
  offset: number;
}

/** Decoded header; decoders fill a caller-owned instance so the hot path allocates nothing. */
export interface PacketHeader {
  version: number;
  flags: number;
  /** Connection id as two 32-bit halves (cheap to compare, no bigint). */
  cidHi: number;
  cidLo: number;
  packetNumber: number;
}

// Numbers that span 32 bits (connection ids, handshake indices) start as -0 wherever they are
// stored, here and in the routing and builder fields that hold them. V8 stores a field that
// starts as a small integer (below 2^30) as one; the first larger value changes the hidden class
// of every object of that shape, and the optimized code that relied on the old one is thrown away
// and compiled again. The ids are random, so whether the start-up warm-up already met a large one
// was chance, and a gateway's first transfer recompiled its datapath when it had not
// (bench/results/datapath-2026-12-06.md §22). -0 is a double, so the field is one from the start.
export function newHeader(): PacketHeader {
  return { version: PROTOCOL_VERSION, flags: 0, cidHi: -0, cidLo: -0, packetNumber: -0 };
}

/** Writes a header at buf[at] (default 0); returns where it ends. */
export function writeHeader(buf: Uint8Array, flags: number, cidHi: number, cidLo: number, pn: number, at = 0): number {
  buf[at] = PROTOCOL_VERSION;
  buf[at + 1] = flags;
  buf[at + 2] = cidHi >>> 24;
  buf[at + 3] = (cidHi >>> 16) & 0xff;
  buf[at + 4] = (cidHi >>> 8) & 0xff;
  buf[at + 5] = cidHi & 0xff;
  buf[at + 6] = cidLo >>> 24;
  buf[at + 7] = (cidLo >>> 16) & 0xff;
  buf[at + 8] = (cidLo >>> 8) & 0xff;
  buf[at + 9] = cidLo & 0xff;
  const pnHi = Math.floor(pn / 0x100000000);
  const pnLo = pn >>> 0;
  buf[at + 10] = (pnHi >>> 8) & 0xff;
  buf[at + 11] = pnHi & 0xff;
  buf[at + 12] = pnLo >>> 24;
  buf[at + 13] = (pnLo >>> 16) & 0xff;
  buf[at + 14] = (pnLo >>> 8) & 0xff;
  buf[at + 15] = pnLo & 0xff;
  return at + HEADER_SIZE;
}

/** Parses the header into `out`; returns null on success or a typed error (never throws). */
export function readHeader(buf: Uint8Array, out: PacketHeader): PacketError | null {
  if (buf.length < HEADER_SIZE) return { error: 'truncated', offset: buf.length };
  if (buf[0] !== PROTOCOL_VERSION) return { error: 'bad-version', offset: 0 };
  const flags = buf[1]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) return { error: 'bad-flags', offset: 1 };
  out.version = PROTOCOL_VERSION;
  out.flags = flags;
  out.cidHi = ((buf[2]! << 24) | (buf[3]! << 16) | (buf[4]! << 8) | buf[5]!) >>> 0;
  out.cidLo = ((buf[6]! << 24) | (buf[7]! << 16) | (buf[8]! << 8) | buf[9]!) >>> 0;
  const pnHi = (buf[10]! << 8) | buf[11]!;
  const pnLo = ((buf[12]! << 24) | (buf[13]! << 16) | (buf[14]! << 8) | buf[15]!) >>> 0;
  out.packetNumber = pnHi * 0x100000000 + pnLo;
  return null;
}

/** What a router needs from a transport datagram, read without parsing it (peekRoute). */
export interface PacketRoute {
  cidHi: number;
  cidLo: number;
  /** The packet starts with HANDSHAKE(INIT): only such a packet may open an association. */
  opensAssociation: boolean;
}

// The first frame's type and a HANDSHAKE frame's kind (frame.ts FrameType.HANDSHAKE,
// HandshakeKind.INIT), fixed by the wire format.
const HANDSHAKE_FRAME = 0x0a;
const HANDSHAKE_INIT = 1;

/**
 * Reads `buf`'s connection id into `out` and whether it opens an association, without checking
 * anything else (the core validates the packet). False when too short to be a packet. `out` is
 * the caller's, reused: a router calls this for every datagram.
 */
export function peekRoute(buf: Uint8Array, out: PacketRoute): boolean {
  if (buf.length < HEADER_SIZE) return false;
  out.cidHi = ((buf[2]! << 24) | (buf[3]! << 16) | (buf[4]! << 8) | buf[5]!) >>> 0;
  out.cidLo = ((buf[6]! << 24) | (buf[7]! << 16) | (buf[8]! << 8) | buf[9]!) >>> 0;
  out.opensAssociation = buf.length > HEADER_SIZE + 1 && buf[HEADER_SIZE] === HANDSHAKE_FRAME && buf[HEADER_SIZE + 1] === HANDSHAKE_INIT;
  return true;
}
