import { spawn } from 'node:child_process';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmod, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonNotAnsweringError, TokenBrokerClient, UnverifiedDaemonError, UntrustedSocketError } from '../../src/client/index.js';
import { parseAnswer, verifyDaemon } from '../../src/client/daemon-handshake.js';
import { helloMac } from '../../src/protocol/hello.js';
import { makeTempHome } from '../helpers/test-daemon.js';
import { withHelloKey } from '../helpers/hello-key.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const TOKEN = `cmVmdGtu${'Q'.repeat(56)}`;

interface Seen {
  /** Every request line, in order, with the connection it came on. */
  requests: { connection: number; method: string; url: string; body: string }[];
}

/** A stand-in on a real socket: `hello` decides how it answers the handshake, everything else gets `{}`. */
async function standIn(hello: 'right-key' | 'wrong-key' | 'not-found' | 'never'): Promise<{ socketPath: string; stateDir: string; seen: Seen }> {
  const home = await makeTempHome();
  const socketPath = path.join(home, 'broker.sock');
  const stateDir = path.join(home, 'state');
  const keyed = await withHelloKey(stateDir);
  const seen: Seen = { requests: [] };
  let connections = 0;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const connection = (req.socket as Socket & { id?: number }).id ?? -1;
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.requests.push({ connection, method: req.method ?? '', url: req.url ?? '', body });
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/v1/hello') {
        if (hello === 'never') return;
        if (hello === 'not-found') {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"BROKER_NOT_FOUND","message":"x","hint":"y"}}');
          return;
        }
        // An impostor cannot read the key: the best it can do is answer under a key of its own.
        const key = hello === 'right-key' ? keyed.key : Buffer.alloc(32, 7);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ mac: helloMac(key, url.searchParams.get('nonce') ?? '') }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    });
  };
  const server: Server = createServer(handler);
  server.on('connection', (socket: Socket & { id?: number }) => (socket.id = ++connections));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rm(home, { recursive: true, force: true });
  });
  return { socketPath, stateDir, seen };
}

describe('hello handshake (client side)', () => {
  it('verifies every new connection before its first request, and only once per connection', async () => {
    const daemon = await standIn('right-key');
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, stateDir: daemon.stateDir });
    cleanups.push(() => client.close());
    // Two at once: two connections; then one more on a kept-alive connection.
    await Promise.all([client.sources(), client.apps()]);
    await client.sources();
    const byConnection = new Map<number, string[]>();
    for (const r of daemon.seen.requests) byConnection.set(r.connection, [...(byConnection.get(r.connection) ?? []), r.url.split('?')[0] as string]);
    expect(byConnection.size).toBe(2);
    for (const urls of byConnection.values()) {
      expect(urls[0]).toBe('/v1/hello');
      expect(urls.filter((u) => u === '/v1/hello')).toHaveLength(1);
    }
    expect(daemon.seen.requests.filter((r) => r.url !== '/v1/sources' && r.url !== '/v1/apps' && !r.url.startsWith('/v1/hello'))).toEqual([]);
  });

  it('an impostor that cannot read the key gets the hello and nothing else: never the token', async () => {
    const impostor = await standIn('wrong-key');
    const client = new TokenBrokerClient({ socketPath: impostor.socketPath, stateDir: impostor.stateDir });
    cleanups.push(() => client.close());
    const error = await client.setToken(TOKEN).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnverifiedDaemonError);
    expect(error).toBeInstanceOf(UntrustedSocketError);
    expect(error).toMatchObject({ code: 'DAEMON_UNVERIFIED', exitCode: 1, message: expect.stringContaining('does not match the daemon key') });
    await expect(client.events().next()).rejects.toBeInstanceOf(UnverifiedDaemonError);
    expect(impostor.seen.requests.map((r) => r.url.split('?')[0])).toEqual(['/v1/hello', '/v1/hello']);
    expect(JSON.stringify(impostor.seen.requests)).not.toContain(TOKEN);
  });

  it('no key to check against (another state dir): refused, with a hint to pass stateDir', async () => {
    const daemon = await standIn('right-key');
    const elsewhere = await makeTempHome();
    cleanups.push(() => rm(elsewhere, { recursive: true, force: true }));
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, stateDir: elsewhere });
    cleanups.push(() => client.close());
    await expect(client.status()).rejects.toMatchObject({ code: 'DAEMON_UNVERIFIED', hint: expect.stringContaining('stateDir') });
    expect(daemon.seen.requests.map((r) => r.url.split('?')[0])).toEqual(['/v1/hello']);
  });

  it('a key file others can read is not trusted', async () => {
    const daemon = await standIn('right-key');
    await chmod(path.join(daemon.stateDir, 'daemon.key'), 0o644);
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, stateDir: daemon.stateDir });
    cleanups.push(() => client.close());
    await expect(client.status()).rejects.toMatchObject({ code: 'DAEMON_UNVERIFIED', message: expect.stringContaining('open to group or others') });
  });

  it('a daemon without the hello route (an older version) is refused with a restart hint', async () => {
    const daemon = await standIn('not-found');
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, stateDir: daemon.stateDir });
    cleanups.push(() => client.close());
    await expect(client.status()).rejects.toMatchObject({ code: 'DAEMON_UNVERIFIED', hint: expect.stringContaining('daemon restart') });
  });

  it('with a client token (extra listener) no hello is sent', async () => {
    const daemon = await standIn('never');
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, clientToken: 'tbk_x' });
    cleanups.push(() => client.close());
    await client.sources();
    expect(daemon.seen.requests.map((r) => r.url)).toEqual(['/v1/sources']);
  });
});

describe('honest timeouts', () => {
  it('a process that accepts and never answers the hello is "not answering", named by the pid in the state-dir lock', async () => {
    const daemon = await standIn('never');
    // The lock names another live process (a reader never takes its own pid for a daemon).
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    cleanups.push(async () => {
      holder.kill();
    });
    await writeFile(path.join(daemon.stateDir, 'daemon.lock'), JSON.stringify({ pid: holder.pid, socket: daemon.socketPath, startedAt: new Date().toISOString(), version: '0.1.0' }));
    const client = new TokenBrokerClient({ socketPath: daemon.socketPath, stateDir: daemon.stateDir, timeoutMs: 300 });
    cleanups.push(() => client.close());
    const error = await client.status().catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DaemonNotAnsweringError);
    expect(error).toMatchObject({
      code: 'DAEMON_NOT_ANSWERING',
      exitCode: 3,
      pid: holder.pid,
      message: `The tokenbroker daemon (pid ${holder.pid}) accepted the connection on ${daemon.socketPath} but did not answer within 1 s.`,
      hint: expect.stringContaining(`kill -CONT ${holder.pid}`),
    });
  });

  it('a local request that gets no answer is "not answering"; one that waits on an upstream has no client-side bound', async () => {
    const home = await makeTempHome();
    const socketPath = path.join(home, 'broker.sock');
    const stateDir = path.join(home, 'state');
    const keyed = await withHelloKey(stateDir);
    const pending: ServerResponse[] = [];
    const server = createServer(
      keyed.answer((req, res) => {
        req.resume();
        // The "upstream" answers after several client timeouts; status never answers.
        if (req.url === '/v1/sources/refresh') setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('[]'), 1_000);
        else pending.push(res);
      }),
    );
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(home, { recursive: true, force: true });
    });
    const client = new TokenBrokerClient({ socketPath, stateDir, timeoutMs: 200 });
    cleanups.push(() => client.close());
    await expect(client.status()).rejects.toMatchObject({ code: 'DAEMON_NOT_ANSWERING', message: expect.stringContaining('accepted the connection') });
    await expect(client.refreshSources()).resolves.toEqual([]);
  });
});

describe('the handshake over any stream (the Windows pipe case)', () => {
  async function pipePair(answer: (request: string, socket: Socket) => void): Promise<Socket> {
    const home = await makeTempHome();
    const pipePath = path.join(home, 'pipe');
    const server = createNetServer((socket) => socket.once('data', (chunk: Buffer) => answer(chunk.toString('latin1'), socket)));
    await new Promise<void>((resolve) => server.listen(pipePath, resolve));
    const { connect } = await import('node:net');
    const socket = connect(pipePath);
    await new Promise((resolve) => socket.once('connect', resolve));
    cleanups.push(async () => {
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await rm(home, { recursive: true, force: true });
    });
    return socket;
  }
  const key = Buffer.alloc(32, 1);
  const options = { socketPath: 'pipe', readKeys: async () => [{ kind: 'ok' as const, key }], daemonPid: async () => 42, timeoutMs: 2_000 };
  const reply = (socket: Socket, body: string): void => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  };

  it('passes the holder of the key', async () => {
    const socket = await pipePair((request, s) => reply(s, JSON.stringify({ mac: helloMac(key, /nonce=([0-9a-f]+)/.exec(request)?.[1] ?? '') })));
    await expect(verifyDaemon(socket, options)).resolves.toBeUndefined();
  });

  it('refuses a squatter that echoes, replays or guesses', async () => {
    const echo = await pipePair((request, s) => reply(s, JSON.stringify({ mac: /nonce=([0-9a-f]+)/.exec(request)?.[1] })));
    await expect(verifyDaemon(echo, options)).rejects.toBeInstanceOf(UnverifiedDaemonError);
    // A mac for another nonce (a recorded answer) is worthless: every hello has a fresh nonce.
    const replay = await pipePair((_request, s) => reply(s, JSON.stringify({ mac: helloMac(key, 'an-old-nonce-0123456789') })));
    await expect(verifyDaemon(replay, options)).rejects.toBeInstanceOf(UnverifiedDaemonError);
    const garbage = await pipePair((_request, s) => s.write('HELLO THERE\r\n\r\n'));
    await expect(verifyDaemon(garbage, options)).rejects.toMatchObject({ code: 'DAEMON_UNVERIFIED', message: expect.stringContaining('not valid HTTP') });
    const hangUp = await pipePair((_request, s) => s.destroy());
    await expect(verifyDaemon(hangUp, options)).rejects.toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
  });

  it('reads a Content-Length answer, and nothing else', () => {
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n';
    expect(parseAnswer(Buffer.from(`${head}{}`))).toEqual({ status: 200, body: '{}' });
    expect(parseAnswer(Buffer.from(`${head}{`))).toBe('incomplete');
    expect(parseAnswer(Buffer.from(`${head}{}GET`))).toBe('invalid');
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
    expect(parseAnswer(Buffer.from(`${chunked}1\r\n{\r\n1\r\n}\r\n0\r\n\r\n`))).toEqual({ status: 200, body: '{}' });
    expect(parseAnswer(Buffer.from(`${chunked}1\r\n{\r\n`))).toBe('incomplete');
    expect(parseAnswer(Buffer.from(`${chunked}1\r\n{\r\n0\r\n\r\nGET`))).toBe('invalid');
    expect(parseAnswer(Buffer.from('HTTP/1.1 200 OK\r\n\r\n{}'))).toBe('invalid');
  });
});
