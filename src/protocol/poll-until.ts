/**
 * THE polling loop: asks `check` until it answers (anything but `undefined`), or until the
 * deadline passes. For conditions that have no event to wait for (a process exiting, a socket
 * starting to answer, connections draining); the daemon, the CLI and the tests use this one.
 * The deadline is checked after each `check`, so a condition already true answers at once, and
 * one that is not is asked one last time at the deadline.
 */
export interface PollOptions {
  /** Give up this long from now ... */
  timeoutMs?: number;
  /** ... or at this time (Date.now() milliseconds). */
  deadline?: number;
  /** Pause between two checks (default 50 ms). */
  intervalMs?: number;
}

export async function pollUntil<T>(check: () => T | undefined | Promise<T | undefined>, options: PollOptions): Promise<T | undefined> {
  const deadline = options.deadline ?? Date.now() + (options.timeoutMs ?? 0);
  const intervalMs = options.intervalMs ?? 50;
  for (;;) {
    const answer = await check();
    if (answer !== undefined) return answer;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, left)));
  }
}
