// PacketAead over OpenSSL: the Node-API addon native/lh_aead.c (built by `make -C native`),
// which keeps one EVP_CIPHER_CTX per key, for either cipher. Its seal/open/sealRun/openRun/free are the backend's
// methods as they are (no JS wrapper on the packet path); only create() is wrapped, to pass the
// cipher id.
import { loadAddon } from '../native/load.ts';
import type { AeadKey, PacketAead, PacketCipher } from './aead.ts';

interface LhAeadAddon {
  /** cipherId: 0 ChaCha20-Poly1305, 1 AES-256-GCM (the nonce's counter byte order follows it). */
  create(key: Uint8Array, cipherId?: number): AeadKey;
  seal(key: AeadKey, counter: number, buf: Uint8Array, headerLen: number, plaintext: Uint8Array, at?: number): number;
  open(key: AeadKey, counter: number, packet: Uint8Array, headerLen: number, out: Uint8Array | null): number;
  sealRun(
    key: AeadKey,
    buf: Uint8Array,
    lens: Int32Array,
    from: number,
    count: number,
    at: number,
    word0: number,
    word1: number,
    firstCounter: number,
  ): number;
  openRun(
    key: AeadKey,
    buf: Uint8Array,
    ats: Int32Array,
    lens: Int32Array,
    counters: Float64Array,
    count: number,
    headerLen: number,
    results: Int32Array,
    out?: Uint8Array | null,
    outAts?: Int32Array,
  ): number;
  free(key: AeadKey): void;
  /** OpenSSL_version(OPENSSL_VERSION) of the running node, e.g. "OpenSSL 3.5.8 ...". */
  version: string;
}

const CIPHER_IDS: Record<PacketCipher, number> = { 'chacha20-poly1305': 0, 'aes-256-gcm': 1 };

export type OpensslAeadLoad = { ok: true; aeads: Record<PacketCipher, PacketAead>; version: string } | { ok: false; error: string };

let loaded: OpensslAeadLoad | null = null;

/** The OpenSSL backends (one per cipher), or why they are unavailable (addon not built, or failed to load). */
export function loadOpensslAead(): OpensslAeadLoad {
  if (loaded === null) {
    const r = loadAddon<LhAeadAddon>('lh_aead');
    if (!r.ok) {
      loaded = { ok: false, error: r.error };
    } else {
      const { create, seal, open, sealRun, openRun, free, version } = r.addon;
      const backend = (cipher: PacketCipher): PacketAead => {
        const id = CIPHER_IDS[cipher];
        return { name: 'openssl', cipher, create: (key) => create(key, id), seal, open, sealRun, openRun, free };
      };
      loaded = { ok: true, aeads: { 'aes-256-gcm': backend('aes-256-gcm'), 'chacha20-poly1305': backend('chacha20-poly1305') }, version };
    }
  }
  return loaded;
}
