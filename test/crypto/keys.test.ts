import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerKeygenCommand } from '../../src/crypto/cli.ts';
import { decodePublicKey, generateStaticKeyPair, loadPrivateKeyFile, loadPublicKeyFile, writeKeyFiles } from '../../src/crypto/keys.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'longhaul-keys-'));
}

test('key files round-trip; private file is 0600', () => {
  const dir = tempDir();
  try {
    const pair = generateStaticKeyPair();
    const written = writeKeyFiles(dir, 'site-a', pair);
    assert.ok(written.ok);
    assert.equal(statSync(join(dir, 'site-a.key')).mode & 0o777, 0o600);
    const loaded = loadPrivateKeyFile(join(dir, 'site-a.key'));
    assert.ok(loaded.ok);
    assert.deepEqual(loaded.value.publicKey, pair.publicKey);
    assert.deepEqual(loaded.value.privateKey, pair.privateKey);
    const pub = loadPublicKeyFile(join(dir, 'site-a.pub'));
    assert.ok(pub.ok);
    assert.deepEqual(pub.value, pair.publicKey);
    // Existing files are not clobbered without overwrite.
    assert.equal(writeKeyFiles(dir, 'site-a', generateStaticKeyPair()).ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a group/world-readable private key is refused with a chmod hint', () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'gw.key');
    assert.ok(writeKeyFiles(dir, 'gw', generateStaticKeyPair()).ok);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(path, mode);
      const r = loadPrivateKeyFile(path);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.match(r.error, /gw\.key/);
        assert.match(r.error, /chmod 600/);
      }
    }
    chmodSync(path, 0o400);
    assert.ok(loadPrivateKeyFile(path).ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed key text is an error value', () => {
  assert.equal(decodePublicKey('# longhaul x25519 public key\nnot base64\n').ok, false);
  assert.equal(decodePublicKey(`# longhaul x25519 private key\n${Buffer.alloc(32).toString('base64')}`).ok, false);
  assert.equal(decodePublicKey(Buffer.alloc(31).toString('base64')).ok, false);
  assert.ok(decodePublicKey(Buffer.alloc(32, 9).toString('base64')).ok); // bare base64 as in configs
  const missing = loadPrivateKeyFile('/nonexistent/x.key');
  assert.equal(missing.ok, false);
});

test('longhaul keygen NAME --dir D writes both files', async () => {
  const dir = tempDir();
  try {
    const program = new Command().exitOverride();
    registerKeygenCommand(program);
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      out.push(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync(['node', 'longhaul', 'keygen', 'edge1', '--dir', dir]);
    } finally {
      process.stdout.write = write;
    }
    assert.equal(statSync(join(dir, 'edge1.key')).mode & 0o777, 0o600);
    const pub = readFileSync(join(dir, 'edge1.pub'), 'utf8');
    assert.match(out.join(''), new RegExp(pub.split('\n')[1]!.replace(/[+/]/g, '\\$&')));
    assert.ok(loadPrivateKeyFile(join(dir, 'edge1.key')).ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
