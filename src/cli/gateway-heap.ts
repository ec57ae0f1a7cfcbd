// The gateway's V8 heap setting, applied by restarting the process in place (process.execve:
// same PID, same stdio), since V8 sizes its young generation once, at start-up.
//
// Why: the datapath allocates ArrayBuffers that die young (socket reads, packet and block
// buffers). With V8's default young generation (semi-spaces growing to 16 MiB) scavenges are
// rare, the dead buffers still count as external memory, and V8 answered with a full
// mark-compact every ~16 MiB of traffic: ~65 per GiB, about half of a sending gateway's CPU on
// an incompressible bulk transfer. Smaller semi-spaces keep scavenges frequent enough that
// external memory never builds up (2 mark-compacts per GiB at 8 MiB or less), but too small a
// young generation costs the compressed path: a 1 GiB migration on a 1 Gbit/s lab link took
// 7.9 s at 2 MiB, 7.0 s at 8 MiB and 6.8 s at 16 MiB (medians of 2-5 runs; the receiving
// gateway used a third more CPU at 2 MiB), while the loopback bulk transfer ran as fast at 8 as
// at 2. Hence 8. Runs: bench/results/gateway-2026-11-26-ab.md.
export const GATEWAY_SEMI_SPACE_MIB = 8;

const FLAG = '--max-semi-space-size';
const FLAG_NAMES = [FLAG, '--max_semi_space_size']; // V8 takes either spelling

/**
 * The node arguments to restart with, or null when the process already runs with a semi-space
 * setting (ours, or the operator's own in the node flags or NODE_OPTIONS: theirs wins).
 */
export function gatewayRestartArgs(execArgv: readonly string[], nodeOptions: string | undefined): string[] | null {
  const given = (a: string) => FLAG_NAMES.some((f) => a === f || a.startsWith(`${f}=`));
  if (execArgv.some(given) || (nodeOptions ?? '').split(/\s+/).some(given)) return null;
  return [`${FLAG}=${GATEWAY_SEMI_SPACE_MIB}`, ...execArgv];
}

/** Restarts this process with the gateway's heap setting, unless it has one; returns only if not. */
export function restartWithGatewayHeap(): void {
  const nodeArgs = gatewayRestartArgs(process.execArgv, process.env.NODE_OPTIONS);
  if (nodeArgs === null || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...nodeArgs, ...process.argv.slice(1)], process.env);
}
