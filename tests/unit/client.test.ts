import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, DaemonUnavailableError, TokenBrokerClient } from '../../src/client/index.js';
import { makeTempHome } from '../helpers/test-daemon.js';
import { withHelloKey } from '../helpers/hello-key.js';
import type { Status } from '../../src/protocol/status.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A stand-in daemon on a real socket that answers the hello handshake and then whatever the test wants. */
async function fakeDaemon(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ socketPath: string; stateDir: string }> {
  const home = await makeTempHome();
  const socketPath = path.join(home, 'fake.sock');
  const stateDir = path.join(home, 'state');
  const hello = await withHelloKey(stateDir);
  const server: Server = createServer(hello.answer(handler));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(home, { recursive: true, force: true });
  });
  return { socketPath, stateDir };
}

describe('TokenBrokerClient', () => {
  it('turns an error envelope into a BrokerError with code, hint and details', async () => {
    const daemon = await fakeDaemon((_req, res) => {
      res.writeHead(409, { 'content-type': 'application/json', 'x-tokenbroker-version': '0.1.0' });
      res.end(JSON.stringify({ error: { code: 'BROKER_TOKEN_MISSING', message: 'No token for nordic.', hint: 'Set one.', details: { server: 'nordic' } } }));
    });
    const client = new TokenBrokerClient(daemon);
    cleanups.push(() => client.close());
    const error = await client.status().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BrokerError);
    expect(error).toMatchObject({ code: 'BROKER_TOKEN_MISSING', message: 'No token for nordic.', hint: 'Set one.', details: { server: 'nordic' }, status: 409 });
  });

  it('sends Host: localhost and no Origin', async () => {
    let seen: Record<string, unknown> = {};
    const daemon = await fakeDaemon((req, res) => {
      seen = req.headers;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(minimalStatus('0.1.0')));
    });
    const client = new TokenBrokerClient(daemon);
    cleanups.push(() => client.close());
    await client.status();
    expect(seen.host).toBe('localhost');
    expect(seen.origin).toBeUndefined();
  });

  it('a non-envelope error becomes BROKER_INTERNAL, not a crash', async () => {
    const daemon = await fakeDaemon((_req, res) => {
      res.writeHead(502);
      res.end('<html>bad gateway</html>');
    });
    const client = new TokenBrokerClient(daemon);
    cleanups.push(() => client.close());
    await expect(client.status()).rejects.toMatchObject({ code: 'BROKER_INTERNAL' });
  });

  it('warns once when the daemon version differs', async () => {
    const daemon = await fakeDaemon((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-tokenbroker-version': '9.9.9' });
      res.end(JSON.stringify(minimalStatus('9.9.9')));
    });
    const warnings: string[] = [];
    const client = new TokenBrokerClient({ ...daemon, onVersionMismatch: (daemon, own) => warnings.push(`${daemon}/${own}`) });
    cleanups.push(() => client.close());
    await client.status();
    await client.status();
    expect(warnings).toEqual(['9.9.9/0.1.0']);
  });

  it('no socket -> DaemonUnavailableError with a start hint', async () => {
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const client = new TokenBrokerClient({ socketPath: path.join(home, 'none.sock') });
    cleanups.push(() => client.close());
    const error = await client.status().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DaemonUnavailableError);
    expect((error as DaemonUnavailableError).hint).toMatch(/tokenbroker daemon/);
  });
});

/** The smallest answer that satisfies StatusSchema (a fake daemon's `GET /v1/status`). */
function minimalStatus(version: string): Status {
  return {
    version,
    pid: 1,
    uptimeSeconds: 0,
    startedAt: 'x',
    socket: { path: 'p', activated: false },
    config: { path: 'c' },
    paths: { state: 's', cache: 'c' },
    tokens: [],
    secretStore: { kind: 'memory', state: 'ok', persistent: false, plaintextAtRest: false },
    sources: { count: 0, lastRefreshAt: null, nextRefreshAt: null, failing: 0, failingSources: [], needsToken: [], items: [] },
    listeners: [],
    clientTokens: { count: 0 },
    cache: { bytes: 0, entries: 0, maxBytes: 0 },
  };
}
