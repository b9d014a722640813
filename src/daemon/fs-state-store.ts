import { mkdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { StateStore } from '../broker/ports.js';
import { BrokerError } from '../protocol/errors.js';
import { writeFileAtomic } from '../node/atomic-file.js';

/** Document names: one optional sub-directory, no traversal, no hidden files. */
const NAME = /^(?:[a-z0-9][a-z0-9_-]{0,63}\/)?[a-z0-9][a-z0-9._-]{0,127}\.json$/;

/**
 * JSON documents in the state dir, written atomically (0600). A crash mid-write leaves the old or
 * the new document whole; a document that does not parse is reported, never silently replaced.
 */
export function createFsStateStore(stateDir: string, options: { scrub?: (text: string) => string } = {}): StateStore {
  // Documents hold upstream text (a source's last error, a token's reason): scrubbed on the way to disk.
  const scrub = options.scrub ?? ((text: string) => text);
  const fileOf = (name: string): string => {
    if (!NAME.test(name)) throw new Error(`invalid state document name ${JSON.stringify(name)}`);
    return path.join(stateDir, name);
  };
  return {
    async read(name) {
      const file = fileOf(name);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new BrokerError('BROKER_INTERNAL', { message: `Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, hint: 'Check the permissions of the state directory.' });
      }
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new BrokerError('BROKER_INTERNAL', { message: `${file} is not valid JSON.`, hint: `Move ${file} away; tokenbroker rebuilds it.` });
      }
    },
    async write(name, value) {
      const file = fileOf(name);
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await writeFileAtomic(file, scrub(`${JSON.stringify(value, null, 2)}\n`), { mode: 0o600 });
    },
    async remove(name) {
      await unlink(fileOf(name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    },
  };
}
