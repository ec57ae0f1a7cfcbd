// PacketAead over OpenSSL: the Node-API addon native/lh_aead.c (built by `make -C native`),
// which keeps one EVP_CIPHER_CTX per key. Its functions are the backend's methods as they are
// (no JS wrapper on the packet path).
import { loadAddon } from '../native/load.ts';
import type { AeadKey, PacketAead } from './aead.ts';

interface LhAeadAddon {
  create(key: Uint8Array): AeadKey;
  seal(key: AeadKey, counter: number, packet: Uint8Array, headerLen: number, plaintext: Uint8Array): number;
  open(key: AeadKey, counter: number, packet: Uint8Array, headerLen: number, out: Uint8Array | null): number;
  free(key: AeadKey): void;
  /** OpenSSL_version(OPENSSL_VERSION) of the running node, e.g. "OpenSSL 3.5.8 ...". */
  version: string;
}

export type OpensslAeadLoad = { ok: true; aead: PacketAead; version: string } | { ok: false; error: string };

let loaded: OpensslAeadLoad | null = null;

/** The OpenSSL backend, or why it is unavailable (addon not built, or failed to load). */
export function loadOpensslAead(): OpensslAeadLoad {
  if (loaded === null) {
    const r = loadAddon<LhAeadAddon>('lh_aead');
    if (!r.ok) {
      loaded = { ok: false, error: r.error };
    } else {
      const { create, seal, open, free, version } = r.addon;
      loaded = { ok: true, aead: { name: 'openssl', create, seal, open, free }, version };
    }
  }
  return loaded;
}
