// The control interface's bearer token: where it comes from (controlToken, or the first line
// of controlTokenFile, read at start-up) and the check of each request's Authorization header.
// Browsers cannot add a bearer header to a page load, so HTTP Basic with the token as the
// password (any user name) is accepted too: the browser asks once and sends it with every
// request of the dashboard, including its fetches of /status.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MIN_CONTROL_TOKEN, resolveKeyPath, settingName } from './config.ts';
import type { GatewayConfig } from './config.ts';

/** The token the control interface requires, or null (none configured). Throws one line for the operator. */
export function loadControlToken(config: GatewayConfig): string | null {
  if (config.controlToken !== undefined) return config.controlToken;
  if (config.controlTokenFile === undefined) return null;
  const file = resolveKeyPath(config, config.controlTokenFile);
  const where = settingName(config, 'controlTokenFile', config.controlTokenFile);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${where}: cannot read the control token (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const token = (text.split('\n')[0] ?? '').trim();
  if (token.length < MIN_CONTROL_TOKEN) {
    throw new Error(
      `${where}: the control token must be at least ${MIN_CONTROL_TOKEN} characters on the file's first line (e.g. openssl rand -hex 32)`,
    );
  }
  return token;
}

// Compared as digests, so neither the length nor a common prefix shows in the time taken.
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Whether `header` (the request's Authorization) carries `token`, as Bearer or as a Basic password. */
export function carriesToken(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const space = header.indexOf(' ');
  if (space < 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let given: string;
  if (scheme === 'bearer') {
    given = value;
  } else if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    given = decoded.slice(colon + 1);
  } else {
    return false;
  }
  return timingSafeEqual(digest(given), digest(token));
}

/** Paths served without the token: the liveness probe, for load balancers and systemd alike. */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz']);

/**
 * Answers 401 and returns false when a token is required and the request does not carry it.
 * The Basic challenge makes a browser ask for the token (as the password).
 */
export function checkControlAuth(req: IncomingMessage, res: ServerResponse, path: string, token: string | null): boolean {
  if (token === null || OPEN_PATHS.has(path) || carriesToken(req.headers.authorization, token)) return true;
  res
    .writeHead(401, {
      'www-authenticate': ['Bearer realm="longhaul control"', 'Basic realm="longhaul control", charset="UTF-8"'],
      'content-type': 'text/plain',
    })
    .end(
      'longhaul control interface: token required (Authorization: Bearer TOKEN; in a browser, any user name and the token as password)\n',
    );
  return false;
}
