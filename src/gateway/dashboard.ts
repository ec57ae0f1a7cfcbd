// The live dashboard's files, served by the control interface (GET /): a static page that
// polls /status every second and draws charts with uPlot, read from node_modules, so the
// gateway needs no internet and nothing is built. The files are read once, on first request.
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = (name: string): string => fileURLToPath(new URL(`./dashboard/${name}`, import.meta.url));

const FILES: ReadonlyMap<string, { file: () => string; type: string }> = new Map([
  ['/', { file: () => here('index.html'), type: 'text/html; charset=utf-8' }],
  ['/dashboard.js', { file: () => here('dashboard.js'), type: 'text/javascript; charset=utf-8' }],
  ['/dashboard.css', { file: () => here('dashboard.css'), type: 'text/css; charset=utf-8' }],
  ['/uplot.js', { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' }],
  ['/uplot.css', { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' }],
]);

// Only this origin's scripts, styles and fetches: no inline script, nothing from elsewhere.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const cache = new Map<string, Buffer>();

/** Serves `path` if it is one of the dashboard's files; false if it is not. */
export function serveDashboard(path: string, res: ServerResponse): boolean {
  const entry = FILES.get(path);
  if (!entry) return false;
  let body = cache.get(path);
  if (!body) {
    try {
      body = readFileSync(entry.file());
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`dashboard file missing: ${(err as Error).message}\n`);
      return true;
    }
    cache.set(path, body);
  }
  res
    .writeHead(200, {
      'content-type': entry.type,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    })
    .end(body);
  return true;
}
