/** Process liveness for lock files (spawn lock, daemon lock) and for waiting on a daemon to exit. */
import { readFileSync } from 'node:fs';
import { pollUntil } from '../protocol/poll-until.js';

/**
 * Whether a process exists (signal 0 checks without signalling; EPERM means it exists but is not
 * ours). A zombie counts as gone: in a container whose init does not reap, an exited daemon that
 * was not our child stays a zombie for ever.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    // "pid (comm) S ...": comm may contain spaces and parentheses, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** Polls until `pid` is gone; false after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  return (await pollUntil(() => (isProcessAlive(pid) ? undefined : true), { timeoutMs, intervalMs: 50 })) === true;
}
