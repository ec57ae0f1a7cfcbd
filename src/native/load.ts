// Loads a Node-API addon built by native/Makefile (native/build/<name>.node). Returns the
// load error instead of throwing, so each caller decides whether its fallback is acceptable
// and says so once (the addons only speed up paths that also exist in TypeScript or in a
// library).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const buildDir = fileURLToPath(new URL('../../native/build/', import.meta.url));

export type AddonLoad<T> = { ok: true; addon: T } | { ok: false; error: string };

const cache = new Map<string, AddonLoad<unknown>>();

export function loadAddon<T>(name: string): AddonLoad<T> {
  let result = cache.get(name);
  if (result === undefined) {
    try {
      result = { ok: true, addon: require(`${buildDir}${name}.node`) as T };
    } catch (err) {
      result = { ok: false, error: `native addon ${name} not available (${(err as Error).message}); run npm run build:native` };
    }
    cache.set(name, result);
  }
  return result as AddonLoad<T>;
}
