import { constants } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { SecretStore } from '../../broker/ports.js';
import { BrokerError } from '../../protocol/errors.js';
import { writeFileAtomic } from '../../node/atomic-file.js';
import { PrivateDirError, ensurePrivateDir } from '../../node/private-dir.js';
import { ownedPathProblem } from '../../node/owned-path.js';

export const SECRETS_FILE = 'secrets.json';

export interface FileStoreOptions {
  /** The uid that must own secrets.json; defaults to ours. Tests pass another to simulate a foreign owner. */
  uid?: number;
}

export interface FileStore extends SecretStore {
  readonly kind: 'file';
  /** The plaintext file, for status. */
  readonly path: string;
  /** Like probe(), but throws the BrokerError saying what is wrong (for a configured file store). */
  check(): Promise<void>;
  /** Every secret in the file (empty when there is none): to migrate a file left behind. */
  entries(): Promise<ReadonlyMap<string, string>>;
  /** Deletes the whole file (a symlink planted there is removed, never followed); true if it existed. */
  removeFile(): Promise<boolean>;
}

interface SecretsDocument {
  version: 1;
  secrets: Record<string, string>;
}

// O_NOFOLLOW closes the gap between the lstat check and the open; O_NONBLOCK keeps a FIFO planted
// at the path from blocking the open forever. Both are 0 where the platform lacks them (Windows).
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const NONBLOCK = constants.O_NONBLOCK ?? 0;

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/**
 * The opt-in plaintext store (`"secretStore": "file"`): `secrets.json` in the state dir, readable
 * only by us. Status flags it as plaintext at rest. Every write replaces the whole file atomically
 * (temp file created 0600 + fsync + rename), so a crash leaves the old or the new file whole and
 * the secret is never, even briefly, in a file with wider permissions.
 */
export function createFileStore(stateDir: string, options: FileStoreOptions = {}): FileStore {
  const path = join(stateDir, SECRETS_FILE);
  const uid = options.uid ?? process.getuid?.();
  const checkMode = process.platform !== 'win32';
  // Read-modify-write cycles must not interleave, or a concurrent set could lose the other.
  let queue: Promise<unknown> = Promise.resolve();

  function unusable(message: string, hint?: string): BrokerError {
    return new BrokerError('BROKER_SECRET_STORE_UNAVAILABLE', {
      message,
      hint: hint ?? `Fix or remove ${path} (tokenbroker recreates it with mode 0600), or choose another "secretStore" in config.json.`,
      details: { state: 'unavailable', path },
    });
  }

  async function ensureDir(): Promise<void> {
    try {
      await ensurePrivateDir(stateDir, 'State');
    } catch (err) {
      if (err instanceof PrivateDirError) throw unusable(err.message, err.hint);
      throw unusable(`Cannot create the state directory ${stateDir} (${errorCode(err) ?? 'unknown error'}).`);
    }
  }

  async function readSecrets(): Promise<Map<string, string>> {
    let handle: FileHandle;
    try {
      // lstat first for a clear message on every platform; O_NOFOLLOW below still guards the race.
      if ((await lstat(path)).isSymbolicLink()) throw unusable(`${path} is a symlink; refusing to use it.`);
      handle = await open(path, constants.O_RDONLY | NOFOLLOW | NONBLOCK);
    } catch (err) {
      if (err instanceof BrokerError) throw err;
      const code = errorCode(err);
      if (code === 'ENOENT') return new Map();
      if (code === 'ELOOP') throw unusable(`${path} is a symlink; refusing to use it.`);
      throw unusable(`Cannot open ${path} (${code ?? 'unknown error'}).`);
    }
    try {
      // Checked on the open handle, so it describes the very file we read.
      const found = ownedPathProblem(await handle.stat(), { kind: 'file', closedBits: checkMode ? 0o077 : 0 }, uid);
      if (found?.problem === 'wrong-kind' || found?.problem === 'symlink') throw unusable(`${path} is not a regular file; refusing to use it.`);
      if (found?.problem === 'foreign-owner') throw unusable(`${path} is owned by uid ${found.owner}, not by you (uid ${found.uid}); refusing to use it.`);
      if (found?.problem === 'open-mode') {
        throw unusable(
          `${path} is accessible by group or others (mode ${found.mode}); refusing to use it.`,
          `Others may have read your token: revoke it on the server, remove ${path} and set a new token.`,
        );
      }
      const text = await handle.readFile('utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not the parser's message: V8 quotes the start of the input, i.e. possibly the token.
        throw unusable(`${path} is not valid JSON.`);
      }
      return toMap(parsed);
    } catch (err) {
      if (err instanceof BrokerError) throw err;
      throw unusable(`Cannot read ${path} (${errorCode(err) ?? 'unknown error'}).`);
    } finally {
      await handle.close();
    }
  }

  function toMap(parsed: unknown): Map<string, string> {
    const secrets = typeof parsed === 'object' && parsed !== null && 'secrets' in parsed ? parsed.secrets : undefined;
    if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) {
      throw unusable(`${path} does not have the expected {"version": 1, "secrets": {...}} shape.`);
    }
    const map = new Map<string, string>();
    for (const [account, secret] of Object.entries(secrets)) {
      if (typeof secret === 'string') map.set(account, secret);
    }
    return map;
  }

  async function writeSecrets(secrets: Map<string, string>): Promise<void> {
    await ensureDir();
    const document: SecretsDocument = { version: 1, secrets: Object.fromEntries(secrets) };
    try {
      await writeFileAtomic(path, `${JSON.stringify(document, null, 2)}\n`, { mode: 0o600 });
    } catch (err) {
      throw unusable(`Cannot write ${path} (${errorCode(err) ?? 'unknown error'}).`);
    }
  }

  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = queue.then(fn, fn);
    queue = result.catch(() => undefined);
    return result;
  }

  function check(): Promise<void> {
    return exclusive(async () => {
      await ensureDir();
      await readSecrets();
    });
  }

  return {
    kind: 'file',
    path,
    persistent: true,
    plaintextAtRest: true,
    // File errors surface as errors of the call itself, not as a store state.
    lastState: 'ok',
    get(account) {
      return exclusive(async () => (await readSecrets()).get(account) ?? null);
    },
    set(account, secret) {
      return exclusive(async () => {
        const secrets = await readSecrets();
        secrets.set(account, secret);
        await writeSecrets(secrets);
      });
    },
    delete(account) {
      return exclusive(async () => {
        const secrets = await readSecrets();
        if (!secrets.delete(account)) return false;
        await writeSecrets(secrets);
        return true;
      });
    },
    check,
    entries() {
      return exclusive(readSecrets);
    },
    removeFile() {
      return exclusive(async () => {
        try {
          await unlink(path);
          return true;
        } catch (err) {
          if (errorCode(err) === 'ENOENT') return false;
          throw unusable(`Cannot delete ${path} (${errorCode(err) ?? 'unknown error'}).`);
        }
      });
    },
    probe() {
      return check().then(
        () => 'ok' as const,
        () => 'unavailable' as const,
      );
    },
  };
}
