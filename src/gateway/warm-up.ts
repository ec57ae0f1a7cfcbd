// Compiles the datapath before the first connection: a gateway runs for months, but V8 compiles
// its hot functions only once they have run a few thousand times, and until then the transport
// core, the codec and the stream buffers run interpreted or half-optimized. Measured in the lab
// (bench/results/datapath-2026-12-05.md): a 256 MiB transfer through freshly started gateways
// moved 612 Mbit/s, the same transfer right after another one 659-712 Mbit/s, with the receiving
// gateway using ~30% less CPU. So at start the gateway pushes WARM_UP_BYTES through its own
// transport core in the simulator (two Connections over a virtual 1 Gbit/s link: no sockets, no
// peer, nothing leaves the process) and WARM_UP_CODEC_BYTES through its encoder and decoder.
// It costs about half a second of CPU before the gateway listens.

import { randomBytes } from 'node:crypto';
import { BlockDecoder, BlockEncoder, CodecStats } from '../codec/index.ts';
import type { CompressionMode } from '../codec/index.ts';
import { Connection, type ConnectionConfig } from '../transport/index.ts';
import { runBulkTransfer } from '../sim/scenarios.ts';
import { findProfile } from '../link/profiles.ts';

const WARM_UP_BYTES = 32 * 1024 * 1024;
const WARM_UP_CODEC_BYTES = 8 * 1024 * 1024;
const READ_BYTES = 64 * 1024;

export interface WarmUpResult {
  ms: number;
  /** The in-memory transfer completed byte-exact (it always should: anything else is a bug). */
  ok: boolean;
}

export function warmUpDatapath(transport: ConnectionConfig, compression: CompressionMode): WarmUpResult {
  const started = performance.now();
  const r = runBulkTransfer({
    seed: 1,
    profile: findProfile('baseline')!,
    bytes: WARM_UP_BYTES,
    streams: 1,
    makeConnection: (role, now, random) => new Connection({ role, config: { ...transport, random }, now }),
  });
  // Reads as the bridge gets them: half incompressible, half text-like, so both the raw and the
  // compressed paths (and the back-off between them) run. Its own stats: none of this is traffic.
  const stats = new CodecStats();
  const encoder = new BlockEncoder({ mode: compression, stats });
  const decoder = new BlockDecoder({ stats });
  const text = Buffer.alloc(READ_BYTES);
  for (let i = 0; i < READ_BYTES;) i += text.write(`page ${i} dirty round ${i % 97} ok\n`, i);
  for (let done = 0; done < WARM_UP_CODEC_BYTES; done += READ_BYTES) {
    const read = (done / READ_BYTES) % 2 === 0 ? randomBytes(READ_BYTES) : Buffer.from(text);
    for (const part of encoder.encodeParts(read)) decoder.push(part);
  }
  return { ms: performance.now() - started, ok: r.byteExact };
}
