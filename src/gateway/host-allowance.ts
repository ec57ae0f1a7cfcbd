// The gateway's own scheduling latency (event-loop turns, timers of >= 1 ms, GC pauses, and on a
// shared machine the other processes' time slices) delays acknowledgements by up to a few
// milliseconds regardless of the path. The model sizes its window from the path alone (1.5-2 BDPs
// of its minimum RTT), so on a short path every such hiccup stalls the sender with the link idle.
// The window therefore holds HOST_LATENCY_ALLOWANCE_MS of the estimated bandwidth on top of the
// model's; where the model's window already spans more than that (long paths, whose half-BDP of
// slack absorbs the hiccups), the extra shrinks in proportion: allowance^2 / window. Pacing still
// sets the rate, so the larger window fills the path, not its queue. In startup, whose estimate
// lags its pacing rate, the window is also never below STARTUP_ALLOWANCE_MS of that rate.
import { ForwardingRateController, type RateController } from '../transport/index.ts';

// In the lab at 1 Gbit/s (five processes on two cores, base RTT 0.4 ms, smoothed 2-5 ms) the
// window of the time before (the larger of the model's and 4 ms of the pacing rate) left the
// sender waiting for acks 40-50% of the time on the 0 ms path and a third of it on the 5 ms path.
// With 8 ms added: about a tenth and an eighth, and more goodput; on mpls (25 ms) the taper keeps the
// added window small (bench/results/datapath-2026-12-06.md, section 18).
export const HOST_LATENCY_ALLOWANCE_MS = 8;
const STARTUP_ALLOWANCE_MS = 4;

class HostLatencyAllowance extends ForwardingRateController {
  readonly #allowanceMs: number;

  constructor(inner: RateController, allowanceMs: number) {
    super(inner);
    this.#allowanceMs = allowanceMs;
  }

  override cwndBytes(): number {
    const inner = this.inner;
    const model = inner.cwndBytes();
    const allowance = (inner.bandwidthEstimateBps() * this.#allowanceMs) / 8000;
    const extra = model > allowance ? (allowance * allowance) / model : allowance;
    return Math.max(model + extra, (inner.pacingRateBps() * STARTUP_ALLOWANCE_MS) / 8000);
  }
}

export function withHostLatencyAllowance(factory: () => RateController, allowanceMs = HOST_LATENCY_ALLOWANCE_MS): () => RateController {
  return () => new HostLatencyAllowance(factory(), allowanceMs);
}
