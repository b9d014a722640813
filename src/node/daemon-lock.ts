import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isProcessAlive } from './process-alive.js';

/**
 * The state directory's daemon lock (DESIGN section 2: one daemon per state directory), as the
 * daemon writes it: `<stateDir>/daemon.lock`, JSON `{pid, socket, startedAt, version}`. Clients
 * read it to name a daemon that does not answer, and autostart to refuse a second daemon.
 */
export interface DaemonLock {
  pid: number;
  socket: string;
  startedAt: string;
  version: string;
}

export const DAEMON_LOCK_FILE = 'daemon.lock';

/** The lock of a live daemon, or undefined when there is none or its pid is gone. */
export async function readDaemonLock(stateDir: string): Promise<DaemonLock | undefined> {
  let parsed: Partial<DaemonLock>;
  try {
    parsed = JSON.parse(await readFile(path.join(stateDir, DAEMON_LOCK_FILE), 'utf8')) as Partial<DaemonLock>;
  } catch {
    return undefined;
  }
  if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0 || !isProcessAlive(parsed.pid)) return undefined;
  return { pid: parsed.pid, socket: String(parsed.socket ?? ''), startedAt: String(parsed.startedAt ?? ''), version: String(parsed.version ?? '') };
}
