import { access, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { importKeyring, KEYCHAIN_SERVICE, keychainAccountScope } from '../../src/daemon/secret-store/keychain-store.js';
import { SecretStoreStatusSchema } from '../../src/protocol/token.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/**
 * A `state/secrets.json` left by `"secretStore": "file"` after switching stores (issue 14): real
 * daemons, restarted on the same home with another store; the keychain case uses the real
 * keychain (scripts/with-keyring.sh).
 */
let af: FakeArtifactory;
const homes: string[] = [];
const daemons: TestDaemon[] = [];
beforeAll(async () => {
  af = await startFakeArtifactory();
});
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.cleanup()));
});
afterAll(async () => {
  await af.close();
  await Promise.all(homes.map((h) => rm(h, { recursive: true, force: true })));
});

function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Sets a token with the file store, stops that daemon: the home now holds state/secrets.json. */
async function homeWithFileStoreToken(server: string, token: string): Promise<{ home: string; config: (store: string) => Record<string, unknown>; secretsFile: string }> {
  const home = await makeTempHome();
  homes.push(home);
  af.addToken(token, { token_id: `tid-${server}`, expiry: Math.floor(Date.now() / 1000) + 60 * 86400 });
  const config = (secretStore: string): Record<string, unknown> => ({ allowInsecureLoopback: true, secretStore, servers: [{ name: server, origin: af.origin }] });
  const first = await startTestDaemon({ home, config: config('file') });
  await first.client.setToken(token);
  expect(await first.stop()).toBe(0);
  const secretsFile = path.join(home, 'state', 'secrets.json');
  expect(await readFile(secretsFile, 'utf8')).toContain(token);
  return { home, config, secretsFile };
}

async function storeStatus(daemon: TestDaemon) {
  return SecretStoreStatusSchema.parse((await daemon.client.status()).secretStore);
}

describe('a plaintext secrets file left behind', () => {
  it('file -> memory: status flags it with its path, diagnose fails, `token remove` deletes it', async () => {
    const server = unique('mem');
    const token = `cmVmdGtu${'M'.repeat(56)}`;
    const { home, config, secretsFile } = await homeWithFileStoreToken(server, token);
    const daemon = await startTestDaemon({ home, config: config('memory') });
    daemons.push(daemon);

    expect(await storeStatus(daemon)).toMatchObject({ kind: 'memory', plaintextAtRest: true, plaintextPath: secretsFile, warning: expect.stringContaining(secretsFile) });
    const diagnose = await runCli(['diagnose', '--json'], { env: daemon.env });
    const report = JSON.parse(diagnose.stdout) as { checks: { id: string; status: string; message: string }[] };
    expect(report.checks.find((c) => c.id === 'secret-store')).toMatchObject({ status: 'fail', message: expect.stringContaining(secretsFile) });
    expect(diagnose.code).not.toBe(0);
    await access(secretsFile);

    const removed = await runCli(['token', 'remove', '--yes'], { env: daemon.env });
    expect(removed.code, removed.stderr).toBe(0);
    await expect(access(secretsFile)).rejects.toMatchObject({ code: 'ENOENT' });
    const after = await storeStatus(daemon);
    expect(after).toMatchObject({ kind: 'memory', plaintextAtRest: false });
    expect(after.plaintextPath).toBeUndefined();
  });

  it('file -> keychain (working): the token is moved into the keychain and the file deleted', async () => {
    const server = unique('kc');
    const token = `cmVmdGtu${'K'.repeat(56)}`;
    const keyring = await importKeyring();
    const { home, config, secretsFile } = await homeWithFileStoreToken(server, token);
    // A test home's keychain entries are its own: account `<server>@<scope of the home>`.
    const account = `${server}@${keychainAccountScope({ TOKENBROKER_HOME: home })}`;
    try {
      const daemon = await startTestDaemon({ home, config: config('keychain') });
      daemons.push(daemon);
      await expect(access(secretsFile)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await keyring.getPassword(KEYCHAIN_SERVICE, account)).toBe(token);
      expect(await keyring.getPassword(KEYCHAIN_SERVICE, server)).toBeNull();
      expect(await storeStatus(daemon)).toMatchObject({ kind: 'keychain', state: 'ok', plaintextAtRest: false });
      // The daemon uses the migrated token: still valid, no secret missing.
      expect(await daemon.client.token({ server })).toMatchObject({ state: 'valid', tokenId: `tid-${server}` });
      expect(daemon.output()).toContain('into the OS keychain and deleted it');
      expect(daemon.output()).not.toContain(token);
    } finally {
      await keyring.deletePassword(KEYCHAIN_SERVICE, account);
    }
  });
});
