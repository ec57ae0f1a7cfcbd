// Restart detection for an association we opened: sans-IO, driven by the gateway's liveness
// tick. The transport only notices a dead peer at its idle timeout (peerTimeoutMs, 30 s);
// a peer that restarted lost its keys and association and drops everything we send, silently.
//
// Silence clock: starts when the association is in use (data or a keepalive awaiting an ack,
// or streams open) and resets whenever an authenticated packet arrives. An idle association
// whose keepalives are answered never starts it.
//
//   silent >= restartDetectMs           -> 'probe': ask the peer, under the current keys,
//                                          whether it still has the association
//   no answer within answerWaitMs        -> 'rehandshake': fresh packet-protection handshake
//                                          (a restarted peer answers it), then probe again;
//                                          repeated with exponential backoff while unanswered
//
// A new connection about to use an association that has heard nothing for restartDetectMs
// (an idle one, between keepalives) checks first (`probeNow`) and waits for the verdict, so a
// connection opened just after a peer restart goes over a new association instead of being reset.
//
// The verdict comes from the peer: an authenticated UNKNOWN answer means it restarted. A peer
// that is merely slow answers KNOWN, or its packets resume; nothing is torn down on silence alone.

export type LivenessAction = 'none' | 'probe' | 'rehandshake';

export interface LivenessSample {
  now: number;
  /** When the association last received an authenticated packet (same clock as `now`). */
  lastInputAt: number;
  /** Data or a keepalive awaiting acknowledgement, or open streams. */
  inUse: boolean;
  rttMs: number;
}

// Upper bound on the pause between re-handshakes to a silent peer: a peer that restarted
// during a long outage is found out within this of the link's return.
const MAX_BACKOFF_MS = 15_000;
const MIN_ANSWER_WAIT_MS = 250;

export class LivenessWatch {
  readonly restartDetectMs: number;
  #seenInput = Number.NEGATIVE_INFINITY;
  #silentSince = -1;
  #stage: 0 | 1 | 2 = 0;
  #nextAt = 0;
  #backoffMs: number;

  constructor(restartDetectMs: number) {
    this.restartDetectMs = restartDetectMs;
    this.#backoffMs = restartDetectMs;
  }

  /** True while a probe is out (answered, or packets resume, or the peer says it lost us): new connections wait for the verdict. */
  get suspect(): boolean {
    return this.#stage !== 0;
  }

  /** True when nothing was heard for restartDetectMs: worth checking before new use. */
  quietFor(now: number, lastInputAt: number): boolean {
    return this.#stage === 0 && now - Math.max(lastInputAt, this.#seenInput) >= this.restartDetectMs;
  }

  /** Starts a check at once (the caller sends the probe); false when one is already under way. */
  probeNow(now: number, lastInputAt: number, rttMs: number): boolean {
    if (this.#stage !== 0) return false;
    // Input before this moment is already accounted for: only newer packets answer the check.
    if (lastInputAt > this.#seenInput) this.#seenInput = lastInputAt;
    if (this.#silentSince < 0) this.#silentSince = now;
    this.#stage = 1;
    this.#nextAt = now + this.#answerWait(rttMs);
    return true;
  }

  #answerWait(rttMs: number): number {
    return Math.min(this.restartDetectMs, Math.max(MIN_ANSWER_WAIT_MS, 4 * rttMs));
  }

  /** Milliseconds of silence while in use (0 when not silent). */
  silentMs(now: number): number {
    return this.#silentSince < 0 ? 0 : now - this.#silentSince;
  }

  /** The peer answered a probe: it has the association, so it is alive. */
  heard(now: number): void {
    this.#seenInput = now;
    this.#reset();
  }

  check(s: LivenessSample): LivenessAction {
    if (s.lastInputAt > this.#seenInput) {
      this.#seenInput = s.lastInputAt;
      this.#reset();
    }
    if (this.#silentSince < 0) {
      // Measured from now, not from the last packet: a keepalive sent after a quiet spell
      // must not count the quiet spell as silence.
      if (s.inUse) this.#silentSince = s.now;
      return 'none';
    }
    const silent = s.now - this.#silentSince;
    if (this.#stage === 0) {
      if (silent < this.restartDetectMs) return 'none';
      this.#stage = 1;
      this.#nextAt = s.now + this.#answerWait(s.rttMs);
      return 'probe';
    }
    if (s.now < this.#nextAt) return 'none';
    this.#stage = 2;
    this.#nextAt = s.now + this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    return 'rehandshake';
  }

  #reset(): void {
    this.#silentSince = -1;
    this.#stage = 0;
    this.#backoffMs = this.restartDetectMs;
  }
}
