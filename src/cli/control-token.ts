// The token a CLI command sends to a gateway's control interface when it requires one
// (controlToken / controlTokenFile on the gateway): --token-file FILE, else $LONGHAUL_CONTROL_TOKEN.
import { readFileSync } from 'node:fs';

export const CONTROL_TOKEN_ENV = 'LONGHAUL_CONTROL_TOKEN';

/** Headers for a control request, or why the token could not be read. */
export function controlHeaders(
  tokenFile: string | undefined,
): { ok: true; headers: Record<string, string> } | { ok: false; error: string } {
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = (readFileSync(tokenFile, 'utf8').split('\n')[0] ?? '').trim();
    } catch (err) {
      return {
        ok: false,
        error: `--token-file ${tokenFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      };
    }
  } else {
    token = process.env[CONTROL_TOKEN_ENV] || undefined;
  }
  return { ok: true, headers: token ? { authorization: `Bearer ${token}` } : {} };
}

/** The line to print when the gateway answered 401. */
export function tokenRefused(sent: boolean): string {
  return sent
    ? 'the gateway refused the control token (it is not the one in its controlToken / controlTokenFile)'
    : `the gateway's control interface requires a token: --token-file FILE or ${CONTROL_TOKEN_ENV}`;
}
