/**
 * The on-disk side of a resumable download, `FILE.part` + `FILE.part.json`, in a directory others
 * may share (issues 14 and 20): every name is reached through the checked, opened directory
 * (src/node/download-target.ts), never through a symlink (O_NOFOLLOW), new files only with
 * O_EXCL, resume only from regular files the user owns, and the final rename only when `.part` is
 * still the very file that was written and verified (same device and inode).
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { PartInfoSchema, type PartInfo } from '../protocol/downloads.js';
import { badTarget, cannotCreate, fileKind, type CheckedTarget } from './download-target.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_WRONLY, O_APPEND } = constants;

export const PART_SUFFIX = '.part';
export const PART_INFO_SUFFIX = '.part.json';

export function partPathOf(target: string): string {
  return `${target}${PART_SUFFIX}`;
}

function currentUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A file we may trust: a regular file, owned by us, one link, and the very file that was checked. */
function trusted(info: Stats, checked?: Stats): boolean {
  const uid = currentUid();
  if (!info.isFile() || info.nlink !== 1 || (uid !== undefined && info.uid !== uid)) return false;
  return checked === undefined || sameFile(checked, info);
}

function sameFile(a: Pick<Stats, 'dev' | 'ino'>, b: Pick<Stats, 'dev' | 'ino'>): boolean {
  return a.dev === b.dev && a.ino === b.ino;
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
export async function openResumablePart(target: CheckedTarget): Promise<{ info: PartInfo; part: OpenPart } | undefined> {
  const partPath = target.at(PART_SUFFIX);
  const infoPath = target.at(PART_INFO_SUFFIX);
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
export async function writePartInfo(target: CheckedTarget, info: PartInfo): Promise<void> {
  const infoPath = target.at(PART_INFO_SUFFIX);
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
export async function createPart(target: CheckedTarget, info: PartInfo): Promise<OpenPart> {
  try {
    await unlinkIfThere(target.at(PART_SUFFIX));
    await writePartInfo(target, info);
    const handle = await open(target.at(PART_SUFFIX), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    return { handle, size: 0 };
  } catch (err) {
    throw cannotCreate(err, target.path);
  }
}

/**
 * Makes the finished file visible: fsync (the rename must not show bytes that are only in the
 * page cache), the final mode, close; then, only if `.part` is still the file that was written
 * (same device and inode) and the target is absent or a regular file, rename over the target;
 * then the `.part.json` goes.
 */
export async function commitPart(part: OpenPart, target: CheckedTarget, mode: number): Promise<void> {
  let written: Stats;
  try {
    await part.handle.sync();
    await part.handle.chmod(mode);
    written = await part.handle.stat();
  } finally {
    await part.handle.close();
  }
  const there = await lstat(target.at('')).catch(() => undefined);
  if (there !== undefined && !there.isFile()) {
    throw badTarget(`${target.path} became ${fileKind(there)} during the download; it was not replaced.`, 'Remove it and run the download again (it resumes).', there.isSymbolicLink() ? 'ELOOP' : 'not-a-regular-file');
  }
  const partNow = await lstat(target.at(PART_SUFFIX)).catch(() => undefined);
  if (partNow === undefined || !partNow.isFile() || !sameFile(partNow, written)) {
    throw badTarget(
      `${target.path}.part was replaced during the download; the file was not put in place.`,
      'Another process changed the download directory: download into a directory only you can write to.',
      'part-replaced',
    );
  }
  await rename(target.at(PART_SUFFIX), target.at(''));
  await unlinkIfThere(target.at(PART_INFO_SUFFIX));
}

/** Removes `.part` and `.part.json` (unlink never follows a symlink). */
export async function discardPart(target: CheckedTarget): Promise<void> {
  await unlinkIfThere(target.at(PART_SUFFIX));
  await unlinkIfThere(target.at(PART_INFO_SUFFIX));
}

async function unlinkIfThere(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
