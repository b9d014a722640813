import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, WebSocket } from 'undici';
import { describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/client.js';
import { UntrustedSocketError } from '../../src/client/socket-trust.js';
import { ensureListenerDir, listenerDirMode } from '../../src/daemon/extra-listeners.js';
import { PrivateDirError } from '../../src/node/private-dir.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { CLI_ENTRY, isolatedEnv, runCli, startTestDaemon } from '../helpers/test-daemon.js';
import { isRoot, itWhen, itWithTools } from '../helpers/tools.js';
import { waitFor, waitForSocketFile } from '../helpers/wait-for.js';
import { useTempHomes } from '../helpers/per-test.js';

const tempHome = useTempHomes({ after: 'all' });

async function errorOf(promise: Promise<unknown>): Promise<BrokerError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BrokerError);
  return err as BrokerError;
}

/** Every file under dir, as text (the state dir is small). */
async function allText(dir: string): Promise<string> {
  let text = '';
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) text += await readFile(path.join(entry.parentPath, entry.name), 'utf8');
  }
  return text;
}

/** Opens the event WebSocket on a socket; resolves 'open' or 'refused'. */
function openEvents(socketPath: string, headers: Record<string, string>) {
  const dispatcher = new Agent({ connect: { socketPath } });
  const ws = new WebSocket('ws://localhost/v1/events', { dispatcher, headers });
  const messages: string[] = [];
  ws.addEventListener('message', (m) => messages.push(String(m.data)));
  const opened = new Promise<'open' | 'refused'>((resolve) => {
    ws.addEventListener('open', () => resolve('open'));
    ws.addEventListener('error', () => resolve('refused'));
  });
  const closed = new Promise<void>((resolve) => ws.addEventListener('close', () => resolve()));
  return { opened, closed, messages, close: async () => dispatcher.close().catch(() => undefined) };
}

describe('extra listeners (real daemon)', () => {
  it('serves a shared socket with the configured mode, gated by scoped client tokens; the owner manages them with the CLI', async () => {
    const home = await tempHome();
    const listenerPath = path.join(home, 'shared', 'tb.sock');
    const daemon = await startTestDaemon({ home, config: { listeners: [{ path: listenerPath, mode: '0660' }] } });
    const clients: TokenBrokerClient[] = [];
    const on = (clientToken?: string): TokenBrokerClient => {
      const client = new TokenBrokerClient({ socketPath: listenerPath, onVersionMismatch: () => undefined, ...(clientToken === undefined ? {} : { clientToken }) });
      clients.push(client);
      return client;
    };
    try {
      // The socket gets the configured mode through the umask; its new directory lets the group search it.
      expect((await lstat(listenerPath)).mode & 0o777).toBe(0o660);
      expect((await lstat(path.dirname(listenerPath))).mode & 0o777).toBe(0o710);
      expect((await lstat(daemon.socketPath)).mode & 0o777).toBe(0o600);
      expect((await daemon.client.status()).listeners).toEqual([{ path: listenerPath, mode: '0660' }]);
      expect((await runCli(['status'], { env: daemon.env })).stdout).toContain(`extra listener: ${listenerPath} (mode 0660, client token required)`);

      // Without a token nothing is served, not even status. (Asked raw: the client library without
      // a client token takes the socket for the owner's and refuses a shared one before sending.)
      await expect(on().status()).rejects.toBeInstanceOf(UntrustedSocketError);
      const anonymous = new Agent({ connect: { socketPath: listenerPath } });
      try {
        const answer = await anonymous.request({ origin: 'http://localhost', path: '/v1/status', method: 'GET', headers: { host: 'localhost' } });
        expect(answer.statusCode).toBe(401);
        expect(await answer.body.json()).toMatchObject({ error: { code: 'BROKER_UNAUTHORIZED' } });
      } finally {
        await anonymous.close();
      }

      // The CLI prints the token alone on stdout, the warning on stderr.
      const created = await runCli(['client-token', 'create', '--description', 'ci-runner', '--scope', 'status:read'], { env: daemon.env });
      expect(created.code).toBe(0);
      const readToken = created.stdout.trim();
      expect(readToken).toMatch(/^tbk_[A-Za-z0-9_-]{43}$/);
      expect(created.stderr).toMatch(/will not be shown again/);
      expect(created.stderr).not.toContain(readToken);

      const reader = on(readToken);
      expect((await reader.status()).pid).toBe(daemon.pid);
      expect((await reader.token()).state).toBe('absent');
      const forbidden = await errorOf(reader.setToken('some-identity-token', { verify: false }));
      expect(forbidden.code).toBe('BROKER_FORBIDDEN');
      expect(forbidden.details).toEqual({ requiredScope: 'token:write' });
      // Even a user-scope token cannot manage client tokens off the owner's socket.
      const userToken = (await daemon.client.createClientToken({ description: 'container', scope: 'user' })).token;
      expect((await errorOf(on(userToken).listClientTokens())).code).toBe('BROKER_FORBIDDEN');
      expect((await errorOf(on(userToken).createClientToken({ description: 'escalate', scope: 'user' }))).code).toBe('BROKER_FORBIDDEN');
      expect((await on(userToken).token()).state).toBe('absent');

      const createdJson = await runCli(['client-token', 'create', '--description', 'downloader', '--scope', 'fetch', '--expires-in-days', '7', '--json'], { env: daemon.env });
      expect(createdJson.code).toBe(0);
      const createdFetch = JSON.parse(createdJson.stdout) as { token: string; scope: string[]; issuedAt: string; expiresAt: string };
      expect(createdFetch.scope).toEqual(['fetch']);
      expect(Date.parse(createdFetch.expiresAt) - Date.parse(createdFetch.issuedAt)).toBe(7 * 86_400_000);
      expect(createdJson.stderr).toMatch(/will not be shown again/);
      const fetchToken = createdFetch.token;
      const fetchOnly = await errorOf(on(fetchToken).status());
      expect(fetchOnly.code).toBe('BROKER_FORBIDDEN');
      expect(fetchOnly.message).toContain('"status:read"');

      // The CLI works on the shared socket with the token from the environment (never argv).
      const [cliOnShared, cliWithout] = await Promise.all([
        runCli(['--socket', listenerPath, 'status', '--json'], { env: { ...daemon.env, TOKENBROKER_CLIENT_TOKEN: readToken } }),
        runCli(['--socket', listenerPath, 'status'], { env: daemon.env }),
      ]);
      expect(cliOnShared.code).toBe(0);
      expect(JSON.parse(cliOnShared.stdout)).toMatchObject({ pid: daemon.pid });
      // Without TOKENBROKER_CLIENT_TOKEN the CLI takes it for the owner's socket: not ours to use.
      expect(cliWithout.code).toBe(1);
      expect(cliWithout.stderr).toContain(`refusing to talk to the tokenbroker socket: ${path.dirname(listenerPath)} is open to group or others (mode 0710)`);

      // The event stream needs a token with status:read too.
      const refusedEvents = openEvents(listenerPath, {});
      expect(await refusedEvents.opened).toBe('refused');
      await refusedEvents.close();
      const events = openEvents(listenerPath, { authorization: `Bearer ${readToken}` });
      expect(await events.opened).toBe('open');

      // The list: the seed's columns, the OS user in the subject, never a token.
      const list = await runCli(['client-token', 'list'], { env: daemon.env });
      expect(list.code).toBe(0);
      const [header, ...rows] = list.stdout.trimEnd().split('\n');
      expect(header).toMatch(/^Description\s+Subject\s+Token ID\s+Issued\s+Expires\s+Scope\s+Last used$/);
      expect(rows).toHaveLength(3);
      expect(rows[0]).toContain(`${os.userInfo().username} (ci-runner)`);
      expect(rows[0]).toContain('status:read');
      // Refused for its scope, but the token itself was valid: that counts as use.
      // Piped: tab-separated columns.
      expect(rows[2]).toMatch(/^downloader\t.*\tfetch\t\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
      const listJson = await runCli(['client-token', 'list', '--json'], { env: daemon.env });
      const listed = JSON.parse(listJson.stdout) as { id: string; description: string; lastUsedAt: string | null }[];
      expect(listed.find((t) => t.description === 'ci-runner')?.lastUsedAt).not.toBeNull();

      // A wrong token and a revoked one get the same answer.
      const wrong = await errorOf(on(`tbk_${'A'.repeat(43)}`).status());
      const readerId = listed.find((t) => t.description === 'ci-runner')?.id ?? '';
      const revoke = await runCli(['client-token', 'revoke', readerId], { env: daemon.env });
      expect(revoke.code).toBe(0);
      expect(revoke.stdout).toContain(`Revoked client token ${readerId}`);
      const revoked = await errorOf(reader.status());
      expect(revoked.code).toBe('BROKER_UNAUTHORIZED');
      expect([revoked.message, revoked.hint]).toEqual([wrong.message, wrong.hint]);
      const again = await runCli(['client-token', 'revoke', readerId], { env: daemon.env });
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('BROKER_NOT_FOUND');

      // Shutdown: the event stream on the shared socket hears it, both sockets go away.
      for (const client of clients) await client.close();
      expect(await daemon.stop('SIGTERM')).toBe(0);
      await events.closed;
      await events.close();
      expect(events.messages.map((m) => (JSON.parse(m) as { type: string }).type).filter((type) => type !== 'source.failed')).toEqual(['daemon.stopping']);
      await expect(lstat(listenerPath)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(lstat(daemon.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });

      // The token values appear nowhere: daemon log, state files, list output.
      const everything = [daemon.output(), await allText(path.join(home, 'state')), list.stdout, listJson.stdout].join('\n');
      expect(everything).toContain('client token created');
      for (const token of [readToken, userToken, fetchToken]) expect(everything).not.toContain(token.slice(4));
      // lastUsedAt reached the disk on shutdown.
      const stored = JSON.parse(await readFile(path.join(home, 'state', 'client-tokens.json'), 'utf8')) as { tokens: { description: string; lastUsedAt?: number }[] };
      expect(stored.tokens.find((t) => t.description === 'container')?.lastUsedAt).toBeTypeOf('number');
    } finally {
      for (const client of clients) await client.close();
      await daemon.cleanup();
    }
  }, 60_000);

  it('a listener beside the owner socket works too (same user, or a bind-mounted socket file); the owner directory stays 0700', async () => {
    const home = await tempHome();
    const listenerPath = path.join(home, 'run', 'container.sock');
    const daemon = await startTestDaemon({ home, config: { listeners: [{ path: listenerPath, mode: '0660' }] } });
    const client = new TokenBrokerClient({ socketPath: listenerPath, onVersionMismatch: () => undefined, clientToken: (await daemon.client.createClientToken({ description: 'box', scope: ['status:read'] })).token });
    try {
      expect((await lstat(listenerPath)).mode & 0o777).toBe(0o660);
      expect((await lstat(path.join(home, 'run'))).mode & 0o777).toBe(0o700);
      expect((await client.status()).pid).toBe(daemon.pid);
      expect(daemon.output()).toMatch(/the group cannot reach the socket/);
    } finally {
      await client.close();
      await daemon.cleanup();
    }
  });

  it.each([
    ['at the owner socket path', (home: string) => ({ listeners: [{ path: path.join(home, 'run', 'broker.sock'), mode: '0660' }] }), /extra listener .* is the owner's socket/],
    ['listed twice', (home: string) => ({ listeners: [{ path: path.join(home, 's', 'a.sock') }, { path: path.join(home, 's', 'a.sock') }] }), /is listed twice/],
    ['a relative path', () => ({ listeners: [{ path: 'shared.sock' }] }), /listeners\[0\]\.path" must be an absolute socket path/],
    ['a bad mode', (home: string) => ({ listeners: [{ path: path.join(home, 's', 'a.sock'), mode: '0999' }] }), /listeners\[0\]\.mode" must be an octal file mode/],
  ])('a listener %s stops the daemon with a clear message', async (_name, config, message) => {
    const home = await tempHome();
    await writeFile(path.join(home, 'config.json'), JSON.stringify(config(home)));
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // Nothing is left behind: the owner's socket was removed again.
    await expect(lstat(path.join(home, 'run', 'broker.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a group-writable listener directory stops the daemon', async () => {
    const home = await tempHome();
    await mkdir(path.join(home, 'shared'));
    await chmod(path.join(home, 'shared'), 0o770);
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ listeners: [{ path: path.join(home, 'shared', 'tb.sock'), mode: '0660' }] }));
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/extra listener .*: listener directory .* is writable by group or others \(mode 0770\)/);
  });
});


describe('extra listeners under socket activation', () => {
  // Locally a missing systemd skips this; in CI (CI=true) it fails (scripts/setup.sh installs systemd).
  itWithTools(['systemd-socket-activate'], 'the daemon opens and removes its extra listeners itself; the activated socket is left to its owner', async () => {
    const home = await tempHome();
    await mkdir(path.join(home, 'run'), { mode: 0o700 });
    const mainSocket = path.join(home, 'run', 'broker.sock');
    const listenerPath = path.join(home, 'shared', 'tb.sock');
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ listeners: [{ path: listenerPath, mode: '0660' }] }));
    // systemd's own test activator binds the main socket and execs the daemon (same PID) on the first connection.
    const activator = spawn('systemd-socket-activate', ['-l', mainSocket, '-E', 'TOKENBROKER_HOME', '-E', 'TOKENBROKER_NO_AUTOSTART', process.execPath, CLI_ENTRY, 'daemon'], { env: isolatedEnv(home), stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    activator.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    const exitedWith = new Promise<number | null>((resolve) => activator.once('exit', (code) => resolve(code)));
    const owner = new TokenBrokerClient({ socketPath: mainSocket, onVersionMismatch: () => undefined });
    let shared: TokenBrokerClient | undefined;
    try {
      await waitForSocketFile(mainSocket, activator, () => `the activator did not bind it:\n${log}`);
      // The first request (which made the activator exec the daemon) may be served while the
      // extra listeners are still being opened: ask until they are.
      const status = await waitFor('the extra listeners', async () => {
        const answer = await owner.status();
        return (answer.listeners as unknown[]).length === 0 ? undefined : answer;
      }, { timeoutMs: 5_000, intervalMs: 20 });
      expect(status.socket.activated).toBe(true);
      expect(status.listeners).toEqual([{ path: listenerPath, mode: '0660' }]);
      expect((await lstat(listenerPath)).mode & 0o777).toBe(0o660);
      shared = new TokenBrokerClient({ socketPath: listenerPath, onVersionMismatch: () => undefined, clientToken: (await owner.createClientToken({ description: 'activated', scope: ['status:read'] })).token });
      expect((await shared.status()).pid).toBe(status.pid);
      await owner.close();
      await shared.close();
      activator.kill('SIGTERM');
      expect(await exitedWith, log).toBe(0);
      await expect(lstat(listenerPath)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await lstat(mainSocket)).isSocket()).toBe(true);
    } finally {
      await owner.close();
      await shared?.close();
      if (activator.exitCode === null && activator.signalCode === null) activator.kill('SIGKILL');
    }
  });
});

describe('listener directories', () => {
  it('gives search permission to exactly the classes the socket mode lets in', () => {
    expect(listenerDirMode(0o600)).toBe(0o700);
    expect(listenerDirMode(0o660)).toBe(0o710);
    expect(listenerDirMode(0o620)).toBe(0o710);
    expect(listenerDirMode(0o666)).toBe(0o711);
    expect(listenerDirMode(0o606)).toBe(0o701);
  });

  it('creates missing directories with that mode, whatever the umask', async () => {
    const home = await tempHome();
    const dir = path.join(home, 'a', 'b');
    const previous = process.umask(0o077);
    try {
      expect(await ensureListenerDir(dir, 0o660)).toEqual([]);
    } finally {
      process.umask(previous);
    }
    expect((await lstat(dir)).mode & 0o777).toBe(0o710);
    expect((await lstat(path.join(home, 'a'))).mode & 0o777).toBe(0o710);
  });

  it('leaves an existing shared directory as it is, and warns when the group cannot reach the socket', async () => {
    const home = await tempHome();
    const dir = path.join(home, 'shared');
    await mkdir(dir);
    await chmod(dir, 0o750);
    expect(await ensureListenerDir(dir, 0o660)).toEqual([]);
    expect((await lstat(dir)).mode & 0o777).toBe(0o750);
    await chmod(dir, 0o700);
    const warnings = await ensureListenerDir(dir, 0o666);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/group cannot reach the socket.*chmod g\+x/);
  });

  it.each([
    ['a symlink', async (dir: string, other: string) => symlink(other, dir), /is a symlink/],
    ['world-writable (like /tmp)', async (dir: string) => mkdir(dir).then(() => chmod(dir, 0o1777)), /writable by group or others \(mode 0777\)/],
    ['a file', async (dir: string) => writeFile(dir, 'x'), /exists|not a directory/],
  ])('refuses a directory that is %s', async (_name, prepare, message) => {
    const home = await tempHome();
    const other = await tempHome();
    const dir = path.join(home, 'shared');
    await prepare(dir, other);
    const err = await ensureListenerDir(dir, 0o660).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(message);
  });

  itWhen(isRoot, 'root (to chown a directory to another user)', 'refuses a directory owned by another user', async () => {
    const home = await tempHome();
    const dir = path.join(home, 'shared');
    await mkdir(dir, { mode: 0o710 });
    const { chown } = await import('node:fs/promises');
    await chown(dir, 65534, 65534);
    const err = await ensureListenerDir(dir, 0o660).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PrivateDirError);
    expect((err as Error).message).toMatch(/owned by uid 65534, not by you/);
  });
});
