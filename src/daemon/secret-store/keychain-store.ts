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
 * The part of keytar we use. Deliberately without findCredentials: with a locked collection
 * holding matching items, keytar 7.9 dereferences a NULL secret and the process segfaults.
 */
export interface KeytarLike {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

export interface KeychainStoreOptions {
  /** Time box for every keychain call, keytar loading included. */
  timeoutMs?: number;
  /** Loads keytar; tests inject fakes. Defaults to a dynamic import of the optional dependency. */
  loadKeytar?: () => Promise<KeytarLike>;
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
 * keytar is an optionalDependency whose native build may be missing, so it is loaded only when
 * first needed and through a non-literal specifier: tsc then does not require it to be installed.
 */
export async function importKeytar(): Promise<KeytarLike> {
  const specifier = 'keytar';
  const mod = (await import(specifier)) as { default?: unknown };
  const api = (mod.default ?? mod) as Partial<KeytarLike>;
  if (typeof api.getPassword !== 'function' || typeof api.setPassword !== 'function' || typeof api.deletePassword !== 'function') {
    throw new Error('the keytar module does not have the expected API');
  }
  return api as KeytarLike;
}

const LOCKED_PATTERN = /locked|prompt|dismiss|cancel/i;

/**
 * libsecret only gives us GError messages, so the state is read from their text. Seen in
 * practice: "Cannot create an item in a locked collection" and "Prompt dismissed" (locked);
 * "Cannot autolaunch D-Bus without X11 $DISPLAY", "Could not connect: No such file or directory",
 * "The name org.freedesktop.secrets was not provided by any .service files" and
 * "Object does not exist at path .../collection/login" (no usable keyring: unavailable).
 * Anything unknown counts as unavailable: the keychain cannot be used either way.
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
      hint: `Install and run a Secret Service in your login session (gnome-keyring or KWallet, with libsecret), ${FALLBACK_HINT}`,
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
  const loadKeytar = options.loadKeytar ?? importKeytar;
  let keytar: Promise<KeytarLike> | undefined;
  let lastState: SecretStoreState | null = null;
  let lastError: BrokerError | null = null;
  // keytar runs each call on a libuv pool thread. A call stuck on an unlock prompt keeps its
  // thread, and the pool (4 threads by default) also serves fs and dns, so while one is stuck we
  // fail fast instead of stacking more stuck calls behind it.
  let stuck = 0;

  function load(): Promise<KeytarLike> {
    keytar ??= loadKeytar().catch((err: unknown) => {
      keytar = undefined; // a later call may retry, e.g. after libsecret was installed
      throw err;
    });
    return keytar;
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

  async function run<T>(what: string, call: (api: KeytarLike) => Promise<T>, secret?: string): Promise<T> {
    try {
      if (stuck > 0) throw new TimeoutSignal(`an earlier keychain call has still not returned`);
      let api: KeytarLike;
      try {
        api = await withTimeout(load(), 'loading keytar');
      } catch (err) {
        if (err instanceof TimeoutSignal) throw err;
        // Missing module or missing libsecret-1.so: no keychain on this machine.
        throw keychainError('unavailable', `keytar could not be loaded: ${describeError(err, secret)}`, timeoutMs);
      }
      const value = await withTimeout(
        // A synchronous throw from keytar (argument checks) becomes a rejection here.
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
      // keytar rejects an empty password with its own error, which would read as "unavailable".
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
