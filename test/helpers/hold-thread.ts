/** Hold the calling thread for `ms` milliseconds, as a run of synchronous system calls or a slow disk would. */
export function holdThread(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}
