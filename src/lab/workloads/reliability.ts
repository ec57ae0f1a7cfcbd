// The reliability benchmark's workloads, run inside the lab's sites (src/bench/reliability-bench.ts):
//   echo-server  --port P                       site B: echoes every connection, half-close aware
//   echo-clients --port P --connections N --bytes S [--timeout-ms T]
//                                               site A: N concurrent connections each send S bytes,
//                                               half-close and read the echo to EOF; one JSON line
//   stream-sink  --port P                       site B: one connection, checked byte for byte against
//                                               the sender's keystream; progress lines every 50 ms
//   stream-send  --port P --bytes N             site A: N keystream bytes, then FIN
// Keystream: AES-128-CTR of zeros under a fixed key, so the sink checks every byte without the
// sender's data, at ~1 GB/s.
import { createCipheriv, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';

const KEY = Buffer.alloc(16, 7);
const IV = Buffer.alloc(16, 0);
const CHUNK = 256 * 1024;

function keystream(): (n: number) => Buffer {
  const c = createCipheriv('aes-128-ctr', KEY, IV);
  const zeros = Buffer.alloc(CHUNK);
  return (n) => c.update(n === CHUNK ? zeros : zeros.subarray(0, n));
}

function out(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function echoServer(port: number): void {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  // A target that takes thousands of connections at once needs a deep accept queue (capped by somaxconn).
  server.listen({ port, host: '127.0.0.1', backlog: 8192 }, () => out({ listening: port }));
}

function echoOnce(port: number, size: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const payload = randomBytes(size);
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.on('connect', () => s.end(payload));
    s.on('data', (d: Buffer) => {
      got.push(d);
      n += d.length;
    });
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(n === size && Buffer.concat(got).equals(payload) ? 'ok' : n === size ? 'corrupt' : `short:${n}`);
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}

async function echoClients(port: number, connections: number, size: number, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: connections }, () => echoOnce(port, size, timeoutMs)));
  const outcomes: Record<string, number> = {};
  for (const r of results) outcomes[r] = (outcomes[r] ?? 0) + 1;
  out({ connections, bytesEach: size, ok: outcomes.ok ?? 0, outcomes, seconds: (performance.now() - t0) / 1000 });
}

function streamSink(port: number): void {
  const server = createServer((s: Socket) => {
    server.close();
    const expect = keystream();
    let bytes = 0;
    let exact = true;
    const progress = setInterval(() => out({ t: Date.now(), bytes }), 50);
    s.on('data', (d: Buffer) => {
      for (let off = 0; off < d.length; off += CHUNK) {
        const part = d.subarray(off, Math.min(d.length, off + CHUNK));
        if (exact && !expect(part.length).equals(part)) exact = false;
      }
      bytes += d.length;
    });
    const finish = (how: string): void => {
      clearInterval(progress);
      out({ t: Date.now(), bytes, done: how, exact });
      process.exit(0);
    };
    s.on('end', () => finish('end'));
    s.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
  });
  server.listen(port, '127.0.0.1', () => out({ listening: port }));
}

function streamSend(port: number, total: number): void {
  const next = keystream();
  const s = connect({ port, host: '127.0.0.1' });
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(CHUNK, left);
      left -= n;
      if (!s.write(next(n))) {
        s.once('drain', pump);
        return;
      }
    }
    s.end();
  };
  s.on('connect', pump);
  s.on('error', (err: NodeJS.ErrnoException) => {
    out({ error: err.code ?? err.message, sent: total - left });
    process.exit(1);
  });
  s.on('close', () => process.exit(0));
}

const USAGE = `usage: reliability.ts echo-server|echo-clients|stream-sink|stream-send --port P [--connections N] [--bytes S] [--timeout-ms T]`;

function main(): void {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      connections: { type: 'string' },
      bytes: { type: 'string' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const num = (v: string | undefined, name: string, dflt?: number): number => {
    if (v === undefined && dflt !== undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number (got ${v ?? 'nothing'})\n${USAGE}`);
    return n;
  };
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = num(values.port, 'port');
  switch (positionals[0]) {
    case 'echo-server':
      echoServer(port);
      return;
    case 'echo-clients':
      return void echoClients(
        port,
        num(values.connections, 'connections'),
        num(values.bytes, 'bytes'),
        num(values['timeout-ms'], 'timeout-ms', 300_000),
      );
    case 'stream-sink':
      streamSink(port);
      return;
    case 'stream-send':
      streamSend(port, num(values.bytes, 'bytes'));
      return;
    default:
      throw new Error(USAGE);
  }
}

main();
