import type { ChildProcess } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import { pollUntil, type PollOptions } from '../../src/protocol/poll-until.js';

/**
 * The tests' one wait for a condition that has no event: pollUntil (the same loop the daemon and
 * the client use), failing with what was awaited instead of answering undefined.
 * `what` may be a function, for a message that includes output gathered meanwhile.
 */
export async function waitFor<T>(
  what: string | (() => string),
  check: () => T | undefined | Promise<T | undefined>,
  options: PollOptions = { timeoutMs: 10_000, intervalMs: 20 },
): Promise<T> {
  const answer = await pollUntil(check, options);
  if (answer !== undefined) return answer;
  const waited = options.deadline === undefined ? `${options.timeoutMs ?? 0} ms` : 'the deadline';
  throw new Error(`timed out (${waited}) waiting for ${typeof what === 'function' ? what() : what}`);
}

/** waitFor for a yes/no condition. */
export async function waitUntil(
  what: string | (() => string),
  condition: () => boolean | Promise<boolean>,
  options?: PollOptions,
): Promise<void> {
  await waitFor(what, async () => ((await condition()) ? true : undefined), options);
}

/** Waits for something a daemon logs asynchronously; a timeout shows the output so far. */
export async function waitUntilLogged(condition: () => boolean, what: string, output: () => string): Promise<void> {
  await waitUntil(() => `${what}; daemon output:\n${output()}`, condition);
}

const ended = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

/** Waits for a Unix socket file at `socketPath` that `child` creates; fails at once if it ended. */
export async function waitForSocketFile(socketPath: string, child: ChildProcess, what: () => string, timeoutMs = 15_000): Promise<void> {
  const ready = await pollUntil(async () => {
    if (await lstat(socketPath).then((st) => st.isSocket(), () => false)) return true;
    return ended(child) ? false : undefined;
  }, { timeoutMs, intervalMs: 20 });
  if (ready !== true) throw new Error(`no socket at ${socketPath} (${ended(child) ? `the process ended with ${child.exitCode ?? child.signalCode}` : `not within ${timeoutMs} ms`}): ${what()}`);
}

/**
 * Waits until a started daemon answers `status()` and returns the answer; fails at once if the
 * process ended, else with the last error after `timeoutMs`.
 */
export async function waitUntilAnswering<T>(status: () => Promise<T>, child: ChildProcess, output: () => string, timeoutMs = 15_000): Promise<Awaited<T>> {
  let lastError: unknown;
  const answer = await pollUntil<{ status: Awaited<T> } | { ended: true }>(async () => {
    try {
      return { status: await status() };
    } catch (err) {
      lastError = err;
      return ended(child) ? { ended: true as const } : undefined;
    }
  }, { timeoutMs, intervalMs: 20 });
  if (answer !== undefined && 'status' in answer) return answer.status;
  const why = answer === undefined ? `not ready after ${timeoutMs} ms (${String(lastError)})` : `ended with ${child.exitCode ?? child.signalCode} before it was ready`;
  throw new Error(`daemon ${why}:\n${output()}`);
}
