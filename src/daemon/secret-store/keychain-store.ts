import { createHash } from 'node:crypto';
import path from 'node:path';
import type { SecretStore, SecretStoreState } from '../../broker/ports.js';
import { scrubSecrets } from '../../broker/secret-scrubber.js';
import { BrokerError } from '../../protocol/errors.js';

/**
 * DESIGN section 3: keychain entry = service `tokenbroker`, account = server name. A daemon run
 * with its own TOKENBROKER_HOME keeps its own entries (`<server>@<scope>`, see
 * keychainAccountScope), so a test or second home never reads or deletes the main daemon's token.
 */
export const KEYCHAIN_SERVICE = 'tokenbroker';
/** Only probe() writes here, and only a fixed marker that it removes again: never a token. */
export const KEYCHAIN_PROBE_SERVICE = 'tokenbroker-probe';
const PROBE_ACCOUNT = 'probe';
const PROBE_VALUE = 'tokenbroker keychain probe (not a secret)';

export const DEFAULT_KEYCHAIN_TIMEOUT_MS = 5_000;

/**
 * The keychain operations the store needs, by service and account. Deliberately without
 * enumeration (findCredentials): we never need it, and keytar 7.9 (the binding before this one)
 * segfaulted when a locked collection held matching items. Never call it on a locked collection.
 */
export interface KeyringLike {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

export interface KeychainStoreOptions {
  /** Time box for every keychain call, loading the native binding included. */
  timeoutMs?: number;
  /** Loads the keychain binding; tests inject fakes. Defaults to importKeyring(). */
  loadKeyring?: () => Promise<KeyringLike>;
  /** Appended to every account as `@<scope>` (a non-default TOKENBROKER_HOME); none for the default home. */
  accountScope?: string | undefined;
}

/**
 * The account scope of a TOKENBROKER_HOME: the first 12 hex digits of the sha256 of its resolved
 * path (stable for that home, no path in the keychain). Undefined for the default home, whose
 * accounts are the bare server names.
 */
export function keychainAccountScope(env: NodeJS.ProcessEnv): string | undefined {
  const home = env.TOKENBROKER_HOME;
  if (home === undefined || home === '') return undefined;
  return createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 12);
}

export interface KeychainStore extends SecretStore {
  readonly kind: 'keychain';
  /** The error of the last call when it failed, else null. */
  readonly lastError: BrokerError | null;
}

/**
 * Where @napi-rs/keyring keeps entries on Linux. Pinned: its default falls back to the kernel
 * keyring (keyutils) when no Secret Service answers, and that one lives in kernel memory and is
 * lost at reboot; a token there would look stored and vanish. Pinned, a missing Secret Service is
 * an error, so `secretStore: "keychain"` fails and `auto` falls back to memory, saying so. The
 * option is ignored on macOS (Keychain) and Windows (Credential Manager).
 */
export const KEYRING_ENTRY_OPTIONS = { linux: { store: 'secret-service' } } as const;

interface AsyncEntryLike {
  getPassword(): Promise<string | null | undefined>;
  setPassword(password: string): Promise<void>;
  deletePassword(): Promise<boolean>;
}
type AsyncEntryConstructor = new (service: string, account: string, options: typeof KEYRING_ENTRY_OPTIONS) => AsyncEntryLike;

/**
 * Loads @napi-rs/keyring (N-API, prebuilt per platform as optional packages, nothing compiled at
 * install) only when first needed: a platform without a prebuilt binary then only loses the
 * keychain, and commands that never touch it do not load it. The entry stores the account as the
 * Secret Service attribute `username` (keytar used `account`; 0.1 was never released, so there
 * are no keytar entries to migrate).
 */
export async function importKeyring(): Promise<KeyringLike> {
  const mod = (await import('@napi-rs/keyring')) as { AsyncEntry?: unknown; default?: { AsyncEntry?: unknown } };
  const AsyncEntry = (mod.AsyncEntry ?? mod.default?.AsyncEntry) as AsyncEntryConstructor | undefined;
  if (typeof AsyncEntry !== 'function') throw new Error('the @napi-rs/keyring module does not have the expected API');
  // An entry per call: the constructor is cheap and connects to nothing; each call opens its own
  // D-Bus connection, so a Secret Service restarted meanwhile is found again.
  const entry = (service: string, account: string): AsyncEntryLike => new AsyncEntry(service, account, KEYRING_ENTRY_OPTIONS);
  return {
    getPassword: async (service, account) => (await entry(service, account).getPassword()) ?? null,
    setPassword: (service, account, password) => entry(service, account).setPassword(password),
    deletePassword: (service, account) => entry(service, account).deletePassword(),
  };
}

const LOCKED_PATTERN = /locked|prompt|dismiss|cancel/i;

/**
 * The binding only gives us message text, so the state is read from it. Seen in practice with
 * @napi-rs/keyring against gnome-keyring: "Couldn't access platform storage: Secret Service:
 * unlock prompt was dismissed" (locked; a headless session cannot show the prompt), "Platform
 * failure: DBus error: Failed to connect to socket ...: No such file or directory" and "...
 * Using X11 for dbus-daemon autolaunch was disabled ..." (no session bus: unavailable); libsecret's
 * "Cannot create an item in a locked collection" reads as locked too. Anything unknown counts as
 * unavailable: the keychain cannot be used either way.
 */
export function classifyKeychainError(message: string): 'locked' | 'unavailable' {
  return LOCKED_PATTERN.test(message) ? 'locked' : 'unavailable';
}

const FALLBACK_HINT = 'or set "secretStore": "memory" (or "file") in config.json.';

export function keychainError(state: Exclude<SecretStoreState, 'ok'>, reason: string, timeoutMs = DEFAULT_KEYCHAIN_TIMEOUT_MS): BrokerError {
  const seconds = Math.round(timeoutMs / 100) / 10;
  const byState = {
    locked: {
      message: `The OS keychain is locked (${reason}).`,
      hint: `Unlock your login keyring (log in to the desktop session, or run gnome-keyring-daemon --unlock) and retry, ${FALLBACK_HINT}`,
    },
    unavailable: {
      message: `The OS keychain is not available (${reason}).`,
      hint: `Install and run a Secret Service in your login session (gnome-keyring or KWallet), ${FALLBACK_HINT}`,
    },
    timeout: {
      message: `The OS keychain did not answer within ${seconds} s (${reason}).`,
      hint: `It is probably waiting for an unlock prompt: unlock your login keyring and retry, ${FALLBACK_HINT}`,
    },
  } as const;
  return new BrokerError('BROKER_SECRET_STORE_UNAVAILABLE', { ...byState[state], details: { state, reason } });
}

/** Errors from native code could in theory echo their input; the secret must never leave. */
function describeError(err: unknown, secret: string | undefined): string {
  const message = scrubSecrets(err instanceof Error ? err.message : String(err), [secret]);
  return message.replace(/\s+/g, ' ').trim() || 'unknown error';
}

class TimeoutSignal {
  constructor(readonly reason: string) {}
}

export function createKeychainStore(options: KeychainStoreOptions = {}): KeychainStore {
  const timeoutMs = options.timeoutMs ?? DEFAULT_KEYCHAIN_TIMEOUT_MS;
  const loadKeyring = options.loadKeyring ?? importKeyring;
  let keyring: Promise<KeyringLike> | undefined;
  let lastState: SecretStoreState | null = null;
  let lastError: BrokerError | null = null;
  // The binding runs each call on a libuv pool thread. A call stuck on an unlock prompt keeps its
  // thread, and the pool (4 threads by default) also serves fs and dns, so while one is stuck we
  // fail fast instead of stacking more stuck calls behind it.
  let stuck = 0;

  function load(): Promise<KeyringLike> {
    keyring ??= loadKeyring().catch((err: unknown) => {
      keyring = undefined; // a later call may retry, e.g. after the package was reinstalled
      throw err;
    });
    return keyring;
  }

  function withTimeout<T>(operation: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        stuck += 1;
        reject(new TimeoutSignal(`${what} timed out`));
      }, timeoutMs);
      timer.unref();
      operation.then(
        (value) => {
          if (timedOut) stuck -= 1;
          else {
            clearTimeout(timer);
            resolve(value);
          }
        },
        (err: unknown) => {
          if (timedOut) stuck -= 1;
          else {
            clearTimeout(timer);
            reject(err);
          }
        },
      );
    });
  }

  async function run<T>(what: string, call: (api: KeyringLike) => Promise<T>, secret?: string): Promise<T> {
    try {
      if (stuck > 0) throw new TimeoutSignal(`an earlier keychain call has still not returned`);
      let api: KeyringLike;
      try {
        api = await withTimeout(load(), 'loading @napi-rs/keyring');
      } catch (err) {
        if (err instanceof TimeoutSignal) throw err;
        // Missing module or no prebuilt binary for this platform: no keychain on this machine.
        throw keychainError('unavailable', `@napi-rs/keyring could not be loaded: ${describeError(err, secret)}`, timeoutMs);
      }
      const value = await withTimeout(
        // A synchronous throw from the binding (argument checks) becomes a rejection here.
        Promise.resolve().then(() => call(api)),
        what,
      );
      lastState = 'ok';
      lastError = null;
      return value;
    } catch (err) {
      const error =
        err instanceof BrokerError
          ? err
          : err instanceof TimeoutSignal
            ? keychainError('timeout', err.reason, timeoutMs)
            : keychainError(classifyKeychainError(describeError(err, secret)), describeError(err, secret), timeoutMs);
      lastState = (error.details?.['state'] as SecretStoreState | undefined) ?? 'unavailable';
      lastError = error;
      throw error;
    }
  }

  /** The keychain account of a server name: scoped for a non-default home. */
  function requireAccount(account: string): string {
    if (account.length === 0) throw new BrokerError('BROKER_BAD_REQUEST', { message: 'The keychain account name is empty.' });
    return options.accountScope === undefined ? account : `${account}@${options.accountScope}`;
  }

  return {
    kind: 'keychain',
    persistent: true,
    plaintextAtRest: false,
    get lastState() {
      return lastState;
    },
    get lastError() {
      return lastError;
    },
    async get(server) {
      const account = requireAccount(server);
      return run('reading the keychain', (api) => api.getPassword(KEYCHAIN_SERVICE, account));
    },
    async set(server, secret) {
      const account = requireAccount(server);
      // An empty secret is a caller bug, not a keychain failure (it would read as "unavailable").
      if (secret.length === 0) throw new BrokerError('BROKER_BAD_REQUEST', { message: 'Refusing to store an empty secret.' });
      return run('writing to the keychain', (api) => api.setPassword(KEYCHAIN_SERVICE, account, secret), secret);
    },
    async delete(server) {
      const account = requireAccount(server);
      return run('deleting from the keychain', (api) => api.deletePassword(KEYCHAIN_SERVICE, account));
    },
    async probe() {
      // A read-only probe is not enough: reads of absent entries succeed on a locked keyring and
      // on one without a default collection (headless sessions), and only the first write then
      // fails. So write and remove a fixed, non-secret marker under a service of its own.
      try {
        await run('probing the keychain', async (api) => {
          await api.setPassword(KEYCHAIN_PROBE_SERVICE, PROBE_ACCOUNT, PROBE_VALUE);
          await api.deletePassword(KEYCHAIN_PROBE_SERVICE, PROBE_ACCOUNT);
        });
        return 'ok';
      } catch {
        return lastState ?? 'unavailable';
      }
    },
  };
}
