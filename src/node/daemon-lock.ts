/**
 * One daemon per state directory (DESIGN section 2): `<stateDir>/daemon.lock` names the daemon that
 * owns the directory. The daemon takes it before it touches anything else there and removes it at
 * exit; clients read it to tell "a daemon runs, on another socket" from "no daemon".
 */
import { readFileSync } from 'node:fs';
import { constants, link, lstat, open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';

export const DAEMON_LOCK_FILE = 'daemon.lock';

/** The lock file's content: who runs, on which socket, since when, which version. */
export interface DaemonLock {
  pid: number;
  socket: string;
  startedAt: string;
  version: string;
}

/**
 * Checked by hand, not with zod: the client library reads the lock (for the pid of a daemon that
 * does not answer) and loads no zod before its first parsed answer.
 */
function asDaemonLock(value: unknown): DaemonLock | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { pid, socket, startedAt, version } = value as Record<string, unknown>;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return undefined;
  if (typeof socket !== 'string' || typeof startedAt !== 'string' || typeof version !== 'string') return undefined;
  return { pid, socket, startedAt, version };
}

/** Another live daemon holds the state directory. */
export class DaemonLockHeldError extends Error {
  constructor(
    readonly holder: DaemonLock,
    readonly stateDir: string,
  ) {
    super(`already running (pid ${holder.pid}) on ${holder.socket}, for the state directory ${stateDir}`);
    this.name = 'DaemonLockHeldError';
  }
}

export interface HeldDaemonLock {
  lock: DaemonLock;
  /** Removes the lock file if it is still ours. */
  release(): Promise<void>;
}

/** The lock's path in a state directory. */
export function daemonLockPath(stateDir: string): string {
  return path.join(stateDir, DAEMON_LOCK_FILE);
}

/** The running daemon of `stateDir`, or undefined when there is no lock or it is stale. */
export async function readDaemonLock(stateDir: string): Promise<DaemonLock | undefined> {
  const found = await readLockFile(daemonLockPath(stateDir));
  return found === undefined || found.lock === undefined || isStale(found.lock) ? undefined : found.lock;
}

/**
 * Takes the lock for this process, or throws DaemonLockHeldError naming the live holder. The file
 * is written whole under a temporary name and linked into place: link() fails when the name exists,
 * so two daemons starting at once cannot both win, and no reader ever sees a half-written lock.
 */
export async function acquireDaemonLock(stateDir: string, owner: { socket: string; version: string }, now: Date = new Date()): Promise<HeldDaemonLock> {
  const lockPath = daemonLockPath(stateDir);
  const lock: DaemonLock = { pid: process.pid, socket: owner.socket, startedAt: now.toISOString(), version: owner.version };
  const temp = `${lockPath}.${process.pid}.tmp`;
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (constants.O_NOFOLLOW ?? 0), 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(lock)}\n`);
  } finally {
    await handle.close();
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(temp, lockPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 5) throw err;
      }
      const found = await readLockFile(lockPath);
      if (found === undefined) continue;
      if (found.lock !== undefined && !isStale(found.lock)) throw new DaemonLockHeldError(found.lock, stateDir);
      // Stale or unreadable: remove exactly the file we judged, never a newer one.
      await removeIfInode(lockPath, found.ino);
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  const { ino } = await lstat(lockPath);
  return { lock, release: () => removeIfInode(lockPath, ino) };
}

async function readLockFile(lockPath: string): Promise<{ lock: DaemonLock | undefined; ino: number } | undefined> {
  try {
    const info = await lstat(lockPath);
    const text = await readFile(lockPath, 'utf8');
    let lock: DaemonLock | undefined;
    try {
      lock = asDaemonLock(JSON.parse(text));
    } catch {
      // Garbled: nobody can be named as its owner.
    }
    return { lock, ino: info.ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function removeIfInode(lockPath: string, ino: number): Promise<void> {
  try {
    if ((await lstat(lockPath)).ino === ino) await unlink(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * A lock is stale when its pid is gone, or when that pid now belongs to a process started after
 * the lock was written (pids are reused: in a container the daemon is often pid 1 every time).
 * Our own pid in a lock we did not take is such a reuse too.
 */
export function isStale(lock: DaemonLock): boolean {
  if (lock.pid === process.pid) return true;
  if (!isAlive(lock.pid)) return true;
  const started = processStartMs(lock.pid);
  const written = Date.parse(lock.startedAt);
  // /proc's boot time has a resolution of one second: allow for it.
  return started !== undefined && Number.isFinite(written) && started > written + 2_000;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return procState(pid) !== 'Z';
}

/** Linux's /proc/PID/stat fields after the command name (which may contain spaces and parentheses). */
function procFields(pid: number): string[] | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function procState(pid: number): string | undefined {
  return procFields(pid)?.[0];
}

/** USER_HZ: the kernel reports process times to user space in 1/100 s on every Linux architecture. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * When `pid` started (ms since the epoch), on Linux: field 22 of /proc/PID/stat counts clock ticks
 * since boot, and /proc/stat's btime is the boot time. Undefined elsewhere: only liveness counts there.
 */
export function processStartMs(pid: number): number | undefined {
  const ticks = Number(procFields(pid)?.[19]);
  if (!Number.isFinite(ticks)) return undefined;
  try {
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1];
    return btime === undefined ? undefined : Number(btime) * 1000 + (ticks / CLOCK_TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}
