// The control interface: HTTP on loopback by default. GET /status (JSON), GET /metrics
// (Prometheus text). Read-only: nothing here changes the gateway.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Endpoint } from './address.ts';
import { checkControlAuth } from './control-auth.ts';
import { serveDashboard } from './dashboard.ts';

export interface ControlServer {
  readonly address: Endpoint;
  close(): Promise<void>;
}

/** Dashboard and access (issue #15 item 4). */
export interface ControlAccess {
  /** Required in every request but /healthz (control-auth.ts); null: open (loopback). */
  token?: string | null;
}

export async function startControlServer(at: Endpoint, status: () => unknown, metrics: Registry, access: ControlAccess = {}): Promise<ControlServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    // ---- access and dashboard (GET /: the live dashboard; control-auth.ts, dashboard.ts) ----
    if (!checkControlAuth(req, res, path, access.token ?? null)) return;
    if (req.method === 'GET' && serveDashboard(path, res)) return;
    // ---- end of access and dashboard ----
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status()));
      return;
    }
    if (path === '/metrics') {
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('endpoints: /status /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const address = a && typeof a !== 'string' ? { host: a.address, port: a.port } : at;
  return {
    address,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
