import { randomBytes } from 'node:crypto';
import { constants, type FileHandle, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/** O_NOFOLLOW where the platform has it: never write through a planted symlink. */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/**
 * THE atomic write (temp + rename), one temp-name format and one sweeper for every writer: state
 * documents, the plaintext secrets file, cache bodies and their descriptions.
 *
 * The temp file for `file`: `.<name>.<pid>.<12 hex>.tmp` in the same directory (so the rename
 * stays on one file system, and the sweeper can tell whether its writer is still alive), created
 * O_EXCL and O_NOFOLLOW with the final mode (no window with wider permissions).
 */
export async function createTempFile(file: string, mode = 0o600): Promise<{ path: string; handle: FileHandle }> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW, mode);
  return { path: temp, handle };
}

/** Puts a finished (fsynced, closed) temp file in place: rename, then fsync of the directory. */
export async function renameDurably(temp: string, file: string): Promise<void> {
  await rename(temp, file);
  await syncDir(path.dirname(file));
}

/**
 * Writes `data` to `file` so that a crash at any moment leaves either the old or the new file
 * whole: a temp file (`createTempFile`), fsync, rename, then fsync of the directory.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  let temp: string | undefined;
  let handle: FileHandle | undefined;
  try {
    ({ path: temp, handle } = await createTempFile(file, options.mode ?? 0o600));
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, file);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (temp !== undefined) await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDir(path.dirname(file));
}

/** Makes a rename durable. Best effort: not every platform can fsync a directory. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY).catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => undefined);
  await handle.close().catch(() => undefined);
}

const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** True for a name `createTempFile` makes (whoever's it is). */
export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * Removes temp files that a writer killed mid-write (SIGKILL, power loss) left behind in `dir`:
 * only ones whose writer process is gone, so a live writer is never disturbed.
 */
export async function sweepTempFiles(dir: string): Promise<number> {
  let removed = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    const match = TEMP_NAME.exec(entry.name);
    if (!entry.isFile() || match === null || isAlive(Number(match[1]))) continue;
    await unlink(path.join(entry.parentPath, entry.name)).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
