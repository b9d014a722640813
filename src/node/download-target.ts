/**
 * Where a download may be written (DESIGN section 5, download targets), checked once, before
 * anything is requested upstream, and then held: the parent directory is opened and every later
 * step works relative to that open directory, so swapping a path component for a symlink after
 * the check cannot redirect the write.
 *
 * Platforms: on Linux the open directory is reached as `/proc/self/fd/N/NAME` (Node has no
 * openat(); the kernel resolves that magic link to the opened directory, whatever its path has
 * become) and the directory's real path is read from the same link, so the `downloadDirs` and
 * daemon-owned checks judge the directory that was opened. Elsewhere (macOS, Windows; no
 * /proc) the directory is resolved with realpath() once and used by that path: a swap between
 * the check and the writes is not caught there, only the final rename's same-file check and
 * O_NOFOLLOW on the last component guard it (documented in docs/security.md).
 */
import { constants, existsSync, type Stats } from 'node:fs';
import { access, lstat, open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { DownloadTarget } from '../broker/ports.js';
import { BrokerError } from '../protocol/errors.js';
import { isAbsolutePlatformPath } from '../protocol/absolute-path.js';

const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
const PROC_FD = '/proc/self/fd';
const hasProcFd = process.platform === 'linux' && existsSync(PROC_FD);

/** Paths the daemon owns: a download never writes there (`daemon-owned`). */
export interface DaemonOwnedPaths {
  /** Files refused themselves (config.json). */
  files: readonly string[];
  /** Directories refused with everything inside (the state, cache and socket directories the daemon created). */
  dirs: readonly string[];
}

export interface TargetRules {
  /** An extra listener's `downloadDirs`: the opened directory must be one of them or below one. */
  allowedDirs?: readonly string[] | undefined;
  daemonOwned?: DaemonOwnedPaths | undefined;
}

/** A checked target with its parent directory held open. */
export class CheckedTarget implements DownloadTarget {
  private released = false;

  constructor(
    /** The resolved path: the opened directory's real path + the file name. */
    readonly path: string,
    readonly name: string,
    private readonly dir: FileHandle | undefined,
    /** How the opened directory is reached: `/proc/self/fd/N` on Linux, else its real path. */
    private readonly base: string,
  ) {}

  /** `NAME + suffix` inside the opened directory (`.part`, `.part.json`, or '' for the file itself). */
  at(suffix: string): string {
    return `${this.base}/${this.name}${suffix}`;
  }

  /** The opened directory itself (`/proc/self/fd/N` on Linux). */
  get dirPath(): string {
    return this.base;
  }

  /** fstat of the opened directory (stat of its real path without /proc). */
  async dirInfo(): Promise<Stats> {
    return this.dir === undefined ? stat(this.base) : this.dir.stat();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.dir?.close().catch(() => undefined);
  }
}

/** Linux's virtual filesystems: writable-looking to root, yet no file can be created in them. */
const KERNEL_FILESYSTEMS = ['/proc', '/sys'];

/**
 * A file that cannot be created is the user's problem to fix, named as such: never a
 * BROKER_INTERNAL that sends them to a log (the checks before cover most cases; a read-only
 * mount, a full disk or a virtual filesystem show up only when the file is created).
 */
export function cannotCreate(err: unknown, target: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const dir = path.dirname(target);
  const why: Record<string, [string, string]> = {
    ENOENT: [`${dir} does not take new files`, 'Choose a directory on a normal filesystem, e.g. ~/Downloads.'],
    EACCES: [`permission denied in ${dir}`, 'Choose a directory you can write to.'],
    EPERM: [`${dir} does not allow new files`, 'Choose a directory you can write to.'],
    EROFS: [`${dir} is on a read-only filesystem`, 'Choose a directory on a writable filesystem.'],
    ENOSPC: [`no space left on the device of ${dir}`, 'Free some space, or choose a directory on another disk.'],
    EDQUOT: [`your disk quota for ${dir} is used up`, 'Free some space, or choose a directory on another disk.'],
  };
  const known = code === undefined ? undefined : why[code];
  if (known === undefined || err instanceof BrokerError) return err;
  return badTarget(`Cannot save ${target}: ${known[0]} (${code}).`, known[1], code as string);
}

export function badTarget(message: string, hint: string, reason: string): BrokerError {
  return new BrokerError('BROKER_BAD_REQUEST', { message, hint, details: { field: 'body.path', reason } });
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The kind of a non-regular file, for messages. */
export function fileKind(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  if (info.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

/** Group/other-writable without the sticky bit: another user could rename our `.part` away and put theirs. */
export function isUnsafeDirectory(mode: number): boolean {
  return (mode & 0o022) !== 0 && (mode & 0o1000) === 0;
}

function inside(dir: string, candidate: string): boolean {
  return candidate === dir || candidate.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

/**
 * Checks `target` and opens its parent directory. Throws BROKER_BAD_REQUEST (`details.reason`:
 * `not-a-regular-file`, `daemon-owned`, `unsafe-directory`, or the errno of a missing or
 * unwritable directory) or BROKER_FORBIDDEN (outside `allowedDirs`).
 */
export async function openDownloadTarget(target: string, rules: TargetRules = {}): Promise<CheckedTarget> {
  const name = path.basename(target);
  if (!isAbsolutePlatformPath(target) || name === '' || name === '.' || name === '..' || /[\\/]$/.test(target)) {
    throw new BrokerError('BROKER_BAD_REQUEST', { message: `${target} does not name a file.`, hint: 'Give the absolute path of the file to write, e.g. /home/me/Downloads/app.tgz.', details: { field: 'body.path' } });
  }
  const parent = path.dirname(target);
  let dir: FileHandle | undefined;
  let realParent: string;
  let base: string;
  try {
    if (hasProcFd) {
      dir = await open(parent, constants.O_RDONLY | O_DIRECTORY);
      base = `${PROC_FD}/${dir.fd}`;
      realParent = await readlink(base);
    } else {
      realParent = await realpath(parent);
      base = realParent;
    }
  } catch (err) {
    await dir?.close().catch(() => undefined);
    const code = errnoOf(err);
    if (code === 'ENOENT') throw badTarget(`The directory ${parent} does not exist.`, `Create it first (mkdir -p ${parent}), or choose another path.`, code);
    if (code === 'ENOTDIR') throw badTarget(`${parent} is not a directory.`, 'Choose a path inside an existing directory.', code);
    if (code === 'EACCES') throw badTarget(`The directory ${parent} cannot be reached (permission denied).`, 'Choose a directory you can write to.', code);
    throw err;
  }
  const checked = new CheckedTarget(path.join(realParent, name), name, dir, base);
  try {
    await checkOpened(checked, realParent, parent, target, rules);
    return checked;
  } catch (err) {
    await checked.release();
    throw err;
  }
}

async function checkOpened(checked: CheckedTarget, realParent: string, parent: string, target: string, rules: TargetRules): Promise<void> {
  const dirInfo = await checked.dirInfo();
  if (!dirInfo.isDirectory()) throw badTarget(`${parent} is not a directory.`, 'Choose a path inside an existing directory.', 'ENOTDIR');
  if (KERNEL_FILESYSTEMS.some((root) => realParent === root || realParent.startsWith(`${root}/`))) {
    throw badTarget(`${parent} is part of the kernel's ${realParent.split('/')[1] === 'proc' ? '/proc' : '/sys'} filesystem: downloads cannot be saved there.`, 'Choose a directory on a normal filesystem, e.g. ~/Downloads.', 'EROFS');
  }
  if (rules.allowedDirs !== undefined) await checkAllowed(realParent, rules.allowedDirs);
  if (rules.daemonOwned !== undefined) await checkNotDaemonOwned(checked.path, realParent, rules.daemonOwned, target);
  if (isUnsafeDirectory(dirInfo.mode)) {
    throw badTarget(
      `The directory ${parent} is writable by other users (mode ${(dirInfo.mode & 0o7777).toString(8).padStart(4, '0')}) and has no sticky bit: another user could swap the download's .part file there.`,
      `Download into a directory only you can write to, or, for a shared download directory, set the sticky bit: chmod +t ${realParent}`,
      'unsafe-directory',
    );
  }
  try {
    await access(checked.dirPath, constants.W_OK | constants.X_OK);
  } catch {
    throw badTarget(`You cannot write to the directory ${parent}.`, 'Choose a directory you can write to, or fix its permissions.', 'EACCES');
  }
  const existing = await lstat(checked.at('')).catch(() => undefined);
  if (existing?.isSymbolicLink()) throw badTarget(`${target} is a symbolic link; a download never replaces one.`, 'Remove the link, or choose another path.', 'ELOOP');
  if (existing !== undefined && !existing.isFile()) {
    throw badTarget(
      `${target} is ${fileKind(existing)}, not a regular file; a download never replaces one.`,
      existing.isDirectory() ? "Give a file name inside it (the CLI's -o DIR does that for you)." : 'Choose the path of a regular file (the CLI streams `fetch -o` into a FIFO or a device itself).',
      'not-a-regular-file',
    );
  }
}

async function checkAllowed(realParent: string, allowedDirs: readonly string[]): Promise<void> {
  for (const dir of allowedDirs) {
    const real = await realpath(dir).catch(() => undefined);
    if (real !== undefined && inside(real, realParent)) return;
  }
  throw new BrokerError('BROKER_FORBIDDEN', {
    message: allowedDirs.length === 0 ? 'This listener may not write downloads anywhere.' : `This listener may only write downloads under ${allowedDirs.join(', ')}.`,
    hint: 'Choose a path under one of the listener\'s "downloadDirs" in config.json, or use the owner\'s socket.',
    details: { field: 'body.path' },
  });
}

async function checkNotDaemonOwned(resolved: string, realParent: string, owned: DaemonOwnedPaths, target: string): Promise<void> {
  const real = async (p: string): Promise<string> => realpath(p).catch(() => path.resolve(p));
  for (const file of owned.files) {
    if ((await real(file)) === resolved) throw daemonOwned(target);
  }
  for (const dir of owned.dirs) {
    if (inside(await real(dir), realParent)) throw daemonOwned(target);
  }
}

function daemonOwned(target: string): BrokerError {
  return badTarget(`${target} belongs to the daemon itself (its config file, or its state, cache or socket directory); a download never writes there.`, 'Choose a path outside tokenbroker\'s own directories.', 'daemon-owned');
}
