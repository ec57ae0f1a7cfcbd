// How long the event loop has been in the current turn, counted from the first call in it: a
// bridge that reads and compresses TCP data stops reading for the rest of a turn that has run
// past its budget (bridge.ts), so that the transport's timers and acknowledgements run between.
let turnStartMs = -1;

function endTurn(): void {
  turnStartMs = -1;
}

/**
 * Milliseconds since the first call in this turn of the event loop (0 for that call). The turn
 * ends in the loop's check phase (setImmediate), after the poll phase's I/O callbacks.
 */
export function turnElapsedMs(): number {
  const now = performance.now();
  if (turnStartMs < 0) {
    turnStartMs = now;
    setImmediate(endTurn);
  }
  return now - turnStartMs;
}
