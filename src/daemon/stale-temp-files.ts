import { readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from './logger.js';

/** The temp-file names writeFileAtomic uses: `.<name>.<pid>.<12 hex>.tmp`. */
const TEMP_FILE = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * A daemon killed mid-write (SIGKILL, power loss) leaves its temp file behind (possibly a big
 * index, or the token of the opt-in file store); the document itself is whole. Run only once this
 * daemon owns the socket, so it never removes the temp file of a daemon that is still running, and
 * never one of its own (a write in progress). Best effort: failures are logged at debug.
 */
export async function removeStaleTempFiles(dir: string, logger: Logger): Promise<number> {
  let removed = 0;
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const entry of entries) {
    const match = TEMP_FILE.exec(entry.name);
    // Our own temp files belong to writes in progress right now.
    if (!entry.isFile() || match === null || Number(match[1]) === process.pid) continue;
    const file = path.join(entry.parentPath, entry.name);
    try {
      await unlink(file);
      removed += 1;
    } catch (err) {
      logger.debug({ file, err: (err as Error).message }, 'cannot remove a stale temp file');
    }
  }
  if (removed > 0) logger.info({ dir, removed }, 'removed temp files left by an interrupted write');
  return removed;
}
