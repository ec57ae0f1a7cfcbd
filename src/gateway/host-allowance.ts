// The gateway's own scheduling latency (event-loop turns, timers of >= 1 ms, GC pauses) delays
// acknowledgements by up to a few milliseconds regardless of the path. A controller sizing its
// window from the path's minimum RTT alone (tens of microseconds on a LAN or loopback) would
// stall on every such hiccup, so the window is never allowed below what the pacing rate sends in
// HOST_LATENCY_ALLOWANCE_MS. Pacing still sets the rate, so at most that much can queue.
import { ForwardingRateController, type RateController } from '../transport/index.ts';

// Measured on the 2-core test machine: gateway-to-gateway RTT samples on loopback range
// 0.03-6 ms (median ~0.3 ms) while the minimum stays at 0.03 ms. bench:gateway (1 bulk
// connection, loopback, 512 MiB): 4 ms gives 882 Mbit/s encrypted / 1.5 Gbit/s plaintext,
// 0 ms gives 480-540 / 770-785, with ~40% more CPU per GiB (smaller batches).
export const HOST_LATENCY_ALLOWANCE_MS = 4;

class HostLatencyAllowance extends ForwardingRateController {
  readonly #allowanceMs: number;

  constructor(inner: RateController, allowanceMs: number) {
    super(inner);
    this.#allowanceMs = allowanceMs;
  }

  override cwndBytes(): number {
    const floor = (this.inner.pacingRateBps() / 8) * (this.#allowanceMs / 1000);
    const cwnd = this.inner.cwndBytes();
    return Math.max(cwnd, floor);
  }
}

export function withHostLatencyAllowance(factory: () => RateController, allowanceMs = HOST_LATENCY_ALLOWANCE_MS): () => RateController {
  return () => new HostLatencyAllowance(factory(), allowanceMs);
}
