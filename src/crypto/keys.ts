// Static X25519 identities and their files.
//
//   NAME.key (mode 0600)              NAME.pub
//   # longhaul x25519 private key     # longhaul x25519 public key
//   <base64 of the raw 32 bytes>      <base64 of the raw 32 bytes>
//
// One base64 line after a header line keeps the files greppable and copy-pasteable into configs.
// Loaders return a typed result: a bad key file is an operator error, not a bug.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { closeSync, fchmodSync, openSync, readFileSync, statSync, writeSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import type { Result } from '../result.ts';
import { KEY_LEN, x25519PrivateKeyObject, x25519PublicFromPrivate } from './primitives.ts';

export const PRIVATE_KEY_HEADER = '# longhaul x25519 private key';
export const PUBLIC_KEY_HEADER = '# longhaul x25519 public key';

export interface StaticKeyPair {
  privateKey: Uint8Array; // raw 32 bytes
  publicKey: Uint8Array; // raw 32 bytes
}

export function generateStaticKeyPair(): StaticKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return {
    privateKey: new Uint8Array(pkcs8.subarray(pkcs8.length - KEY_LEN)),
    publicKey: new Uint8Array(spki.subarray(spki.length - KEY_LEN)),
  };
}

/** Rebuilds a key pair from a raw private key (the public half is derived, never trusted from a file). */
export function keyPairFromPrivate(privateKey: Uint8Array): StaticKeyPair {
  const obj: KeyObject = x25519PrivateKeyObject(privateKey);
  return { privateKey: new Uint8Array(privateKey), publicKey: new Uint8Array(x25519PublicFromPrivate(obj)) };
}

export function encodeKey(raw: Uint8Array): string {
  return Buffer.from(raw).toString('base64');
}

/** Parses a bare base64 key (as written in configs) or the contents of a key file. */
export function decodeKey(text: string, header: string): Result<Uint8Array> {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (lines.length > 0 && lines[0]!.startsWith('#')) {
    if (lines[0] !== header) return { ok: false, error: `expected header "${header}", found "${lines[0]}"` };
    lines.shift();
  }
  if (lines.length !== 1) return { ok: false, error: 'expected exactly one base64 key line' };
  const line = lines[0]!;
  if (!/^[A-Za-z0-9+/]{43}=$/.test(line)) return { ok: false, error: 'key is not 32 bytes of base64' };
  return { ok: true, value: new Uint8Array(Buffer.from(line, 'base64')) };
}

export function decodePublicKey(text: string): Result<Uint8Array> {
  return decodeKey(text, PUBLIC_KEY_HEADER);
}

export function formatPrivateKeyFile(pair: StaticKeyPair): string {
  return `${PRIVATE_KEY_HEADER}\n${encodeKey(pair.privateKey)}\n`;
}

export function formatPublicKeyFile(publicKey: Uint8Array): string {
  return `${PUBLIC_KEY_HEADER}\n${encodeKey(publicKey)}\n`;
}

/**
 * Loads NAME.key. Refuses files any group/other permission bit (a private key readable by others is
 * as good as published), so a gateway never starts on one.
 */
export function loadPrivateKeyFile(path: string): Result<StaticKeyPair> {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, error: `cannot read private key file ${path}: ${(err as Error).message}` };
  }
  if ((mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(3, '0');
    return {
      ok: false,
      error: `private key file ${path} is accessible by group/others (mode ${octal}); run \`chmod 600 ${path}\``,
    };
  }
  const raw = decodeKey(text, PRIVATE_KEY_HEADER);
  if (!raw.ok) return { ok: false, error: `private key file ${path}: ${raw.error}` };
  return { ok: true, value: keyPairFromPrivate(raw.value) };
}

export function loadPublicKeyFile(path: string): Result<Uint8Array> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, error: `cannot read public key file ${path}: ${(err as Error).message}` };
  }
  const raw = decodePublicKey(text);
  return raw.ok ? raw : { ok: false, error: `public key file ${path}: ${raw.error}` };
}

function writeNewFile(path: string, contents: string, mode: number, overwrite: boolean): void {
  // O_EXCL unless overwriting: never clobber a key by accident. The mode applies at creation,
  // so the private key is never briefly readable by others.
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | (overwrite ? fsConstants.O_TRUNC : fsConstants.O_EXCL);
  const fd = openSync(path, flags, mode);
  try {
    fchmodSync(fd, mode); // an overwritten file keeps its old mode otherwise
    writeSync(fd, contents);
  } finally {
    closeSync(fd);
  }
}

export interface WrittenKeyFiles {
  privatePath: string;
  publicPath: string;
  publicKey: string; // base64
}

/** Writes DIR/NAME.key (0600) and DIR/NAME.pub (0644). */
export function writeKeyFiles(dir: string, name: string, pair: StaticKeyPair, overwrite = false): Result<WrittenKeyFiles> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return { ok: false, error: `invalid key name "${name}" (use letters, digits, . _ -)` };
  const privatePath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  try {
    writeNewFile(privatePath, formatPrivateKeyFile(pair), 0o600, overwrite);
    writeNewFile(publicPath, formatPublicKeyFile(pair.publicKey), 0o644, overwrite);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  return { ok: true, value: { privatePath, publicPath, publicKey: encodeKey(pair.publicKey) } };
}
