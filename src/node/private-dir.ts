import { chmod, lstat, mkdir } from 'node:fs/promises';
import { ownedPathProblem } from './owned-path.js';

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
  const found = ownedPathProblem(info, { kind: 'directory', closedBits: 0o022 });
  switch (found?.problem) {
    case undefined:
      break;
    case 'symlink':
      throw new PrivateDirError(`${what} directory ${dir} is a symlink; refusing to use it`, `Remove the symlink (rm ${dir}); tokenbroker creates the directory itself.`);
    case 'wrong-kind':
      throw new PrivateDirError(`${what} directory ${dir} is not a directory`, `Move ${dir} away; tokenbroker creates the directory itself.`);
    case 'foreign-owner':
      throw new PrivateDirError(`${what} directory ${dir} is owned by uid ${found.owner}, not by you (uid ${found.uid}); refusing to use it`, 'Another user may be trying to intercept tokenbroker; remove the directory or choose another path.');
    case 'open-mode':
      throw new PrivateDirError(`${what} directory ${dir} is writable by group or others (mode ${found.mode}); refusing to use it`, `Run: chmod 700 ${dir}`);
  }
  // Readable by others but writable only by us: ours, so tightened rather than refused.
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
}
