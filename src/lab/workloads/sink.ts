// The TCP sink: accepts workload connections, counts and hashes the payload, and reports
// progress, segment arrivals and the final count + SHA-256 back to the client.

import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { readIntoSharedBuffer } from '../../gateway/tcp-read.ts';
import { encodeSinkMessage, RX_REPORT_INTERVAL_MS, SegmentParser } from './protocol.ts';

export interface SinkConnectionReport {
  remote: string;
  bytes: number;
  segments: number;
  sha256: string | null;
  complete: boolean;
  error: string | null;
}

export interface SinkOptions {
  host?: string;
  port?: number;
  onConnectionClosed?: (report: SinkConnectionReport) => void;
}

export interface Sink {
  port: number;
  close(): Promise<void>;
}

function serve(socket: Socket, onClosed: (r: SinkConnectionReport) => void): void {
  const parser = new SegmentParser();
  const hash = createHash('sha256');
  let bytes = 0;
  let reported = -1;
  let digest: string | null = null;
  const remote = `${socket.remoteAddress}:${socket.remotePort}`;
  socket.setNoDelay(true);
  const report = () => {
    if (bytes !== reported && socket.writable) {
      reported = bytes;
      socket.write(encodeSinkMessage({ t: 'rx', bytes }));
    }
  };
  const timer = setInterval(report, RX_REPORT_INTERVAL_MS);
  const onPayload = (slice: Buffer) => {
    hash.update(slice);
    bytes += slice.length;
  };
  const onSegmentEnd = (index: number) => {
    socket.write(encodeSinkMessage({ t: 'seg', index, bytes }));
  };
  // Reads land in one shared buffer (as in the gateway): a fresh 64 KiB buffer per read cost
  // the sink about as much CPU as hashing the payload. Everything below consumes them at once.
  const onData = (data: Buffer): boolean => {
    if (parser.ended || parser.error) return true;
    parser.push(data, onPayload, onSegmentEnd);
    if (parser.error) {
      socket.end(encodeSinkMessage({ t: 'error', reason: parser.error }));
    } else if (parser.ended) {
      digest = hash.digest('hex');
      clearInterval(timer);
      socket.write(encodeSinkMessage({ t: 'done', bytes, sha256: digest }));
    }
    return true;
  };
  if (!readIntoSharedBuffer(socket, onData)) socket.on('data', onData);
  socket.resume();
  socket.on('error', () => {
    // The client going away mid-run (a capped run) is normal; the close report says so.
  });
  socket.on('close', () => {
    clearInterval(timer);
    onClosed({
      remote,
      bytes,
      segments: parser.segments,
      sha256: digest,
      complete: parser.ended,
      error: parser.error,
    });
  });
}

export function startSink(options: SinkOptions = {}): Promise<Sink> {
  const connections = new Set<Socket>();
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serve(socket, options.onConnectionClosed ?? (() => {}));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of connections) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
