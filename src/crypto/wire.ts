// Layouts of the four protected message types (see docs/protocol.md, "Packet protection").
// Byte 0 is the type, bytes 1..3 are zero; integers are little-endian like WireGuard's,
// except TAI64N timestamps, which are big-endian so that byte order is time order.

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_DATA = 4;

export const INITIATION = {
  senderIndex: 4,
  ephemeral: 8,
  encryptedStatic: 40, // 32 + 16 tag
  encryptedTimestamp: 88, // 12 + 16 tag
  mac1: 116,
  mac2: 132,
  size: 148,
} as const;

export const RESPONSE = {
  senderIndex: 4,
  receiverIndex: 8,
  ephemeral: 12,
  encryptedNothing: 44, // 0 + 16 tag
  mac1: 60,
  mac2: 76,
  size: 92,
} as const;

export const COOKIE_REPLY = {
  receiverIndex: 4,
  nonce: 8, // 24 bytes, XChaCha20-Poly1305
  encryptedCookie: 32, // 16 + 16 tag
  size: 64,
} as const;

export const DATA = {
  receiverIndex: 4,
  counter: 8, // u64 LE, also the AEAD nonce's low 8 bytes
  payload: 16,
  headerSize: 16,
} as const;

/** Bytes added to every transport datagram: 16-byte header + 16-byte Poly1305 tag. */
export const DATA_OVERHEAD = DATA.headerSize + 16;

/** Reads the type if bytes 1..3 are zero; -1 otherwise (unknown/garbled framing). */
export function messageType(data: Uint8Array): number {
  if (data.length < 4 || data[1] !== 0 || data[2] !== 0 || data[3] !== 0) return -1;
  return data[0]!;
}

export function readU32(data: Uint8Array, offset: number): number {
  return (data[offset]! | (data[offset + 1]! << 8) | (data[offset + 2]! << 16) | (data[offset + 3]! << 24)) >>> 0;
}

export function writeU32(data: Uint8Array, offset: number, value: number): void {
  data[offset] = value & 0xff;
  data[offset + 1] = (value >>> 8) & 0xff;
  data[offset + 2] = (value >>> 16) & 0xff;
  data[offset + 3] = (value >>> 24) & 0xff;
}
