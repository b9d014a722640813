import { readdir } from 'node:fs/promises';

/** The temp file name writeFileAtomic uses (src/node/atomic-file.ts): `.<name>.<pid>.<12 hex>.tmp`. */
export const ATOMIC_TEMP_FILE = /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/;

/** Temp files of interrupted (or running) atomic writes in `dir`. */
export async function tempFilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((name) => ATOMIC_TEMP_FILE.test(name));
}

/**
 * Resolves as soon as an atomic write is under way in `dir` (a temp file other than `leftovers`
 * of earlier kills exists), polling
 * without pause: the caller then kills the writer, which lands mid-write unless the write just
 * finished; whether it did is proved afterwards by the temp file still being there.
 */
export async function writeUnderWay(dir: string, leftovers: ReadonlySet<string> = new Set(), timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await tempFilesIn(dir)).some((name) => !leftovers.has(name))) {
    if (Date.now() > deadline) throw new Error(`no atomic write started in ${dir} within ${timeoutMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
