import type { SecretStore } from '../../broker/ports.js';
import { BrokerError } from '../../protocol/errors.js';
import { createFileStore } from './file-store.js';
import { createKeychainStore, keychainError } from './keychain-store.js';
import type { KeychainStore } from './keychain-store.js';
import { createMemoryStore } from './memory-store.js';

/** The `secretStore` config value (DESIGN section 3). */
export type SecretStoreSetting = 'auto' | 'keychain' | 'memory' | 'file';

export interface SecretStoreSelection {
  store: SecretStore;
  /** Set when the user gets less than they asked for (auto without a keychain); shown in status. */
  warning?: string;
}

export interface SelectSecretStoreDeps {
  /** Where the opt-in file store keeps secrets.json. */
  stateDir: string;
  /** Builds the keychain store; tests inject one with a fake binding. */
  createKeychain?: () => KeychainStore;
  /** The keychain account scope of a non-default TOKENBROKER_HOME (keychainAccountScope). */
  keychainAccountScope?: string | undefined;
}

/**
 * Picks the store at daemon start. Only `auto` may fall back, and it says so: a configured
 * `keychain` or `file` that cannot be used is an error, never a silent downgrade to memory.
 */
export async function selectSecretStore(setting: SecretStoreSetting, deps: SelectSecretStoreDeps): Promise<SecretStoreSelection> {
  switch (setting) {
    case 'memory':
      return { store: createMemoryStore() };
    case 'file': {
      const store = createFileStore(deps.stateDir);
      await store.check(); // throws what is wrong (symlink, owner, mode, unreadable)
      return { store };
    }
    case 'keychain':
    case 'auto': {
      const store = (deps.createKeychain ?? (() => createKeychainStore({ accountScope: deps.keychainAccountScope })))();
      const state = await store.probe();
      if (state === 'ok') return { store };
      if (setting === 'auto') {
        return {
          store: createMemoryStore(),
          // Name the reason (no Secret Service, locked, binding missing...): the fix depends on it.
          warning: `${(store.lastError ?? keychainError(state, 'probe failed')).message} The token is kept in memory only and must be set again after a restart.`,
        };
      }
      const cause = store.lastError ?? keychainError(state, 'probe failed');
      throw new BrokerError('BROKER_SECRET_STORE_UNAVAILABLE', {
        message: `config.json sets "secretStore": "keychain" but ${lowerFirst(cause.message)}`,
        hint: cause.hint,
        details: { ...cause.details, state },
      });
    }
  }
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
