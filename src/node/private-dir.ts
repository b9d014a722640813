import { chmod, lstat, mkdir } from 'node:fs/promises';

/** A private directory that cannot be used; the message is one line for the user. */
export class PrivateDirError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'PrivateDirError';
  }
}

/**
 * Creates `dir` 0700 if needed and checks it is ours: a real directory (not a symlink), owned by
 * us, not writable by group or others. A group/world-readable directory of ours is tightened.
 * Used for the socket, state and cache directories: each holds something another user must not
 * be able to replace or read.
 */
export async function ensurePrivateDir(dir: string, what: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (info.isSymbolicLink()) {
    throw new PrivateDirError(`${what} directory ${dir} is a symlink; refusing to use it`, `Remove the symlink (rm ${dir}); tokenbroker creates the directory itself.`);
  }
  if (!info.isDirectory()) {
    throw new PrivateDirError(`${what} directory ${dir} is not a directory`, `Move ${dir} away; tokenbroker creates the directory itself.`);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new PrivateDirError(`${what} directory ${dir} is owned by uid ${info.uid}, not by you (uid ${uid}); refusing to use it`, 'Another user may be trying to intercept tokenbroker; remove the directory or choose another path.');
  }
  if ((info.mode & 0o022) !== 0) {
    throw new PrivateDirError(
      `${what} directory ${dir} is writable by group or others (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}); refusing to use it`,
      `Run: chmod 700 ${dir}`,
    );
  }
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
}
