import type { SecretStore } from '../../broker/ports.js';

/** Like ssh-agent: secrets live only in this process and are gone after a restart. */
export function createMemoryStore(): SecretStore {
  const secrets = new Map<string, string>();
  return {
    kind: 'memory',
    persistent: false,
    plaintextAtRest: false,
    // Nothing here can fail the way a keychain does (locked, unavailable).
    lastState: 'ok',
    async get(account) {
      return secrets.get(account) ?? null;
    },
    async set(account, secret) {
      secrets.set(account, secret);
    },
    async delete(account) {
      return secrets.delete(account);
    },
    async probe() {
      return 'ok';
    },
  };
}
