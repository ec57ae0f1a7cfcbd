// A rate controller whose implementation a config reload can replace under a running
// association: the transport keeps one controller object for its lifetime (Connection, Recovery),
// so the gateway hands it this forwarder and swaps what is behind it.
import { ForwardingRateController, type RateController } from '../transport/index.ts';

export class SwitchableRateController extends ForwardingRateController {
  /**
   * New settings (rate.controller, committedRate, maxRate): the replacement starts from its own
   * initial state (a model controller probes the path again from committedRate), so a reload
   * that changes the rate costs a few round trips of ramp-up, not a connection.
   */
  replace(inner: RateController): void {
    this.inner = inner;
  }
}
