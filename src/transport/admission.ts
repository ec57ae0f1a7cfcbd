// Checks a packet's frames against the association's state before any is applied, so a packet
// is either applied whole or dropped whole (hostile input leaves the state as it was).

import { HandshakeKind, type Frame } from './frame.ts';
import type { StreamsState } from './streams/state.ts';

/**
 * True when every frame may be applied. `open`: the handshake completed (frames after a
 * HANDSHAKE frame see the association open too); `cidKnown`: a server has seen the client's INIT.
 */
export function admitFrames(frames: Frame[], role: 'client' | 'server', open: boolean, cidKnown: boolean, streams: StreamsState): boolean {
  let handshakeDone = open;
  let sawInit = false;
  streams.beginAdmission();
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    switch (f.type) {
      case 'handshake':
        if (f.kind === HandshakeKind.INIT) {
          if (role !== 'server') return false;
          sawInit = true;
        } else if (role !== 'client') {
          return false;
        }
        handshakeDone = true;
        break;
      case 'padding':
      case 'ping':
      case 'close':
        break;
      case 'ack':
        if (!cidKnown) return false;
        break;
      case 'max-data':
      case 'max-streams':
        if (!handshakeDone) return false;
        break;
      case 'max-stream-data':
        if (!handshakeDone || !streams.isValidId(f.streamId)) return false;
        break;
      case 'stream':
      case 'reset-stream':
        if (!handshakeDone || !streams.admit(f)) return false;
        break;
    }
  }
  if (!cidKnown && !sawInit) return false;
  return streams.admitsAll();
}
