import { lstat } from 'node:fs/promises';
import type { DomainLog, SecretStore } from '../../broker/ports.js';
import { createFileStore } from './file-store.js';

/**
 * A `state/secrets.json` written while `"secretStore": "file"` was configured and still there
 * after switching to another store: the token in plain text that nothing uses any more.
 */
export interface PlaintextLeftover {
  readonly path: string;
  /** False once `token remove` (or a later migration) deleted it. */
  readonly present: boolean;
}

export interface LeftoverOutcome {
  /** The store to use: the selected one, whose delete() also deletes the leftover file. */
  store: SecretStore;
  /** Set while a leftover file is on disk (status flags it, diagnose fails). */
  leftover?: PlaintextLeftover;
  /** How many secrets were moved into the keychain (the file was then deleted). */
  migrated: number;
}

/**
 * Called at start for every store but `file`. With a working keychain the file's secrets are
 * moved into it (the file is the newer copy: it was the store in use when the token metadata was
 * last written) and the file is deleted. Otherwise the file is kept and flagged, and removing the
 * token deletes it: `token remove` must leave no copy of the token behind.
 */
export async function settlePlaintextLeftover(store: SecretStore, stateDir: string, log: DomainLog): Promise<LeftoverOutcome> {
  const file = createFileStore(stateDir);
  if (!(await exists(file.path))) return { store, migrated: 0 };
  if (store.kind === 'keychain' && (await store.probe()) === 'ok') {
    try {
      const entries = await file.entries();
      for (const [account, secret] of entries) await store.set(account, secret);
      await file.removeFile();
      log.info({ file: file.path, secrets: entries.size }, 'moved the plaintext secrets file left by "secretStore": "file" into the OS keychain and deleted it');
      return { store, migrated: entries.size };
    } catch (err) {
      log.warn({ file: file.path, err: err instanceof Error ? err.message : String(err) }, 'cannot move the plaintext secrets file into the OS keychain; it stays flagged in status');
    }
  }
  let present = true;
  const leftover: PlaintextLeftover = {
    path: file.path,
    get present() {
      return present;
    },
  };
  log.warn({ file: file.path, secretStore: store.kind }, 'a plaintext secrets file is left from "secretStore": "file"; `tokenbroker token remove` deletes it');
  // Delegation keeps the store's own getters (a keychain's lastState) and methods; only delete differs.
  const wrapped = Object.create(store, {
    delete: {
      value: async (account: string): Promise<boolean> => {
        const removed = await store.delete(account);
        const deleted = await file.removeFile();
        if (deleted) log.info({ file: file.path }, 'deleted the plaintext secrets file left from "secretStore": "file"');
        present = false;
        return removed || deleted;
      },
    },
  }) as SecretStore;
  return { store: wrapped, leftover, migrated: 0 };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
