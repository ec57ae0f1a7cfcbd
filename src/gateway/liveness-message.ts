// Gateway liveness messages (docs/protocol.md "Tunnel streams", liveness probes): carried inside
// packet protection like transport packets, told apart by their first byte (transport packets
// start with their version, 1).
//
//   u8 0xF0 | u8 kind | connection id (8 bytes, as in the transport header)     (10 bytes)
//
// kind 1 PROBE: "do you still have the association with this id?"; answered with
// kind 2 KNOWN or kind 3 UNKNOWN. Only authenticated probes are answered, never anything else.

export const LIVENESS_MARKER = 0xf0;
export const LIVENESS_MESSAGE_SIZE = 10;

export const LivenessKind = { probe: 1, known: 2, unknown: 3 } as const;
export type LivenessKind = (typeof LivenessKind)[keyof typeof LivenessKind];

export interface LivenessMessage {
  kind: LivenessKind;
  cidHi: number;
  cidLo: number;
}

export function encodeLivenessMessage(kind: LivenessKind, cidHi: number, cidLo: number): Uint8Array {
  const b = new Uint8Array(LIVENESS_MESSAGE_SIZE);
  b[0] = LIVENESS_MARKER;
  b[1] = kind;
  const v = new DataView(b.buffer);
  v.setUint32(2, cidHi);
  v.setUint32(6, cidLo);
  return b;
}

/** Null for anything that is not a well-formed liveness message. */
export function decodeLivenessMessage(data: Uint8Array): LivenessMessage | null {
  if (data.length !== LIVENESS_MESSAGE_SIZE || data[0] !== LIVENESS_MARKER) return null;
  const kind = data[1]!;
  if (kind !== LivenessKind.probe && kind !== LivenessKind.known && kind !== LivenessKind.unknown) return null;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { kind, cidHi: v.getUint32(2), cidLo: v.getUint32(6) };
}
