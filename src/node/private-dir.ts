import type { Stats } from 'node:fs';
import { chmod, lstat, mkdir } from 'node:fs/promises';
import { modeText, ownedPathProblem } from './owned-path.js';
import { privateDirHint } from '../protocol/paths.js';

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

/** Shared directories (/tmp: sticky, world-writable) are everybody's: "owned by someone else" would mislead. */
function isSharedDir(mode: number): boolean {
  return (mode & 0o1000) !== 0 || (mode & 0o002) !== 0;
}

/**
 * Creates `dir` 0700 if needed and checks it is ours: a real directory (not a symlink), owned by
 * us, closed to group and others. Only a directory created here is made private; an existing one
 * that is not is refused with a hint to use another (never changed: it may be the user's own).
 * Used for the socket, state and cache directories: each holds something another user must not
 * be able to replace or read.
 */
export async function ensurePrivateDir(dir: string, what: string): Promise<void> {
  const created = (await mkdir(dir, { recursive: true, mode: 0o700 })) !== undefined;
  const info = await lstat(dir);
  const hint = privateDirHint(dir, what, process.getuid?.());
  // Checked before the owner: /tmp belongs to root, yet "owned by someone else" would mislead.
  if (info.isDirectory() && isSharedDir(info.mode)) {
    throw new PrivateDirError(`${what} directory ${dir} is writable by group or others (mode ${modeText(info.mode)}, a directory shared with other users); refusing to use it`, hint);
  }
  assertOwnedDir(dir, info, `${what} directory`, {
    symlink: `Remove the symlink (rm ${dir}); tokenbroker creates the directory itself.`,
    notDirectory: `Move ${dir} away; tokenbroker creates the directory itself.`,
    foreignOwner: `Another user may be trying to intercept tokenbroker: choose another path. ${hint}`,
    openMode: () => hint,
  });
  if ((info.mode & 0o077) === 0) return;
  // Only a directory created here is made private (the umask may have narrowed mkdir's mode,
  // never widened it); an existing one may be the user's own and is left as it is.
  if (created) {
    await chmod(dir, 0o700);
    return;
  }
  throw new PrivateDirError(`${what} directory ${dir} is readable by group or others (mode ${modeText(info.mode)}); refusing to use it: tokenbroker only uses a private directory`, hint);
}
