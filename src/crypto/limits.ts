// Timing and size limits of packet protection. Defaults follow WireGuard (whitepaper section 6)
// unless noted.

export interface ProtectionLimits {
  /** Soft: start a new handshake after this many packets sent on a keypair. */
  rekeyAfterMessages: number;
  /** Hard: never send or accept a counter at or past this (2^48 keeps counters exact numbers). */
  rejectAfterMessages: number;
  /** Soft: the initiator of a keypair rekeys when it sends on a keypair this old. */
  rekeyAfterMs: number;
  /** The responder of a keypair waits this much longer, so both sides rarely start at once. */
  responderRekeyDelayMs: number;
  /** Hard: keypairs older than this neither send nor receive (old keys keep decrypting until then). */
  rejectAfterMs: number;
  /** Handshake retransmission interval (plus up to `retransmitJitterMs`). */
  rekeyTimeoutMs: number;
  retransmitJitterMs: number;
  /** Give up a handshake attempt (event 'handshake-failed') after this long. */
  rekeyAttemptMs: number;
  /** Initiations with valid mac1 per second before the responder demands cookies; 0 = always. */
  handshakesPerSecondBeforeCookies: number;
  /** Cookie secret R rotation; initiators treat cookies older than this minus rekeyTimeoutMs as stale. */
  cookieSecretLifetimeMs: number;
  /** Cap on unconfirmed associations (our pending initiations + responder keypairs awaiting confirmation). */
  maxHalfOpen: number;
  /** Per-source token bucket for initiations from address-proven sources. */
  sourceHandshakesPerSecond: number;
  sourceHandshakeBurst: number;
  rateLimiterEntries: number;
  /** A peer's initiations closer together than this are dropped (WireGuard: 50/s). */
  minInitiationIntervalMs: number;
}

export const DEFAULT_LIMITS: ProtectionLimits = {
  rekeyAfterMessages: 2 ** 30, // brief rekeys cost ~1 ms; 2^30 packets is ~25 min at 1 Gbit/s
  rejectAfterMessages: 2 ** 48,
  rekeyAfterMs: 120_000,
  responderRekeyDelayMs: 10_000,
  rejectAfterMs: 180_000,
  rekeyTimeoutMs: 5_000,
  retransmitJitterMs: 333,
  rekeyAttemptMs: 90_000,
  handshakesPerSecondBeforeCookies: 64, // a gateway has few peers; 64/s is far above legitimate load
  cookieSecretLifetimeMs: 120_000,
  maxHalfOpen: 1024,
  sourceHandshakesPerSecond: 20,
  sourceHandshakeBurst: 5,
  rateLimiterEntries: 4096,
  minInitiationIntervalMs: 20,
};
