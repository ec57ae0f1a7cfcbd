// The gateway reaches the transport core only through its public surface (src/transport/index.ts),
// so what the core exposes is written down in one place and its internals can move freely.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const GATEWAY = new URL('../../src/gateway/', import.meta.url);

test('src/gateway imports the transport only through src/transport/index.ts', () => {
  const deep: string[] = [];
  for (const name of readdirSync(GATEWAY).filter((f) => f.endsWith('.ts'))) {
    const text = readFileSync(new URL(name, GATEWAY), 'utf8');
    for (const m of text.matchAll(/from '(\.\.\/transport\/[^']*)'/g)) {
      if (m[1] !== '../transport/index.ts') deep.push(`${name}: ${m[1]}`);
    }
  }
  assert.deepEqual(deep, []);
});
