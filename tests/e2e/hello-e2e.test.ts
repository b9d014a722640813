import { lstat, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonNotAnsweringError, TokenBrokerClient } from '../../src/client/index.js';
import { readDaemonLock } from '../../src/node/daemon-lock.js';
import { helloMac } from '../../src/protocol/hello.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function daemonIn(home: string, config?: Record<string, unknown>): Promise<TestDaemon> {
  const daemon = await startTestDaemon({ home, ...(config === undefined ? {} : { config }) });
  cleanups.push(() => daemon.cleanup());
  return daemon;
}

/** One raw request on a fresh connection (no client library, no handshake). */
function raw(socketPath: string, url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: url, headers: { host: 'localhost', connection: 'close', ...headers } }, (res: IncomingMessage) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('hello handshake with the real daemon', () => {
  it('a fresh 0600 key per start in state/daemon.key; GET /v1/hello answers its HMAC; extra listeners do not serve it', async () => {
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const listenerPath = path.join(home, 'shared', 'tb.sock');
    const daemon = await daemonIn(home, { listeners: [{ path: listenerPath, mode: '0660' }], secretStore: 'memory' });
    const keyFile = path.join(home, 'state', 'daemon.key');
    expect((await lstat(keyFile)).mode & 0o777).toBe(0o600);
    const key = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'hex');
    expect(key).toHaveLength(32);

    const nonce = '0123456789abcdef0123456789abcdef';
    const answer = await raw(daemon.socketPath, `/v1/hello?nonce=${nonce}`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ mac: helloMac(key, nonce) });
    expect((await raw(daemon.socketPath, '/v1/hello?nonce=short')).status).toBe(400);

    // The library verified the daemon and talks to it.
    expect((await daemon.client.status()).pid).toBe(daemon.pid);

    // On an extra listener: not without a token, and not with one either.
    expect((await raw(listenerPath, `/v1/hello?nonce=${nonce}`)).status).toBe(401);
    const token = (await daemon.client.createClientToken({ description: 'box', scope: 'user' })).token;
    const refused = await raw(listenerPath, `/v1/hello?nonce=${nonce}`, { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(403);
    expect(refused.body).not.toContain('mac');

    // A restart writes a new key: an old answer proves nothing.
    await daemon.stop();
    const again = await daemonIn(home, { secretStore: 'memory' });
    const next = Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'hex');
    expect(next.equals(key)).toBe(false);
    expect(JSON.parse((await raw(again.socketPath, `/v1/hello?nonce=${nonce}`)).body)).toEqual({ mac: helloMac(next, nonce) });
  });

  it('a frozen daemon (SIGSTOP): the library and `status` say it accepted and did not answer, with its pid', async () => {
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const daemon = await daemonIn(home, { secretStore: 'memory' });
    const stateDir = path.join(home, 'state');
    // The daemon's state-dir lock names it (written by the daemon itself once its lock is in;
    // a stand-in here until then, in the lock's format).
    if ((await readDaemonLock(stateDir)) === undefined) {
      await writeFile(path.join(stateDir, 'daemon.lock'), JSON.stringify({ pid: daemon.pid, socket: daemon.socketPath, startedAt: new Date().toISOString(), version: '0.1.0' }));
    }
    process.kill(daemon.pid, 'SIGSTOP');
    cleanups.push(async () => {
      process.kill(daemon.pid, 'SIGCONT');
    });
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, timeoutMs: 500 });
    cleanups.push(() => client.close());
    const error = await client.status().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DaemonNotAnsweringError);
    expect((error as DaemonNotAnsweringError).message).toBe(`The tokenbroker daemon (pid ${daemon.pid}) accepted the connection on ${daemon.socketPath} but did not answer within 1 s.`);

    // Autostart on: a live daemon holds the socket, so nothing is started in its place.
    const result = await runCli(['status'], { env: { ...daemon.env, TOKENBROKER_NO_AUTOSTART: undefined } as NodeJS.ProcessEnv, timeoutMs: 30_000 });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`tokenbroker: The tokenbroker daemon (pid ${daemon.pid}) accepted the connection on ${daemon.socketPath} but did not answer within 5 s.`);
    expect(result.stderr).toContain(`hint: It may be stopped (SIGSTOP, a debugger) or stuck: \`kill -CONT ${daemon.pid}\``);
    expect(result.stderr).not.toContain('tokenbroker daemon`');
  });
});
