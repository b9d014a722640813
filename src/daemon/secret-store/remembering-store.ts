import type { SecretStore } from '../../broker/ports.js';
import type { SecretScrubber } from '../../broker/secret-scrubber.js';

/**
 * The selected store, telling the scrubber every token that passes through it (loaded at start,
 * set later), so that sinks can redact it. Delegation keeps the store's own getters (a keychain's
 * lastState) and methods; only get and set are observed.
 */
export function rememberingStore(store: SecretStore, scrubber: SecretScrubber): SecretStore {
  return Object.create(store, {
    get: {
      value: async (account: string): Promise<string | null> => {
        const secret = await store.get(account);
        scrubber.remember(secret);
        return secret;
      },
    },
    set: {
      value: async (account: string, secret: string): Promise<void> => {
        scrubber.remember(secret);
        await store.set(account, secret);
      },
    },
  }) as SecretStore;
}
