import { randomBytes } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { DAEMON_KEY_BYTES, DAEMON_KEY_FILE, decodeDaemonKey, encodeDaemonKey } from '../protocol/hello.js';
import { writeFileAtomic } from './atomic-file.js';

/** A fresh key for one daemon start (never reused: an old key file proves nothing). */
export function createDaemonKey(): Buffer {
  return randomBytes(DAEMON_KEY_BYTES);
}

export function daemonKeyPath(stateDir: string): string {
  return path.join(stateDir, DAEMON_KEY_FILE);
}

/** Written atomically, 0600, in the (private) state directory. */
export async function writeDaemonKey(stateDir: string, key: Uint8Array): Promise<void> {
  await writeFileAtomic(daemonKeyPath(stateDir), encodeDaemonKey(key), { mode: 0o600 });
}

export type DaemonKeyRead = { kind: 'ok'; key: Buffer } | { kind: 'missing' } | { kind: 'refused'; reason: string };

/**
 * The key the running daemon wrote, for a client's hello check. On Unix the file must be a
 * regular file of this user that nobody else can read or write: a key others can read or plant
 * would let them pass the handshake.
 */
export async function readDaemonKey(stateDir: string, uid: number | undefined = process.getuid?.()): Promise<DaemonKeyRead> {
  const file = daemonKeyPath(stateDir);
  try {
    if (uid !== undefined && process.platform !== 'win32') {
      const info = await lstat(file);
      if (!info.isFile()) return { kind: 'refused', reason: `${file} is not a regular file` };
      if (info.uid !== uid) return { kind: 'refused', reason: `${file} is owned by uid ${info.uid}, not by you (uid ${uid})` };
      if ((info.mode & 0o077) !== 0) return { kind: 'refused', reason: `${file} is open to group or others (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})` };
    }
    const key = decodeDaemonKey(await readFile(file, 'utf8'));
    return key === undefined ? { kind: 'refused', reason: `${file} does not hold a key` } : { kind: 'ok', key };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'refused', reason: `${file} cannot be read (${code ?? String(err)})` };
  }
}
