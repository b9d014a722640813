import { mkdir, open, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { ConfigSchema, type Config } from '../protocol/config-schema.js';
import { describeIssue } from '../protocol/zod-issues.js';
import { writeFileAtomic } from './atomic-file.js';
import { ownedPathProblem } from './owned-path.js';

/** A config file that cannot be used; the message is one line naming the file, the key and what is expected. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Missing file = defaults (the real Nordic server). Anything else wrong is a ConfigError, and so
 * is a file another user could have written: config decides where the token is sent.
 */
export async function loadConfig(file: string, uid: number | undefined = process.getuid?.()): Promise<Readonly<Config>> {
  const text = await readConfigText(file, uid);
  if (text === undefined) return parseConfig({}, file);
  return parseConfig(parseConfigJson(text, file), file);
}

/**
 * The file's text after the owner checks, or undefined when there is no file. Checked on the open
 * file, so the file that is read is the file that was checked.
 */
export async function readConfigText(file: string, uid: number | undefined = process.getuid?.()): Promise<string | undefined> {
  try {
    const handle = await open(file, 'r');
    try {
      checkConfigOwner(file, 'file', await handle.stat(), uid);
      checkConfigOwner(path.dirname(file), 'directory', await stat(path.dirname(file)), uid, file);
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`config ${file}: cannot be read (${(err as Error).message})`);
  }
}

export function parseConfigJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${file}: not valid JSON (${(err as Error).message}); fix the syntax or delete the file to use the defaults`);
  }
}

/**
 * Writes the config file atomically, 0600 (it may hold proxy credentials), into a directory that
 * passes the same owner checks as reading (created 0700 when missing).
 */
export async function writeConfigText(file: string, text: string, uid: number | undefined = process.getuid?.()): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  checkConfigOwner(dir, 'directory', await stat(dir), uid, file);
  await writeFileAtomic(file, text, { mode: 0o600 });
}

/**
 * Like ssh with `~/.ssh/config`: the file and its directory must belong to us (or root) and must
 * not be writable by group or others. Without uids (Windows) there is nothing to compare.
 */
function checkConfigOwner(target: string, what: 'file' | 'directory', info: Stats, uid: number | undefined, file = target): void {
  // Stats of the open file and of its directory (a config reached through a link is fine).
  const found = ownedPathProblem(info, { closedBits: 0o022, alsoOwnedBy: [0] }, uid);
  if (found?.problem === 'foreign-owner') {
    throw new ConfigError(
      `config ${file}: the ${what} ${target} is owned by uid ${found.owner}, not by you (uid ${found.uid}); refusing to use it`,
      `Another user could point tokenbroker at their server. Check the ${what}, then: chown $(id -u) ${target}`,
    );
  }
  if (found?.problem === 'open-mode') {
    throw new ConfigError(
      `config ${file}: the ${what} ${target} is writable by group or others (mode ${found.mode}); refusing to use it`,
      `Another user could point tokenbroker at their server. Check its content, then run: chmod go-w ${target}`,
    );
  }
}

export function parseConfig(json: unknown, file: string): Readonly<Config> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`config ${file}: must be a JSON object such as {"logLevel": "info"}`);
  }
  const result = ConfigSchema.safeParse(json);
  if (!result.success) throw new ConfigError(`config ${file}: ${describeIssue(result.error.issues[0])}`);
  return deepFreeze(result.data);
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
