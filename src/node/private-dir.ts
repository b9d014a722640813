import type { Stats } from 'node:fs';
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

/** What to tell the user for each way a directory can fail the owned-path check. */
export interface OwnedDirHints {
  symlink: string;
  notDirectory: string;
  foreignOwner: string;
  /** Given the directory's permission bits. */
  openMode: (bits: number) => string;
}

/**
 * A directory the daemon keeps something in (a socket, state, cache): ours, not a symlink, not
 * writable by group or others (`ownedPathProblem`), else a PrivateDirError naming `label`.
 */
export function assertOwnedDir(dir: string, info: Stats, label: string, hints: OwnedDirHints): void {
  const found = ownedPathProblem(info, { kind: 'directory', closedBits: 0o022 });
  switch (found?.problem) {
    case undefined:
      return;
    case 'symlink':
      throw new PrivateDirError(`${label} ${dir} is a symlink; refusing to use it`, hints.symlink);
    case 'wrong-kind':
      throw new PrivateDirError(`${label} ${dir} is not a directory`, hints.notDirectory);
    case 'foreign-owner':
      throw new PrivateDirError(`${label} ${dir} is owned by uid ${found.owner}, not by you (uid ${found.uid}); refusing to use it`, hints.foreignOwner);
    case 'open-mode':
      throw new PrivateDirError(`${label} ${dir} is writable by group or others (mode ${found.mode}); refusing to use it`, hints.openMode(found.bits));
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
  assertOwnedDir(dir, info, `${what} directory`, {
    symlink: `Remove the symlink (rm ${dir}); tokenbroker creates the directory itself.`,
    notDirectory: `Move ${dir} away; tokenbroker creates the directory itself.`,
    foreignOwner: 'Another user may be trying to intercept tokenbroker; remove the directory or choose another path.',
    openMode: () => `Run: chmod 700 ${dir}`,
  });
  // Readable by others but writable only by us: ours, so tightened rather than refused.
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
}
