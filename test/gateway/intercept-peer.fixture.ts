// The client and server of the interception tests: plain TCP programs that know nothing of
// Longhaul. The server reads a connection to its end, then answers one JSON line (who connected,
// from where, to which of its addresses, the bytes and their SHA-256) followed by the bytes
// themselves; the client checks both.
//   server PORT[,PORT...]                prints "listening" when every port is bound
//   client HOST PORT BYTES [HOLD_MS]     sends BYTES of random data (pausing HOLD_MS after the
//                                        first 64 KiB), prints one JSON result line
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'server') {
  const ports = args[0]!.split(',').map(Number);
  let bound = 0;
  for (const port of ports) {
    const server = createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => {});
      s.on('end', () => {
        const data = Buffer.concat(chunks);
        const head = {
          remote: `${s.remoteAddress}:${s.remotePort}`,
          local: `${s.localAddress}:${s.localPort}`,
          bytes: data.length,
          sha256: createHash('sha256').update(data).digest('hex'),
        };
        s.write(`${JSON.stringify(head)}\n`);
        s.end(data);
      });
    });
    server.listen(port, '0.0.0.0', () => {
      if (++bound === ports.length) console.log('listening');
    });
  }
} else if (mode === 'client') {
  const [host, port, bytes, hold] = [args[0]!, Number(args[1]), Number(args[2]), Number(args[3] ?? 0)];
  const payload = randomBytes(bytes);
  const started = Date.now();
  const s = connect({ host, port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('connect', () => {
    const first = Math.min(65536, payload.length);
    s.write(payload.subarray(0, first));
    setTimeout(() => s.end(payload.subarray(first)), hold);
  });
  s.on('data', (d: Buffer) => chunks.push(d));
  s.on('error', (err) => {
    console.log(JSON.stringify({ ok: false, error: err.message }));
    process.exit(1);
  });
  s.on('end', () => {
    const all = Buffer.concat(chunks);
    const nl = all.indexOf(10);
    const server =
      nl >= 0 ? (JSON.parse(all.subarray(0, nl).toString()) as { remote: string; local: string; bytes: number; sha256: string }) : null;
    const echo = nl >= 0 ? all.subarray(nl + 1) : Buffer.alloc(0);
    const sha256Ok =
      server !== null && server.bytes === payload.length && server.sha256 === createHash('sha256').update(payload).digest('hex');
    const echoOk = echo.equals(payload);
    console.log(
      JSON.stringify({
        ok: sha256Ok && echoOk,
        sha256Ok,
        echoOk,
        server,
        local: `${s.localAddress}:${s.localPort}`,
        ms: Date.now() - started,
      }),
    );
    s.destroy();
  });
} else {
  console.error('usage: server PORTS | client HOST PORT BYTES [HOLD_MS]');
  process.exit(2);
}
