import { chmod, lstat, mkdir } from 'node:fs/promises';
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
  if (info.isSymbolicLink()) {
    throw new PrivateDirError(`${what} directory ${dir} is a symlink; refusing to use it`, `Remove the symlink (rm ${dir}); tokenbroker creates the directory itself.`);
  }
  if (!info.isDirectory()) {
    throw new PrivateDirError(`${what} directory ${dir} is not a directory`, `Move ${dir} away; tokenbroker creates the directory itself.`);
  }
  const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
  if (isSharedDir(info.mode)) {
    throw new PrivateDirError(`${what} directory ${dir} is writable by group or others (mode ${mode}, a directory shared with other users); refusing to use it`, privateDirHint(dir, what, process.getuid?.()));
  }
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new PrivateDirError(`${what} directory ${dir} is owned by uid ${info.uid}, not by you (uid ${uid}); refusing to use it`, 'Another user may be trying to intercept tokenbroker: choose another path. ' + privateDirHint(dir, what, process.getuid?.()));
  }
  if ((info.mode & 0o077) === 0) return;
  // The umask may have narrowed mkdir's mode further, never widened it; chmod makes it exact.
  if (created) {
    await chmod(dir, 0o700);
    return;
  }
  const access = (info.mode & 0o022) !== 0 ? 'writable' : 'readable';
  throw new PrivateDirError(`${what} directory ${dir} is ${access} by group or others (mode ${mode}); refusing to use it: tokenbroker only uses a private directory`, privateDirHint(dir, what, process.getuid?.()));
}
