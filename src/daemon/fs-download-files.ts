import { writev } from 'node:fs';
import path from 'node:path';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import type { DownloadFiles, PartFile } from '../broker/ports.js';
import { checkDownloadTarget, commitPart, createPart, discardPart, openResumablePart, writePartInfo, type OpenPart } from '../protocol/part-files.js';

/** Reading back a resumed prefix for its digest: large reads, one buffer reused. */
const READ_BUFFER = 1024 * 1024;

/** The DownloadFiles port on node:fs, with the hardening rules of src/protocol/part-files.ts. */
export function createFsDownloadFiles(): DownloadFiles {
  return {
    target: (path, allowedDirs) => checkDownloadTarget(path, allowedDirs),
    resumable: async (target) => {
      const found = await openResumablePart(target);
      return found === undefined ? undefined : { info: found.info, part: fsPartFile(found.part, target) };
    },
    create: async (target, info) => {
      try {
        return fsPartFile(await createPart(target, info), target);
      } catch (err) {
        throw cannotCreate(err, target);
      }
    },
    writeInfo: (target, info) => writePartInfo(target, info),
    discard: (target) => discardPart(target),
  };
}

/**
 * A file that cannot be created is the user's problem to fix, named as such: never a
 * BROKER_INTERNAL that sends them to a log (the checks before cover most cases; a read-only
 * mount, a full disk or a virtual filesystem show up only here).
 */
function cannotCreate(err: unknown, target: string): unknown {
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
  if (known === undefined || isBrokerError(err)) return err;
  return new BrokerError('BROKER_BAD_REQUEST', { message: `Cannot save ${target}: ${known[0]} (${code}).`, hint: known[1], details: { field: 'body.path', reason: code } });
}

/**
 * Writes go straight to the fd with writev (callback style: no promise per batch, no copy of the
 * chunks); close and commit wait for a write still under way.
 */
function fsPartFile(part: OpenPart, target: string): PartFile {
  const fd = part.handle.fd;
  let pending = 0;
  let idle: (() => void) | undefined;
  let closed = false;
  const settled = (): Promise<void> => (pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => (idle = resolve)));
  return {
    size: part.size,
    async readExisting(onChunk) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_BUFFER, Math.max(part.size, 1)));
      let position = 0;
      while (position < part.size) {
        const { bytesRead } = await part.handle.read(buffer, 0, Math.min(buffer.length, part.size - position), position);
        if (bytesRead === 0) break;
        onChunk(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
    },
    writev(chunks, done) {
      if (closed) {
        done(new Error('the part file is closed'));
        return;
      }
      pending += 1;
      writeAll(fd, chunks, (err) => {
        pending -= 1;
        if (pending === 0) idle?.();
        done(err);
      });
    },
    async commit(mode) {
      await settled();
      closed = true;
      await commitPart(part, target, mode);
    },
    async close() {
      await settled();
      if (closed) return;
      closed = true;
      await part.handle.close();
    },
  };
}

/** writev may write less than asked (signals, some filesystems): continue with the rest. */
function writeAll(fd: number, chunks: Buffer[], done: (err: Error | null) => void): void {
  writev(fd, chunks, (err, written) => {
    if (err) {
      done(err);
      return;
    }
    let left = written;
    let i = 0;
    while (i < chunks.length && left >= (chunks[i] as Buffer).length) {
      left -= (chunks[i] as Buffer).length;
      i += 1;
    }
    if (i === chunks.length) {
      done(null);
      return;
    }
    const rest = chunks.slice(i);
    rest[0] = (rest[0] as Buffer).subarray(left);
    writeAll(fd, rest, done);
  });
}
