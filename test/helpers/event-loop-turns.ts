/**
 * Count the turns the event loop takes while some work runs: a `setImmediate` chain that runs
 * once per turn. `stop()` ends the chain and answers the count; work that held the loop the
 * whole time leaves it near zero.
 */
export function countEventLoopTurns(): { stop(): number } {
  let turns = 0;
  let ticking = true;
  const tick = () => {
    if (!ticking) return;
    turns += 1;
    setImmediate(tick);
  };
  setImmediate(tick);
  return {
    stop: () => {
      ticking = false;
      return turns;
    },
  };
}
