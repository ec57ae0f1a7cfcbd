// The sender's wait accounting (/status sendWaits): each spell counts once, to what it waited for,
// the spell still open included; sending spells count to none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SendWait, SendWaits } from '../../src/transport/send-waits.ts';

test('SendWaits adds each spell to what it waited for, the open one included', () => {
  const w = new SendWaits();
  w.note(SendWait.window, 10);
  w.note(SendWait.window, 12); // the same wait, noted again: no double count
  w.note(SendWait.none, 15); // sending again after 5 ms of window wait
  w.note(SendWait.pacing, 20);
  w.note(SendWait.data, 21);
  w.note(SendWait.pacing, 30);
  assert.deepEqual(w.totals(34), { windowMs: 5, pacingMs: 1 + 4, dataMs: 9 });
  w.note(SendWait.none, 36);
  assert.deepEqual(w.totals(100), { windowMs: 5, pacingMs: 7, dataMs: 9 }, 'sending counts to nothing');
});
