// Connection ids span 32 bits; the fields that hold them start as doubles (packet.ts newHeader says
// why), so a large id after a small one changes no hidden class. Checked in a child process with
// V8's --trace-generalization: a connection with a small id, then one with a large id, and a header
// read with a large id, must not turn any small-integer field of the packet code into a double.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const CONNECTION = new URL('../../src/transport/connection.ts', import.meta.url).href;
const CONFIG = new URL('../../src/transport/config.ts', import.meta.url).href;
const PACKET = new URL('../../src/transport/packet.ts', import.meta.url).href;

const script = `
import { Connection } from '${CONNECTION}';
import { defaultConnectionConfig } from '${CONFIG}';
import { newHeader, readHeader, writeHeader } from '${PACKET}';
// random() = 0.1 gives id halves of 429496729 (a small integer to V8), 0.9 gives 3865470566.
for (const r of [0.1, 0.9]) {
  const c = new Connection({ role: 'client', now: 0, config: defaultConnectionConfig({ random: () => r }) });
  console.error('cid', c.connectionId);
}
const small = new Uint8Array(64);
writeHeader(small, 0, 1, 2, 3);
const large = new Uint8Array(64);
writeHeader(large, 0, 0xf0000000, 0xf0000001, 3);
const h = newHeader();
console.error(readHeader(small, h), readHeader(large, h), h.cidHi);
`;

test('a large connection id after a small one changes no field of the packet code from integer to double', () => {
  const r = spawnSync(process.execPath, ['--trace-generalization', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // Our lines go to stderr; V8's trace goes to stdout, one entry per "[generalizing]". Node's own
  // start-up generalizes fields, so an empty trace means the flag no longer traces (not a pass).
  assert.match(r.stdout, /\[generalizing\]/, 'V8 traced field generalizations');
  assert.match(r.stderr, /null null 4026531840/, 'the large header was read');
  assert.deepEqual(r.stderr.match(/^cid [0-9a-f]{16}$/gm), ['cid 1999999919999999', 'cid e6666666e6666666'], 'both connections were made');
  const generalized = r.stdout
    .split('[generalizing]')
    .filter((l) => /s\{[^}]*\}->d\{/.test(l) && /src\/transport\/packet(-builder)?\.ts/.test(l));
  assert.deepEqual(generalized, []);
});
