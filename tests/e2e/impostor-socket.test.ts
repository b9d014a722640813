import { spawn, type ChildProcess } from 'node:child_process';
import { access, chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/client.js';
import { UntrustedSocketError } from '../../src/client/socket-trust.js';
import { isolatedEnv, makeTempHome, runCli } from '../helpers/test-daemon.js';
import { createDaemonKey, writeDaemonKey } from '../../src/node/daemon-key.js';
import { isRoot, itWhen } from '../helpers/tools.js';

const NOBODY = 65534;
const TOKEN = `cmVmdGtu${'Q'.repeat(56)}`;

/** A fake daemon run by another user: answers everything with 200 and logs every byte it receives. */
const IMPOSTOR_SOURCE = `
import { createServer } from 'node:http';
import { appendFileSync } from 'node:fs';
const [socketPath, logPath] = process.argv.slice(2);
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    appendFileSync(logPath, JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }) + '\\n');
    res.setHeader('x-tokenbroker-version', '0.0.0');
    if (req.url.startsWith('/v1/fetch?')) {
      res.setHeader('x-tokenbroker-request-id', 'r1');
      res.end('IMPOSTOR CONTENT');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ server: 'nordic', state: 'valid' }));
  });
});
server.listen(socketPath, () => console.log('listening'));
`;

interface Impostor {
  dir: string;
  socketPath: string;
  log(): Promise<string>;
  process: ChildProcess;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A node binary the other uid may run: ours may live under a private home (CI's Node 24 comes from
 * ~/.cache), which uid 65534 cannot enter. Copied once per file into a world-readable temp dir.
 */
let sharedNode: Promise<string> | undefined;
function nodeForOtherUser(): Promise<string> {
  sharedNode ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tb-imp-node-'));
    await chmod(dir, 0o755);
    const binary = path.join(dir, 'node');
    await copyFile(process.execPath, binary);
    await chmod(binary, 0o755);
    return binary;
  })();
  return sharedNode;
}
afterAll(async () => {
  if (sharedNode !== undefined) await rm(path.dirname(await sharedNode), { recursive: true, force: true });
});

/** Like /tmp/tokenbroker-UID/ made by someone else before our first start: a dir and socket of uid 65534. */
async function startImpostor(): Promise<Impostor> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tb-imp-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'impostor.mjs'), IMPOSTOR_SOURCE);
  await chown(path.join(dir, 'impostor.mjs'), NOBODY, NOBODY);
  await chown(dir, NOBODY, NOBODY);
  const socketPath = path.join(dir, 'broker.sock');
  const logPath = path.join(dir, 'received.log');
  const child = spawn(await nodeForOtherUser(), [path.join(dir, 'impostor.mjs'), socketPath, logPath], { uid: NOBODY, gid: NOBODY, cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(async () => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`impostor exited with ${code}`)));
    child.once('error', reject);
  });
  return { dir, socketPath, process: child, log: () => readFile(logPath, 'utf8').catch(() => '') };
}

describe('clients refuse an impostor socket (issue 14)', () => {
  itWhen(isRoot, 'root (to run an impostor as uid 65534)', 'the impostor is real: a raw connection reaches it and is logged (control)', async () => {
    const impostor = await startImpostor();
    const socket = connect(impostor.socketPath);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('GET /control HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const answer = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(await impostor.log()).toContain('/control');
  });

  itWhen(isRoot, 'root (to run an impostor as uid 65534)', '`token set` exits 1 with a hint and the impostor receives nothing, the token least of all', async () => {
    const impostor = await startImpostor();
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    // Autostart on: an untrusted socket must not be "fixed" by starting a daemon either.
    const env = isolatedEnv(home, { TOKENBROKER_NO_AUTOSTART: undefined });
    const result = await runCli(['--socket', impostor.socketPath, 'token', 'set'], { env, input: `${TOKEN}\n` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`refusing to talk to the tokenbroker socket: ${impostor.dir} is owned by uid ${NOBODY}, not by you (uid 0)`);
    expect(result.stderr).toContain('hint: Another user may be trying to intercept tokenbroker');
    const log = await impostor.log();
    expect(log).not.toContain(TOKEN);
    expect(log).toBe('');
  });

  itWhen(isRoot, 'root (to run an impostor as uid 65534)', '`fetch -o` takes no content from it and leaves no file', async () => {
    const impostor = await startImpostor();
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const out = path.join(home, 'app.tgz');
    const result = await runCli(['--socket', impostor.socketPath, 'fetch', 'https://files.nordicsemi.com/artifactory/swtools/external/a.tgz', '-o', out], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('refusing to talk to the tokenbroker socket');
    await expect(access(out)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(home)).filter((name) => name.startsWith('app.tgz'))).toEqual([]);
    expect(await impostor.log()).toBe('');
  });

  itWhen(isRoot, 'root (to run an impostor as uid 65534)', 'the client library refuses it for every call, the event stream too', async () => {
    const impostor = await startImpostor();
    const client = new TokenBrokerClient({ socketPath: impostor.socketPath });
    cleanups.push(() => client.close());
    await expect(client.setToken(TOKEN)).rejects.toBeInstanceOf(UntrustedSocketError);
    await expect(client.status()).rejects.toMatchObject({ code: 'SOCKET_UNTRUSTED', hint: expect.stringContaining('another socket path') });
    await expect(client.events().next()).rejects.toBeInstanceOf(UntrustedSocketError);
    expect(await impostor.log()).toBe('');
  });

  itWhen(isRoot, 'root (to run an impostor as uid 65534)', 'diagnose fails the socket check and does not ask the impostor', async () => {
    const impostor = await startImpostor();
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const result = await runCli(['--socket', impostor.socketPath, 'diagnose', '--json'], { env: isolatedEnv(home) });
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: { id: string; status: string; message: string }[] };
    expect(report.ok).toBe(false);
    expect(report.checks.find((c) => c.id === 'socket-dir')).toMatchObject({ status: 'fail', message: expect.stringContaining(`owned by uid ${NOBODY}`) });
    expect(await impostor.log()).toBe('');
  });

  it('with a client token (an extra listener, shared on purpose) the ownership check does not apply', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tb-shared-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await chmod(dir, 0o770);
    const owner = new TokenBrokerClient({ socketPath: path.join(dir, 'tb.sock'), timeoutMs: 2_000 });
    const shared = new TokenBrokerClient({ socketPath: path.join(dir, 'tb.sock'), clientToken: 'tbk_x', timeoutMs: 2_000 });
    cleanups.push(() => owner.close(), () => shared.close());
    await expect(owner.status()).rejects.toBeInstanceOf(UntrustedSocketError);
    // Nobody listens there: the shared client got as far as connecting.
    await expect(shared.status()).rejects.toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
  });
});

/**
 * The pipe-squatting case (Windows named pipes have no owner on disk to check), played on Linux:
 * another user's process listens on a socket whose directory and file look like ours (root chowns
 * them after the impostor bound it), so every ownership check passes. Only the hello handshake is
 * left, and the impostor cannot read the daemon key.
 */
const HELLO_IMPOSTOR_SOURCE = `
import { createServer } from 'node:http';
import { appendFileSync, readFileSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
const [socketPath, logPath, keyPath] = process.argv.slice(2);
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    let keyRead = 'read';
    let key;
    try { key = Buffer.from(readFileSync(keyPath, 'utf8').trim(), 'hex'); } catch (err) { keyRead = err.code; key = randomBytes(32); }
    appendFileSync(logPath, JSON.stringify({ method: req.method, url: req.url, keyRead, body }) + '\\n');
    const nonce = new URL(req.url, 'http://localhost').searchParams.get('nonce') ?? '';
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ mac: createHmac('sha256', key).update(nonce).digest('hex') }));
  });
});
server.listen(socketPath, () => console.log('listening'));
`;

describe('the hello handshake stops an impostor that passes the ownership checks', () => {
  itWhen(isRoot, 'root (to run an impostor as uid 65534)', 'a socket that looks like ours, held by uid 65534 that cannot read the key: nothing but the hello reaches it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tb-squat-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const home = await makeTempHome();
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    // Our daemon ran before: its key is in our private state dir.
    const stateDir = path.join(home, 'state');
    await writeDaemonKey((await mkdir(stateDir, { recursive: true, mode: 0o700 }), stateDir), createDaemonKey());
    const script = path.join(dir, 'impostor.mjs');
    await writeFile(script, HELLO_IMPOSTOR_SOURCE);
    await chown(script, NOBODY, NOBODY);
    await chown(dir, NOBODY, NOBODY);
    const socketPath = path.join(dir, 'broker.sock');
    // Its log lives in a directory of its own: the socket's directory will be closed to it.
    const logDir = await mkdtemp(path.join(os.tmpdir(), 'tb-squat-log-'));
    cleanups.push(() => rm(logDir, { recursive: true, force: true }));
    await chown(logDir, NOBODY, NOBODY);
    const logPath = path.join(logDir, 'received.log');
    const child = spawn(await nodeForOtherUser(), [script, socketPath, logPath, path.join(stateDir, 'daemon.key')], { uid: NOBODY, gid: NOBODY, cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => {
      child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`impostor exited with ${code}`)));
    });
    // Now the directory and the socket pass every ownership check (ours, 0700 and 0600).
    await chown(socketPath, 0, 0);
    await chmod(socketPath, 0o600);
    await chown(dir, 0, 0);
    await chmod(dir, 0o700);

    const client = new TokenBrokerClient({ socketPath, stateDir });
    cleanups.push(() => client.close());
    const refused = await client.setToken(TOKEN).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(UntrustedSocketError);
    expect(refused).toMatchObject({ code: 'DAEMON_UNVERIFIED', message: expect.stringContaining('does not match the daemon key') });
    const home2 = isolatedEnv(home, { TOKENBROKER_NO_AUTOSTART: undefined });
    const cli = await runCli(['--socket', socketPath, 'token', 'set'], { env: home2, input: `${TOKEN}\n` });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('posing as your daemon');
    const log = (await readFile(logPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { url: string; keyRead: string; body: string });
    // It tried the key and could not read it; it saw two hellos, no token and no other request.
    expect(log.map((entry) => entry.url.split('?')[0])).toEqual(['/v1/hello', '/v1/hello']);
    expect(log.every((entry) => entry.keyRead === 'EACCES')).toBe(true);
    expect(JSON.stringify(log)).not.toContain(TOKEN);
  });
});

