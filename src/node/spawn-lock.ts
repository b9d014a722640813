import { constants, open, readFile, lstat, unlink } from 'node:fs/promises';
import { pollUntil } from '../protocol/poll-until.js';
import { isProcessAlive } from './process-alive.js';

/** O_NOFOLLOW where the platform has it: a planted symlink must not redirect the lock file. */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

export interface SpawnLock {
  release(): Promise<void>;
}

export interface SpawnLockOptions {
  /** Give up (throw) at this Date.now() value. */
  deadline: number;
  /**
   * Called while another process holds the lock: true means the work is done (the daemon
   * answers), so stop waiting and take no lock.
   */
  isDone(): Promise<boolean>;
  /** A lock older than this is stale whatever its pid says (pids get reused). Default 30 s. */
  staleMs?: number;
  pollMs?: number;
}

/** Another process held the lock until the deadline. */
export class SpawnLockTimeout extends Error {
  constructor(
    readonly lockPath: string,
    readonly holder: number | undefined,
  ) {
    super(`timed out waiting for the lock ${lockPath}${holder === undefined ? '' : ` held by pid ${holder}`}`);
    this.name = 'SpawnLockTimeout';
  }
}

/**
 * A lock file created with O_EXCL holding the owner's pid: among CLIs that find no daemon at the
 * same moment, exactly one starts it and the others wait for the socket to answer.
 *
 * A lock whose pid is gone (a CLI killed mid-start) or that is older than `staleMs` is removed.
 * Two waiters could in theory both judge the same lock stale and one remove the other's fresh
 * lock between its check and unlink (the inode check narrows that window to microseconds); the
 * daemon itself is the backstop, since a second daemon on the same socket exits "already running".
 *
 * Resolves with the lock, or undefined when `isDone()` said the work was finished meanwhile.
 */
export async function acquireSpawnLock(lockPath: string, options: SpawnLockOptions): Promise<SpawnLock | undefined> {
  const staleMs = options.staleMs ?? 30_000;
  const pollMs = options.pollMs ?? 50;
  let holder: number | undefined;
  /** One try: the lock, `done` (no lock needed), or undefined while a live process holds it. A stale lock is removed and tried again at once. */
  const attempt = async (): Promise<{ lock: SpawnLock | undefined } | undefined> => {
    for (;;) {
      const lock = await tryCreate(lockPath);
      if (lock !== undefined) return { lock };
      if (await options.isDone()) return { lock: undefined };
      const current = await readLock(lockPath);
      holder = current?.pid;
      if (current === undefined || !isStale(current, staleMs)) return undefined;
      await removeIfSame(lockPath, current.ino);
    }
  };
  const outcome = await pollUntil(attempt, { deadline: options.deadline, intervalMs: pollMs });
  if (outcome === undefined) throw new SpawnLockTimeout(lockPath, holder);
  return outcome.lock;
}

async function tryCreate(lockPath: string): Promise<SpawnLock | undefined> {
  let handle;
  try {
    handle = await open(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  }
  try {
    await handle.writeFile(`${process.pid}\n`);
  } finally {
    await handle.close();
  }
  const { ino } = await lstat(lockPath);
  return {
    release: async () => {
      await removeIfSame(lockPath, ino);
    },
  };
}

interface LockInfo {
  /** undefined for an empty (being written right now) or garbled file. */
  pid: number | undefined;
  empty: boolean;
  mtimeMs: number;
  ino: number;
}

async function readLock(lockPath: string): Promise<LockInfo | undefined> {
  try {
    const info = await lstat(lockPath);
    const text = await readFile(lockPath, 'utf8');
    const pid = /^(\d+)\n$/.exec(text)?.[1];
    return { pid: pid === undefined ? undefined : Number(pid), empty: text === '', mtimeMs: info.mtimeMs, ino: info.ino };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function isStale(lock: LockInfo, staleMs: number): boolean {
  const age = Date.now() - lock.mtimeMs;
  if (age > staleMs) return true;
  // Its owner created it and is about to write its pid: give it a moment.
  if (lock.empty) return age > 5_000;
  return lock.pid === undefined || !isProcessAlive(lock.pid);
}

async function removeIfSame(lockPath: string, ino: number): Promise<void> {
  try {
    if ((await lstat(lockPath)).ino === ino) await unlink(lockPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
