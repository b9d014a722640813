import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFileStore, SECRETS_FILE } from '../../src/daemon/secret-store/file-store.js';
import { createKeychainStore, importKeyring, KEYCHAIN_SERVICE, keychainAccountScope } from '../../src/daemon/secret-store/keychain-store.js';
import type { KeyringLike } from '../../src/daemon/secret-store/keychain-store.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import { selectSecretStore } from '../../src/daemon/secret-store/select-store.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { isLinux, itWhen } from '../helpers/tools.js';

const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
// Child processes run the compiled store (global setup builds dist/), like the shipped daemon.
const compiledKeychainStore = pathToFileURL(join(root, 'dist/daemon/secret-store/keychain-store.js')).href;
const withKeyring = join(root, 'scripts/with-keyring.sh');

/** A fresh account per test, so runs never collide and leftovers are recognisable. */
function account(): string {
  return `tokenbroker-test-${process.pid}-${randomUUID()}`;
}

function fakeKeyring(overrides: Partial<KeyringLike>): () => Promise<KeyringLike> {
  const notFaked = (): Promise<never> => Promise.reject(new Error('not faked in this test'));
  return async () => ({ getPassword: notFaked, setPassword: notFaked, deletePassword: notFaked, ...overrides });
}

/** A binding that works, backed by a Map (for selection tests that need a healthy keychain). */
function workingKeyring(): () => Promise<KeyringLike> {
  const entries = new Map<string, string>();
  const key = (service: string, name: string): string => `${service}\u0000${name}`;
  return fakeKeyring({
    getPassword: async (service, name) => entries.get(key(service, name)) ?? null,
    setPassword: async (service, name, password) => void entries.set(key(service, name), password),
    deletePassword: async (service, name) => entries.delete(key(service, name)),
  });
}

async function rejection(promise: Promise<unknown>): Promise<BrokerError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BrokerError);
  return err as BrokerError;
}

/** Runs a module snippet in a child node with the given environment; returns its JSON output. */
async function runChild(script: string, env: NodeJS.ProcessEnv, wrapper: string[] = []): Promise<Record<string, unknown>> {
  const command = [...wrapper, process.execPath, '--input-type=module', '-e', script];
  const [file, ...args] = command as [string, ...string[]];
  const { stdout } = await execFileAsync(file, args, { cwd: root, env, timeout: 30_000 });
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

const CHILD_SECRET = 'child-secret-value-must-not-leak';

/** Child script: probe, then try a write, and report states (never the secret). */
const probeAndSetScript = (lockFirst: boolean): string => `
  import { execFileSync } from 'node:child_process';
  const { createKeychainStore } = await import(${JSON.stringify(compiledKeychainStore)});
  const store = createKeychainStore({ timeoutMs: 5000 });
  const out = {};
  if (${lockFirst}) {
    await store.set('locked-test', 'before-lock');
    execFileSync('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets',
      'org.freedesktop.Secret.Service.Lock', 'array:objpath:/org/freedesktop/secrets/collection/login']);
  }
  out.probe = await store.probe();
  try {
    await store.set('child-account', ${JSON.stringify(CHILD_SECRET)});
    out.set = 'ok';
  } catch (err) {
    out.set = { code: err.code, state: err.details?.state, message: err.message, hint: err.hint };
  }
  out.lastState = store.lastState;
  console.log(JSON.stringify(out));
`;

// Decided at collection time: locally without a Secret Service the real-keychain suite may skip,
// but in CI (CI=true) it runs and fails, so a broken keyring setup can never pass silently.
const realKeychainState = await createKeychainStore().probe();
const skipRealKeychain = realKeychainState !== 'ok' && process.env['CI'] !== 'true';

/**
 * An entry read straight from the Secret Service by another program: libsecret's `secret-tool`,
 * by the attributes @napi-rs/keyring stores (`service`, and the account as `username`). Null
 * when there is no such entry (secret-tool then exits 1 with no output).
 */
async function readDirectly(account: string): Promise<string | null> {
  const lookup = execFileAsync('secret-tool', ['lookup', 'service', KEYCHAIN_SERVICE, 'username', account], { timeout: 30_000 });
  const result = await lookup.then(
    ({ stdout }) => stdout,
    (err: { code?: unknown; stdout?: string; stderr?: string }) => {
      if (err.code === 1 && !err.stdout && !err.stderr) return null;
      throw err;
    },
  );
  return result;
}

describe.skipIf(skipRealKeychain)('keychain store against the real Secret Service', () => {
  const created: string[] = [];
  const fresh = (): string => {
    const name = account();
    created.push(name);
    return name;
  };

  // beforeEach, not beforeAll: each test is then reported as failed, not as skipped.
  beforeEach(() => {
    expect(
      realKeychainState,
      'No usable OS keychain. Run the tests under scripts/with-keyring.sh (it starts an unlocked gnome-keyring).',
    ).toBe('ok');
  });

  afterEach(async () => {
    const store = createKeychainStore();
    for (const name of created.splice(0)) await store.delete(name).catch(() => undefined);
  });

  it('probes ok and records the state', async () => {
    const store = createKeychainStore();
    expect(store.lastState).toBeNull();
    expect(await store.probe()).toBe('ok');
    expect(store.lastState).toBe('ok');
    expect(store.kind).toBe('keychain');
    expect(store.persistent).toBe(true);
    expect(store.plaintextAtRest).toBe(false);
  });

  it('round-trips set, get and delete', async () => {
    const store = createKeychainStore();
    const name = fresh();
    expect(await store.get(name)).toBeNull();
    await store.set(name, 'first-value');
    expect(await store.get(name)).toBe('first-value');
    await store.set(name, 'second-value'); // replaces, does not add a second entry
    expect(await store.get(name)).toBe('second-value');
    expect(await store.delete(name)).toBe(true);
    expect(await store.get(name)).toBeNull();
  });

  it('stores an entry secret-tool finds by service and username, and removes it there too', async () => {
    const store = createKeychainStore();
    const name = fresh();
    await store.set(name, 'visible-to-secret-tool');
    expect(await readDirectly(name)).toBe('visible-to-secret-tool');
    expect(await store.delete(name)).toBe(true);
    expect(await readDirectly(name)).toBeNull();
  });

  it('returns false when deleting an absent entry', async () => {
    const store = createKeychainStore();
    expect(await store.delete(fresh())).toBe(false);
    expect(store.lastState).toBe('ok');
  });

  it('persists beyond the store instance and the process, under service "tokenbroker"', async () => {
    const name = fresh();
    await createKeychainStore().set(name, 'persisted-value');
    expect(await createKeychainStore().get(name)).toBe('persisted-value');
    // Another program (secret-tool) reads the entry straight from the Secret Service, which also
    // pins the entry's service and account attributes (DESIGN section 3).
    expect(await readDirectly(name)).toBe('persisted-value');
  });

  it('a non-default TOKENBROKER_HOME has entries of its own: setting or removing there leaves the default home\'s token', async () => {
    const server = fresh();
    const mainHome = createKeychainStore({ accountScope: keychainAccountScope({}) });
    const otherScope = keychainAccountScope({ TOKENBROKER_HOME: `/tmp/tokenbroker-other-${randomUUID()}` });
    const otherHome = createKeychainStore({ accountScope: otherScope });
    created.push(`${server}@${otherScope}`);
    await mainHome.set(server, 'main-home-token');
    expect(await otherHome.get(server)).toBeNull();
    await otherHome.set(server, 'other-home-token');
    // The entry names as another program sees them: the bare server name for the default home,
    // `<server>@<scope>` for the other.
    expect(await readDirectly(server)).toBe('main-home-token');
    expect(await readDirectly(`${server}@${otherScope}`)).toBe('other-home-token');
    expect(await otherHome.delete(server)).toBe(true);
    expect(await mainHome.get(server)).toBe('main-home-token');
  });

  it('keeps separate entries per account', async () => {
    const store = createKeychainStore();
    const [a, b] = [fresh(), fresh()];
    await store.set(a, 'value-a');
    await store.set(b, 'value-b');
    expect(await store.get(a)).toBe('value-a');
    expect(await store.get(b)).toBe('value-b');
    expect(await store.delete(a)).toBe(true);
    expect(await store.get(b)).toBe('value-b');
  });

  it('leaves no probe entry behind', async () => {
    const keyring = await importKeyring();
    await createKeychainStore().probe();
    expect(await keyring.getPassword('tokenbroker-probe', 'probe')).toBeNull();
  });

  it('auto selects the keychain when it works', async () => {
    const selection = await selectSecretStore('auto', { stateDir: '/nonexistent-unused' });
    expect(selection.store.kind).toBe('keychain');
    expect(selection.warning).toBeUndefined();
  });

  // A throwaway gnome-keyring of its own, so locking it does not disturb the other tests.
  itWhen(isLinux, 'Linux (gnome-keyring)', 'reports a locked keyring as locked', async () => {
    const out = await runChild(probeAndSetScript(true), { ...process.env, CI: 'true' }, ['bash', withKeyring]);
    expect(out['probe']).toBe('locked');
    expect(out['set']).toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE', state: 'locked' });
    expect(out['lastState']).toBe('locked');
    expect(JSON.stringify(out)).not.toContain(CHILD_SECRET);
  });
});

describe('keychain account scope', () => {
  it('none for the default home; a stable 12-hex scope per TOKENBROKER_HOME, different for different homes', () => {
    expect(keychainAccountScope({})).toBeUndefined();
    expect(keychainAccountScope({ TOKENBROKER_HOME: '' })).toBeUndefined();
    const a = keychainAccountScope({ TOKENBROKER_HOME: '/home/ada/tb-test' });
    expect(a).toMatch(/^[0-9a-f]{12}$/);
    expect(keychainAccountScope({ TOKENBROKER_HOME: '/home/ada/tb-test/' })).toBe(a);
    expect(keychainAccountScope({ TOKENBROKER_HOME: '/home/ada/tb-other' })).not.toBe(a);
  });
});

describe('keychain store without a usable Secret Service', () => {
  it.each([
    ['a bus address that does not exist', { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' }],
    ['no session bus at all', { DBUS_SESSION_BUS_ADDRESS: undefined, DISPLAY: undefined }],
  ])('reports unavailable with %s', async (_label, overrides) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...overrides };
    for (const [name, value] of Object.entries(overrides)) if (value === undefined) delete env[name];
    const out = await runChild(probeAndSetScript(false), env);
    expect(out['probe']).toBe('unavailable');
    expect(out['lastState']).toBe('unavailable');
    expect(out['set']).toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE', state: 'unavailable' });
    expect((out['set'] as { hint: string }).hint).toMatch(/gnome-keyring/);
    // The store is pinned to the Secret Service: the failure is D-Bus's. Unpinned, the binding
    // would fall back to the kernel keyring (lost at reboot) and the write would "succeed".
    expect((out['set'] as { message: string }).message).toMatch(/D-?Bus/i);
    expect(JSON.stringify(out)).not.toContain(CHILD_SECRET);
  });

  it('with the real binding and no Secret Service: "keychain" fails at start, "auto" falls back to memory with the reason', async () => {
    const compiledSelect = pathToFileURL(join(root, 'dist/daemon/secret-store/select-store.js')).href;
    const script = `
      const { selectSecretStore } = await import(${JSON.stringify(compiledSelect)});
      const out = {};
      try {
        await selectSecretStore('keychain', { stateDir: '/nonexistent-unused' });
        out.keychain = 'selected';
      } catch (err) {
        out.keychain = { code: err.code, state: err.details?.state, message: err.message };
      }
      const auto = await selectSecretStore('auto', { stateDir: '/nonexistent-unused' });
      out.auto = { kind: auto.store.kind, warning: auto.warning };
      console.log(JSON.stringify(out));
    `;
    const out = await runChild(script, { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' });
    expect(out['keychain']).toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE', state: 'unavailable' });
    expect((out['keychain'] as { message: string }).message).toMatch(/"secretStore": "keychain".*D-?Bus/i);
    expect(out['auto']).toMatchObject({ kind: 'memory' });
    expect((out['auto'] as { warning: string }).warning).toMatch(/not available.*D-?Bus.*memory only/i);
  });

  it('reports unavailable when the binding cannot be loaded', async () => {
    const store = createKeychainStore({
      loadKeyring: () => Promise.reject(new Error('Cannot find native binding keyring.linux-x64-gnu.node')),
    });
    expect(await store.probe()).toBe('unavailable');
    const err = await rejection(store.get('nordic'));
    expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
    expect(err.details).toMatchObject({ state: 'unavailable' });
    expect(err.message).toContain('keyring.linux-x64-gnu.node');
  });

  it('maps a missing org.freedesktop.secrets to unavailable', async () => {
    const missing = (): Promise<never> =>
      Promise.reject(new Error('The name org.freedesktop.secrets was not provided by any .service files'));
    const store = createKeychainStore({ loadKeyring: fakeKeyring({ setPassword: missing, getPassword: missing }) });
    expect(await store.probe()).toBe('unavailable');
    expect((await rejection(store.get('nordic'))).details).toMatchObject({ state: 'unavailable' });
  });

  it('times out a call that never returns, and fails fast while it is stuck', async () => {
    let release: () => void = () => undefined;
    const hanging = new Promise<void>((resolve) => {
      release = resolve;
    });
    const store = createKeychainStore({
      timeoutMs: 150,
      loadKeyring: fakeKeyring({ setPassword: () => hanging, getPassword: async () => 'value' }),
    });

    const started = Date.now();
    const err = await rejection(store.set('nordic', 'hang-secret'));
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2_000);
    expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
    expect(err.details).toMatchObject({ state: 'timeout' });
    expect(err.message).toMatch(/did not answer within 0\.\d+ s/);
    expect(err.message).not.toContain('hang-secret');
    expect(store.lastState).toBe('timeout');

    // The stuck call still holds a libuv thread: further calls must not pile up behind it.
    const fastStart = Date.now();
    expect((await rejection(store.get('nordic'))).details).toMatchObject({ state: 'timeout' });
    expect(Date.now() - fastStart).toBeLessThan(100);
    expect(await store.probe()).toBe('timeout');

    // Once it finally returns (the user answered the prompt), the keychain is usable again.
    release();
    await hanging;
    await new Promise((resolve) => setImmediate(resolve));
    expect(await store.get('nordic')).toBe('value');
    expect(store.lastState).toBe('ok');
  });

  it('times out a probe against a binding that never resolves', async () => {
    const store = createKeychainStore({ timeoutMs: 100, loadKeyring: fakeKeyring({ setPassword: () => new Promise(() => undefined) }) });
    const started = Date.now();
    expect(await store.probe()).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('maps a locked collection to locked, with the BrokerError code and no secret in the message', async () => {
    const store = createKeychainStore({
      loadKeyring: fakeKeyring({
        // Worst case: the native error echoes the value it was given.
        setPassword: (_service, _account, password) =>
          Promise.reject(new Error(`Cannot create an item in a locked collection (${password})`)),
      }),
    });
    const err = await rejection(store.set('nordic', 'locked-secret-value'));
    expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
    expect(err.details).toMatchObject({ state: 'locked' });
    expect(err.hint).toMatch(/[Uu]nlock/);
    expect(JSON.stringify({ message: err.message, hint: err.hint, details: err.details, envelope: err.toEnvelope() })).not.toContain(
      'locked-secret-value',
    );
    expect(store.lastState).toBe('locked');
    expect(store.lastError).toBe(err);
    expect(await store.probe()).toBe('locked');
  });

  it('maps a dismissed prompt to locked', async () => {
    const store = createKeychainStore({ loadKeyring: fakeKeyring({ getPassword: () => Promise.reject(new Error('Prompt dismissed')) }) });
    expect((await rejection(store.get('nordic'))).details).toMatchObject({ state: 'locked' });
  });

  it('refuses an empty secret instead of reporting the keychain as broken', async () => {
    const store = createKeychainStore({ loadKeyring: workingKeyring() });
    expect((await rejection(store.set('nordic', ''))).code).toBe('BROKER_BAD_REQUEST');
    expect(store.lastState).toBeNull();
  });
});

describe('memory store', () => {
  it('round-trips and is not persistent', async () => {
    const store = createMemoryStore();
    expect(store).toMatchObject({ kind: 'memory', persistent: false, plaintextAtRest: false });
    expect(await store.probe()).toBe('ok');
    expect(await store.get('nordic')).toBeNull();
    await store.set('nordic', 'value');
    expect(await store.get('nordic')).toBe('value');
    expect(await createMemoryStore().get('nordic')).toBeNull();
    expect(await store.delete('nordic')).toBe(true);
    expect(await store.delete('nordic')).toBe(false);
  });
});

describe('file store', () => {
  let dir: string;
  let previousUmask: number;

  beforeAll(() => {
    // Permissive umask: the 0600 mode must come from open(), not from the environment.
    previousUmask = process.umask(0o000);
  });
  afterAll(() => {
    process.umask(previousUmask);
  });
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const stateDir = async (): Promise<string> => {
    dir = await mkdtemp(join(tmpdir(), 'tokenbroker-file-store-'));
    await chmod(dir, 0o700);
    return join(dir, 'state');
  };

  it('stores in a 0600 file, persists across instances and leaves no temp files', async () => {
    const state = await stateDir();
    const store = createFileStore(state);
    expect(store).toMatchObject({ kind: 'file', persistent: true, plaintextAtRest: true });
    expect(await store.probe()).toBe('ok');
    expect(await store.get('nordic')).toBeNull();
    await Promise.all([store.set('nordic', 'value-1'), store.set('other', 'value-2'), store.set('third', 'value-3')]);
    await store.set('nordic', 'value-4');

    const file = join(state, SECRETS_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(state)).mode & 0o777).toBe(0o700);
    expect(await readdir(state)).toEqual([SECRETS_FILE]);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({
      version: 1,
      secrets: { nordic: 'value-4', other: 'value-2', third: 'value-3' },
    });

    const reopened = createFileStore(state);
    expect(await reopened.get('nordic')).toBe('value-4');
    expect(await reopened.delete('nordic')).toBe(true);
    expect(await reopened.delete('nordic')).toBe(false);
    expect(await store.get('nordic')).toBeNull();
    expect(await store.get('other')).toBe('value-2');
    expect(await readdir(state)).toEqual([SECRETS_FILE]);
  });

  it('refuses a symlinked secrets file and leaves its target alone', async () => {
    const state = await stateDir();
    await createFileStore(state).probe(); // creates the state dir
    const target = join(dir, 'elsewhere.json');
    await writeFile(target, '{"version":1,"secrets":{}}', { mode: 0o600 });
    await symlink(target, join(state, SECRETS_FILE));

    const store = createFileStore(state);
    expect(await store.probe()).toBe('unavailable');
    const err = await rejection(store.set('nordic', 'value'));
    expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
    expect(err.details).toMatchObject({ state: 'unavailable' });
    expect(err.message).toMatch(/symlink/);
    expect(await readFile(target, 'utf8')).toBe('{"version":1,"secrets":{}}');
    expect((await lstat(join(state, SECRETS_FILE))).isSymbolicLink()).toBe(true);
  });

  it('refuses a file readable by group or others', async () => {
    const state = await stateDir();
    await createFileStore(state).set('nordic', 'value');
    await chmod(join(state, SECRETS_FILE), 0o644);
    const store = createFileStore(state);
    expect(await store.probe()).toBe('unavailable');
    const err = await rejection(store.get('nordic'));
    expect(err.message).toMatch(/mode 0644/);
    expect(err.hint).toMatch(/revoke/);
  });

  it('refuses a file owned by someone else', async () => {
    const state = await stateDir();
    await createFileStore(state).set('nordic', 'value');
    const ours = process.getuid?.() ?? 0;
    const store = createFileStore(state, { uid: ours + 1 });
    expect(await store.probe()).toBe('unavailable');
    expect((await rejection(store.get('nordic'))).message).toMatch(/owned by uid/);
  });

  it('does not echo a corrupt file into the error', async () => {
    const state = await stateDir();
    await createFileStore(state).probe();
    await writeFile(join(state, SECRETS_FILE), 'corrupt-token-text', { mode: 0o600 });
    const err = await rejection(createFileStore(state).get('nordic'));
    expect(err.message).toMatch(/not valid JSON/);
    expect(JSON.stringify(err.toEnvelope())).not.toContain('corrupt-token-text');
  });
});

describe('selectSecretStore', () => {
  const unavailableKeychain = () =>
    createKeychainStore({ loadKeyring: fakeKeyring({ setPassword: () => Promise.reject(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY')) }) });

  it('auto falls back to memory with a warning when the keychain is unavailable', async () => {
    const selection = await selectSecretStore('auto', { stateDir: '/nonexistent-unused', createKeychain: unavailableKeychain });
    expect(selection.store.kind).toBe('memory');
    expect(selection.store.persistent).toBe(false);
    // The warning names why, so the user knows what to fix (here: no D-Bus session to reach).
    expect(selection.warning).toMatch(/^The OS keychain is not available \(.*Cannot autolaunch D-Bus without X11 \$DISPLAY.*\)\./);
    expect(selection.warning).toMatch(/memory only/);
  });

  it('auto uses a working keychain without a warning', async () => {
    const selection = await selectSecretStore('auto', {
      stateDir: '/nonexistent-unused',
      createKeychain: () => createKeychainStore({ loadKeyring: workingKeyring() }),
    });
    expect(selection.store.kind).toBe('keychain');
    expect(selection.warning).toBeUndefined();
  });

  it('keychain throws instead of downgrading', async () => {
    const err = await rejection(selectSecretStore('keychain', { stateDir: '/nonexistent-unused', createKeychain: unavailableKeychain }));
    expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
    expect(err.details).toMatchObject({ state: 'unavailable' });
    expect(err.message).toMatch(/"secretStore": "keychain"/);
    expect(err.message).toMatch(/Cannot autolaunch D-Bus/);
    expect(err.hint).toMatch(/gnome-keyring or KWallet/);
    expect(err.hint).toMatch(/"memory"/);
  });

  it('keychain reports a timeout as timeout', async () => {
    const err = await rejection(
      selectSecretStore('keychain', {
        stateDir: '/nonexistent-unused',
        createKeychain: () => createKeychainStore({ timeoutMs: 50, loadKeyring: fakeKeyring({ setPassword: () => new Promise(() => undefined) }) }),
      }),
    );
    expect(err.details).toMatchObject({ state: 'timeout' });
  });

  it('memory and file give those stores', async () => {
    expect((await selectSecretStore('memory', { stateDir: '/nonexistent-unused' })).store.kind).toBe('memory');
    const dir = await mkdtemp(join(tmpdir(), 'tokenbroker-select-'));
    try {
      const selection = await selectSecretStore('file', { stateDir: join(dir, 'state') });
      expect(selection.store.kind).toBe('file');
      expect(selection.store.plaintextAtRest).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('file throws when secrets.json is unsafe', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tokenbroker-select-'));
    try {
      const state = join(dir, 'state');
      await createFileStore(state).probe();
      await symlink('/etc/hostname', join(state, SECRETS_FILE));
      const err = await rejection(selectSecretStore('file', { stateDir: state }));
      expect(err.code).toBe('BROKER_SECRET_STORE_UNAVAILABLE');
      expect(err.message).toMatch(/symlink/);

      // The state dir itself is checked too: others must not be able to swap the file.
      await rm(join(state, SECRETS_FILE));
      await chmod(state, 0o777);
      const dirErr = await rejection(selectSecretStore('file', { stateDir: state }));
      expect(dirErr.details).toMatchObject({ state: 'unavailable' });
      expect(dirErr.message).toMatch(/writable by group or others/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
