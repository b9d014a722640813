/**
 * The on-disk contract of a resumable download, `FILE.part` + `FILE.part.json`, and the rules for
 * touching them in a directory others may share (issue 14): never through a symlink (O_NOFOLLOW),
 * new files only with O_EXCL, resume only from regular files the user owns, and a `.part.json`
 * that is not ours or names another URL is discarded, never trusted. It lives in src/protocol
 * because both writers need it and may import only this layer in common: the daemon
 * (`POST /v1/downloads`) and the client library's streaming path (`download()` on an extra listener).
 */
import { constants, type Stats } from 'node:fs';
import { access, lstat, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { BrokerError } from './errors.js';
import { PartInfoSchema, type PartInfo } from './downloads.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_WRONLY, O_APPEND } = constants;

export function partPathOf(target: string): string {
  return `${target}.part`;
}
export function partInfoPathOf(target: string): string {
  return `${target}.part.json`;
}

function currentUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Checks where a download may be written, before any byte is fetched: the parent directory exists
 * (its symlinks resolved), is a directory the user can write; the target is not a directory or a
 * symlink. With `allowedDirs` (an extra listener's `downloadDirs`), the resolved parent must be one
 * of them or below one. Returns the resolved target path.
 */
export async function checkDownloadTarget(target: string, allowedDirs?: readonly string[]): Promise<string> {
  const name = path.basename(target);
  if (!path.isAbsolute(target) || name === '' || name === '.' || name === '..' || target.endsWith('/')) {
    throw new BrokerError('BROKER_BAD_REQUEST', { message: `${target} does not name a file.`, hint: 'Give the path of the file to write, e.g. /home/me/Downloads/app.tgz.', details: { field: 'body.path' } });
  }
  const parent = path.dirname(target);
  let realParent: string;
  try {
    realParent = await realpath(parent);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') throw badPath(`The directory ${parent} does not exist.`, `Create it first (mkdir -p ${parent}), or choose another path.`, code);
    if (code === 'ENOTDIR') throw badPath(`${parent} is not a directory.`, 'Choose a path inside an existing directory.', code);
    if (code === 'EACCES') throw badPath(`The directory ${parent} cannot be reached (permission denied).`, 'Choose a directory you can write to.', code);
    throw err;
  }
  if (KERNEL_FILESYSTEMS.some((root) => realParent === root || realParent.startsWith(`${root}/`))) {
    throw badPath(`${parent} is part of the kernel's ${realParent.split('/')[1] === 'proc' ? '/proc' : '/sys'} filesystem: downloads cannot be saved there.`, 'Choose a directory on a normal filesystem, e.g. ~/Downloads.', 'EROFS');
  }
  const parentInfo = await stat(realParent);
  if (!parentInfo.isDirectory()) throw badPath(`${parent} is not a directory.`, 'Choose a path inside an existing directory.', 'ENOTDIR');
  if (allowedDirs !== undefined) await checkAllowed(realParent, allowedDirs);
  try {
    await access(realParent, constants.W_OK | constants.X_OK);
  } catch {
    throw badPath(`You cannot write to the directory ${parent}.`, 'Choose a directory you can write to, or fix its permissions.', 'EACCES');
  }
  const resolved = path.join(realParent, name);
  const existing = await lstat(resolved).catch(() => undefined);
  if (existing?.isDirectory()) throw badPath(`${target} is a directory.`, 'Give a file name inside it (the CLI\'s -o DIR does that for you).', 'EISDIR');
  if (existing?.isSymbolicLink()) throw badPath(`${target} is a symbolic link; a download never replaces one.`, 'Remove the link, or choose another path.', 'ELOOP');
  return resolved;
}

async function checkAllowed(realParent: string, allowedDirs: readonly string[]): Promise<void> {
  for (const dir of allowedDirs) {
    const real = await realpath(dir).catch(() => undefined);
    if (real !== undefined && (realParent === real || realParent.startsWith(real.endsWith(path.sep) ? real : real + path.sep))) return;
  }
  throw new BrokerError('BROKER_FORBIDDEN', {
    message: allowedDirs.length === 0 ? 'This listener may not write downloads anywhere.' : `This listener may only write downloads under ${allowedDirs.join(', ')}.`,
    hint: 'Choose a path under one of the listener\'s "downloadDirs" in config.json, or use the owner\'s socket.',
    details: { field: 'body.path' },
  });
}

/** Linux's virtual filesystems: writable-looking to root, yet no file can be created in them. */
const KERNEL_FILESYSTEMS = ['/proc', '/sys'];

function badPath(message: string, hint: string, reason: string): BrokerError {
  return new BrokerError('BROKER_BAD_REQUEST', { message, hint, details: { field: 'body.path', reason } });
}

/** A file we may trust: a regular file, owned by us, one link, and the very file that was checked. */
function trusted(info: Stats, checked?: Stats): boolean {
  const uid = currentUid();
  if (!info.isFile() || info.nlink !== 1 || (uid !== undefined && info.uid !== uid)) return false;
  return checked === undefined || (checked.dev === info.dev && checked.ino === info.ino);
}

/** An open `.part` file. */
export interface OpenPart {
  handle: FileHandle;
  /** Bytes in the file when it was opened. */
  size: number;
}

/**
 * Opens an earlier attempt's `.part` for appending when it can be trusted: both it and its
 * `.part.json` are regular files we own, reached without a symlink, and the info parses. Anything
 * else found at those names is unlinked (a symlink itself, never its target) and undefined returned.
 */
export async function openResumablePart(target: string): Promise<{ info: PartInfo; part: OpenPart } | undefined> {
  const partPath = partPathOf(target);
  const infoPath = partInfoPathOf(target);
  const [partStat, infoStat] = await Promise.all([lstat(partPath).catch(() => undefined), lstat(infoPath).catch(() => undefined)]);
  if (partStat === undefined && infoStat === undefined) return undefined;
  if (partStat === undefined || infoStat === undefined || !trusted(partStat) || !trusted(infoStat)) {
    await discardPart(target);
    return undefined;
  }
  const info = await readPartInfo(infoPath, infoStat);
  let handle: FileHandle | undefined;
  try {
    if (info === undefined) throw new Error('untrusted part info');
    handle = await open(partPath, O_RDWR | O_APPEND | O_NOFOLLOW);
    const opened = await handle.stat();
    if (!trusted(opened, partStat)) throw new Error('the part file changed while it was opened');
    return { info, part: { handle, size: opened.size } };
  } catch {
    await handle?.close().catch(() => undefined);
    await discardPart(target);
    return undefined;
  }
}

async function readPartInfo(infoPath: string, checked: Stats): Promise<PartInfo | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(infoPath, O_RDONLY | O_NOFOLLOW);
    const opened = await handle.stat();
    if (!trusted(opened, checked) || opened.size > 64 * 1024) return undefined;
    const parsed = PartInfoSchema.safeParse(JSON.parse(await handle.readFile('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Writes `.part.json` anew: the old one is unlinked, the new one created with O_EXCL|O_NOFOLLOW. */
export async function writePartInfo(target: string, info: PartInfo): Promise<void> {
  const infoPath = partInfoPathOf(target);
  await unlinkIfThere(infoPath);
  const handle = await open(infoPath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(JSON.stringify(info));
  } finally {
    await handle.close();
  }
}

/**
 * A fresh `.part` (after its `.part.json`, so whatever reaches the part file can be resumed):
 * anything left at either name is unlinked first, then both are created with O_EXCL|O_NOFOLLOW,
 * so a symlink or a file planted in between makes this fail instead of being followed.
 */
export async function createPart(target: string, info: PartInfo): Promise<OpenPart> {
  await unlinkIfThere(partPathOf(target));
  await writePartInfo(target, info);
  const handle = await open(partPathOf(target), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  return { handle, size: 0 };
}

/**
 * Makes the finished file visible: fsync (the rename must not show bytes that are only in the
 * page cache), the final mode, close, rename over the target (never over a symlink or a
 * directory), then the `.part.json` goes.
 */
export async function commitPart(part: OpenPart, target: string, mode: number): Promise<void> {
  try {
    await part.handle.sync();
    await part.handle.chmod(mode);
  } finally {
    await part.handle.close();
  }
  const there = await lstat(target).catch(() => undefined);
  if (there !== undefined && (there.isSymbolicLink() || there.isDirectory())) {
    throw badPath(`${target} became a ${there.isDirectory() ? 'directory' : 'symbolic link'} during the download; it was not replaced.`, 'Remove it and run the download again (it resumes).', 'ELOOP');
  }
  await rename(partPathOf(target), target);
  await unlinkIfThere(partInfoPathOf(target));
}

/** Removes `.part` and `.part.json` (unlink never follows a symlink). */
export async function discardPart(target: string): Promise<void> {
  await unlinkIfThere(partPathOf(target));
  await unlinkIfThere(partInfoPathOf(target));
}

async function unlinkIfThere(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
