// Start-up failures of the addresses in the config (the WAN socket, the peers, the tunnel
// listeners), named after the setting the operator wrote: "--peer nosuch:4500: cannot resolve
// host name", "--wan 127.0.0.1:4500 is already in use by another process", not a bare
// "getaddrinfo ENOTFOUND nosuch".
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { formatEndpoint } from './address.ts';
import type { Endpoint } from './address.ts';
import { settingName } from './config.ts';
import type { GatewayConfig } from './config.ts';

/** `ep` with a numeric host (as node would pick: the first address the resolver returns). */
export async function resolveSetting(cfg: Pick<GatewayConfig, 'origin'>, path: string, ep: Endpoint, family?: 4 | 6): Promise<Endpoint> {
  if (isIP(ep.host)) return ep;
  try {
    const r = await (family === undefined ? lookup(ep.host) : lookup(ep.host, { family }));
    return { host: r.address, port: ep.port };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`${settingName(cfg, path, formatEndpoint(ep))}: cannot resolve host name "${ep.host}" (${code})`);
  }
}

/** A failed bind or listen on the address of setting `path`, as one line for the operator. */
export function bindError(cfg: Pick<GatewayConfig, 'origin'>, path: string, ep: Endpoint, err: unknown, shareHint = ''): Error {
  const e = err as NodeJS.ErrnoException;
  const setting = settingName(cfg, path, formatEndpoint(ep));
  if (e.code === 'EADDRINUSE') return new Error(`${setting} is already in use by another process${shareHint}`);
  if (e.code === 'EADDRNOTAVAIL') return new Error(`${setting}: no interface of this machine has that address`);
  if (e.code === 'EACCES') return new Error(`${setting}: permission denied (ports below 1024 need privileges)`);
  return new Error(`${setting}: ${e.message}`);
}
