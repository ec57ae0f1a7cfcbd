// Sealing outbound transport datagrams (WireGuard's send.go).
//
// Outbound flow, as the gateway runs it (src/gateway/wan-security.ts, a transmitter per peer):
//   1. readyToSeal: are there keys to seal under now? If not, a handshake starts and the gateway
//      holds the transport's datagrams until 'established' (then seals each with seal()).
//   2. The transport writes its datagrams into the peer's batch buffer, each behind HEADER_ROOM
//      bytes of header room and followed by room for the tag (OVERHEAD bytes in all).
//   3. sealRun: headers and consecutive counters written, the whole run sealed in place in one
//      AEAD call (the per-call cost is a third of a 1400-byte seal).
//   4. The finished batch goes to the socket. A rekey that sealing started is in pollTransmit.
//
// Buffer ownership: the caller owns the batch buffer throughout. sealRun seals it in place within
// the call and keeps no reference: when it returns the datagrams are finished, and the buffer may
// go to the socket and be reused at once. seal() returns a new buffer, the caller's.
import type { PeerId, PeerState } from './peer.ts';
import { type Keypair, sealData, sealDataRun } from './keypair.ts';
import type { Sessions } from './sessions.ts';

/** True when packets to `peer` can be sealed now; otherwise false, and a handshake is started if none is under way. */
export function readyToSeal(s: Sessions, peer: PeerId, now: number): boolean {
  return sendKeys(s, s.requirePeer(peer), now) !== null;
}

/** One datagram sealed into a new buffer, or null without a usable session (off the hot path: held datagrams, probes). */
export function seal(s: Sessions, peer: PeerId, plaintext: Uint8Array, now: number): Uint8Array | null {
  const p = s.requirePeer(peer);
  const kp = sendKeys(s, p, now);
  if (kp === null) return null;
  const out = sealData(kp, plaintext);
  afterSeal(s, p, kp, now, 1);
  return out;
}

/**
 * Seals `count` datagrams laid back to back in buf from byte `at` (datagram i is lens[from + i]
 * bytes: header room, plaintext, tag room) in place under consecutive counters. False when there
 * is no usable session (or the run would pass the counter limit): the caller drops the run.
 */
export function sealRun(
  s: Sessions,
  peer: PeerId,
  buf: Uint8Array,
  lens: Int32Array,
  from: number,
  count: number,
  at: number,
  now: number,
): boolean {
  const p = s.requirePeer(peer);
  const kp = sendKeys(s, p, now);
  if (kp === null || kp.sendCounter + count > s.limits.rejectAfterMessages) return false;
  sealDataRun(kp, buf, lens, from, count, at);
  afterSeal(s, p, kp, now, count);
  return true;
}

/** The keys to seal under now, or null (then a handshake is started if none is under way). */
function sendKeys(s: Sessions, p: PeerState, now: number): Keypair | null {
  const kp = p.current;
  if (!kp || now - kp.createdAt >= s.limits.rejectAfterMs || kp.sendCounter >= s.limits.rejectAfterMessages) {
    s.startRekey(p, now);
    return null;
  }
  return kp;
}

/** Counts what was sealed and starts a rekey once the keys are old or worn (WireGuard's keepKeyFreshSending). */
function afterSeal(s: Sessions, p: PeerState, kp: Keypair, now: number, packets: number): void {
  s.counters.packetsSealed += packets;
  kp.lastSealAt = now;
  if (kp.sendCounter >= s.limits.rekeyAfterMessages || now - kp.createdAt >= s.rekeyAge(kp)) s.startRekey(p, now);
}
