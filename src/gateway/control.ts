// The control interface: HTTP on loopback by default. GET /status (JSON), GET /metrics
// (Prometheus text). Read-only, except POST /reload (operations block below, loopback clients only).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
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

export async function startControlServer(
  at: Endpoint,
  status: () => unknown,
  metrics: Registry,
  access: ControlAccess = {},
  ops?: OpsRoutes,
): Promise<ControlServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!; // split() returns at least one piece
    // ---- access and dashboard (GET /: the live dashboard; control-auth.ts, dashboard.ts) ----
    if (!checkControlAuth(req, res, path, access.token ?? null)) return;
    if (ops && handleOpsRoute(ops, path, req, res)) return;
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
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- operations (issue #15): GET /healthz, GET /readyz, POST /reload ----

export interface OpsAnswer {
  status: number;
  body: unknown;
}

export interface OpsRoutes {
  healthz(): OpsAnswer;
  readyz(): OpsAnswer;
  reload(): Promise<OpsAnswer>;
}

/** Loopback addresses (v4, v6, v4-mapped v6): POST /reload is refused from anywhere else. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}

function answer(res: ServerResponse, a: OpsAnswer): void {
  res.writeHead(a.status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(a.body)}\n`);
}

/** Handles the operations routes; false for any other path (the read-only routes above). */
function handleOpsRoute(ops: OpsRoutes, path: string, req: IncomingMessage, res: ServerResponse): boolean {
  if (path === '/healthz' || path === '/readyz') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return true;
    }
    answer(res, path === '/healthz' ? ops.healthz() : ops.readyz());
    return true;
  }
  if (path === '/reload') {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return true;
    }
    if (!isLoopback(req.socket.remoteAddress)) {
      answer(res, { status: 403, body: { ok: false, errors: ['POST /reload is accepted from loopback clients only'] } });
      return true;
    }
    req.resume();
    ops.reload().then(
      (a) => answer(res, a),
      (err: Error) => answer(res, { status: 500, body: { ok: false, errors: [err.message] } }),
    );
    return true;
  }
  return false;
}
