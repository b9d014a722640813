import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/index.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { recordEvents } from '../helpers/event-stream.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { itWhen, describeWhen } from '../helpers/tools.js';

const isRoot = process.getuid?.() === 0;
// The device node and the second user need root; on CI a missing root must not pass as a green skip.
if (process.env.CI === 'true' && !isRoot) throw new Error('download-safety tests need root under CI (mknod, a second uid)');
const OTHER_UID = 65534;
const KiB = 1024;
const TOKEN = 'tok-safety-5f1e2d3c4b5a69788796a5b4c3d2e1f0';
const FILE = '/artifactory/swtools/restricted/safety/tool.bin';
const SLOW = '/artifactory/swtools/restricted/safety/slow.bin';
const run = promisify(execFile);

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/**
 * Download targets and races (issue 20), against the real daemon: what a download may replace,
 * the daemon's own files, directories another user can write, a directory swapped for a symlink,
 * a client token's umask and who sees a download.
 */
describe('download targets and races (real daemon)', () => {
  let af: FakeArtifactory;
  let home: string;
  let out: string;
  let outside: string;
  let daemon: TestDaemon;
  let sharedSocket: string;
  const clients: TokenBrokerClient[] = [];
  const on = (token: string): TokenBrokerClient => {
    const client = new TokenBrokerClient({ socketPath: sharedSocket, clientToken: token, onVersionMismatch: () => undefined });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { [TOKEN]: { token_id: 'tid-safety' } } });
    af.setFile(FILE, { size: 64 * KiB, seed: 31 });
    af.setFile(SLOW, { size: 512 * KiB, seed: 32 });
    home = await makeTempHome('tbsf-');
    out = await makeTempHome('tbso-');
    outside = await makeTempHome('tbsx-');
    await mkdir(path.join(out, 'allowed'));
    sharedSocket = path.join(home, 'shared', 'x.sock');
    daemon = await startTestDaemon({
      home,
      config: {
        allowInsecureLoopback: true,
        secretStore: 'memory',
        logLevel: 'warn',
        servers: [{ name: 'nordic', origin: af.origin }],
        officialSource: af.url('/artifactory/swtools/external/none/source.json'),
        listeners: [{ path: sharedSocket, mode: '0600', downloadDirs: [path.join(out, 'allowed')] }],
      },
    });
    await daemon.client.setToken(TOKEN);
  });
  afterAll(async () => {
    for (const client of clients) await client.close();
    await daemon.cleanup();
    await af.close();
    for (const dir of [home, out, outside]) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    af.clearFaults();
    af.clearRequests();
  });

  const refusal = (p: Promise<unknown>, reason: string) => expect(p).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST', details: { reason } });

  describe('targets', () => {
    it('an existing FIFO, socket or directory is refused (not-a-regular-file) before any request upstream, and left as it was', async () => {
      const dir = await mkdtemp(path.join(out, 'kinds-'));
      const fifo = path.join(dir, 'fifo');
      await run('mkfifo', [fifo]);
      const sock = path.join(dir, 'sock');
      const server: Server = createServer();
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      await mkdir(path.join(dir, 'adir'));
      try {
        for (const target of [fifo, sock, path.join(dir, 'adir')]) {
          await refusal(daemon.client.postDownload({ url: af.url(FILE), path: target }), 'not-a-regular-file');
        }
        expect(af.requestsTo(FILE)).toHaveLength(0);
        expect((await lstat(fifo)).isFIFO()).toBe(true);
        expect((await lstat(sock)).isSocket()).toBe(true);
        expect((await lstat(path.join(dir, 'adir'))).isDirectory()).toBe(true);
        expect((await readdir(dir)).sort()).toEqual(['adir', 'fifo', 'sock']);
      } finally {
        server.close();
      }
    });

    itWhen(isRoot, 'root (mknod, a second uid)', 'a character device (mknod TMP/null c 1 3, never the real /dev/null) is refused and stays a device', async () => {
      const dir = await mkdtemp(path.join(out, 'dev-'));
      const device = path.join(dir, 'null');
      await run('mknod', [device, 'c', '1', '3']);
      await refusal(daemon.client.postDownload({ url: af.url(FILE), path: device }), 'not-a-regular-file');
      expect(af.requestsTo(FILE)).toHaveLength(0);
      expect((await lstat(device)).isCharacterDevice()).toBe(true);
      expect(await readdir(dir)).toEqual(['null']);
    });

    it("the daemon's own files are refused (daemon-owned): config.json, and inside its state, cache and socket directories", async () => {
      const configBefore = await readFile(path.join(home, 'config.json'), 'utf8');
      for (const target of [path.join(home, 'config.json'), path.join(home, 'state', 'x.bin'), path.join(home, 'state', 'tokens.json'), path.join(home, 'cache', 'x.bin'), path.join(home, 'run', 'x.bin')]) {
        await refusal(daemon.client.postDownload({ url: af.url(FILE), path: target }), 'daemon-owned');
      }
      // The socket itself: a socket, and inside the daemon's socket directory.
      await expect(daemon.client.postDownload({ url: af.url(FILE), path: daemon.socketPath })).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST' });
      expect(af.requestsTo(FILE)).toHaveLength(0);
      expect(await readFile(path.join(home, 'config.json'), 'utf8')).toBe(configBefore);
      expect((await lstat(daemon.socketPath)).isSocket()).toBe(true);
      await expect(daemon.client.status()).resolves.toBeDefined();
      // Not the whole directory that holds config.json (TOKENBROKER_CONFIG may be in ~).
      const beside = await daemon.client.postDownload({ url: af.url(FILE), path: path.join(home, 'beside-config.bin') });
      expect(beside.bytes).toBe(64 * KiB);
    });

    it('a directory others can write without the sticky bit is refused (unsafe-directory, hint: chmod +t); with it, downloads work', async () => {
      const open = await mkdtemp(path.join(out, 'open-'));
      await chmod(open, 0o777);
      const refused = daemon.client.postDownload({ url: af.url(FILE), path: path.join(open, 'f.bin') });
      await expect(refused).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST', details: { reason: 'unsafe-directory' }, hint: expect.stringContaining('chmod +t') });
      await chmod(open, 0o775);
      await refusal(daemon.client.postDownload({ url: af.url(FILE), path: path.join(open, 'f.bin') }), 'unsafe-directory');
      expect(af.requestsTo(FILE)).toHaveLength(0);
      expect(await readdir(open)).toEqual([]);
      await chmod(open, 0o1777);
      const outcome = await daemon.client.postDownload({ url: af.url(FILE), path: path.join(open, 'f.bin') });
      expect(outcome.sha256).toBe((await af.digestOf(FILE)).sha256);
    });
  });

  describeWhen(isRoot, 'root (a second uid)', 'a second user (uid 65534) in a shared directory', () => {
    let shared: string;
    let nodeBinary: string;
    beforeAll(async () => {
      // World-traversable, so the other uid reaches it; a copy of node it can execute.
      shared = await mkdtemp(path.join(os.tmpdir(), 'tb-swap-'));
      await chmod(shared, 0o755);
      nodeBinary = path.join(shared, 'node');
      await copyFile(process.execPath, nodeBinary);
      await chmod(nodeBinary, 0o755);
      await writeFile(
        path.join(shared, 'swapper.mjs'),
        `import { existsSync, lstatSync, renameSync, writeFileSync } from 'node:fs';
const [dir, name, stopFile] = process.argv.slice(2);
const part = dir + '/' + name + '.part';
let tries = 0, moved = 0;
console.log('ready');
while (!existsSync(stopFile)) {
  // Only while the daemon's .part is there: take it away, or put ours in its place.
  let owner;
  try { owner = lstatSync(part).uid; } catch { continue; }
  if (owner !== 0) continue;
  tries++;
  // Counted only when what was taken is the daemon's file (not ours, planted a moment earlier).
  try { renameSync(part, dir + '/stolen-' + tries); if (lstatSync(dir + '/stolen-' + tries).uid === 0) moved++; } catch {}
  try { writeFileSync(dir + '/' + name + '.mine', 'OTHER USER CONTENT'); renameSync(dir + '/' + name + '.mine', part); } catch {}
}
console.log(JSON.stringify({ tries, moved }));
`,
      );
    });
    afterAll(async () => {
      await rm(shared, { recursive: true, force: true });
    });

    it('world-writable without sticky: refused before any request; with sticky: the other user cannot swap the .part, the file is ours and verified', async () => {
      const open = path.join(shared, 'open');
      await mkdir(open);
      await chmod(open, 0o777);
      await refusal(daemon.client.postDownload({ url: af.url(SLOW), path: path.join(open, 'f.bin') }), 'unsafe-directory');
      expect(af.requestsTo(SLOW)).toHaveLength(0);

      const sticky = path.join(shared, 'sticky');
      await mkdir(sticky);
      await chmod(sticky, 0o1777);
      const stop = path.join(shared, 'stop');
      const swapper = spawn(nodeBinary, [path.join(shared, 'swapper.mjs'), sticky, 'f.bin', stop], { uid: OTHER_UID, gid: OTHER_UID, stdio: ['ignore', 'pipe', 'inherit'] });
      let report = '';
      swapper.stdout.on('data', (chunk: Buffer) => (report += chunk.toString()));
      const exited = new Promise<void>((resolve) => swapper.once('exit', () => resolve()));
      await expect.poll(() => report.startsWith('ready'), { timeout: 20_000 }).toBe(true);
      // Paced, so the other user's loop runs all through the download.
      af.setFault(SLOW, { kind: 'slow', bytesPerSecond: 1024 * KiB });
      try {
        const outcome = await daemon.client.postDownload({ url: af.url(SLOW), path: path.join(sticky, 'f.bin') });
        const expected = (await af.digestOf(SLOW)).sha256;
        expect(outcome.sha256).toBe(expected);
        const final = await lstat(path.join(sticky, 'f.bin'));
        expect(final.uid).toBe(0);
        expect(await sha256Of(path.join(sticky, 'f.bin'))).toBe(expected);
      } finally {
        await writeFile(stop, '');
        await exited;
      }
      const { tries, moved } = JSON.parse(report.slice('ready'.length)) as { tries: number; moved: number };
      expect(tries).toBeGreaterThan(0);
      // The other user tried while the .part was there; the sticky bit kept every rename out of reach.
      expect(moved).toBe(0);
    });
  });

  describe('races', () => {
    it('a subdirectory of downloadDirs swapped for a symlink 200 times never lets a download out of it', async () => {
      const downloader = on((await daemon.client.createClientToken({ description: 'swap loop', scope: ['download'] })).token);
      const allowed = path.join(out, 'allowed');
      const secret = await mkdtemp(path.join(outside, 'secret-'));
      await mkdir(path.join(allowed, 'sub'));
      await symlink(secret, path.join(allowed, 'link'));
      const stop = path.join(out, 'stop-swap');
      // A separate process swaps `sub` between the real directory and the symlink, as fast as it can.
      const swapper = spawn(
        process.execPath,
        [
          '-e',
          `const { renameSync, existsSync } = require('node:fs'); const [a, stop] = process.argv.slice(1);
let n = 0; while (!existsSync(stop)) { n++;
  try { renameSync(a + '/sub', a + '/real'); renameSync(a + '/link', a + '/sub'); renameSync(a + '/sub', a + '/link'); renameSync(a + '/real', a + '/sub'); } catch {} }
console.log(n);`,
          allowed,
          stop,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise<void>((resolve) => swapper.once('exit', () => resolve()));
      const outcomes: Record<string, number> = {};
      try {
        for (let i = 0; i < 200; i++) {
          const result = await downloader.postDownload({ url: af.url(FILE), path: path.join(allowed, 'sub', `f${i}.bin`) }).then(
            () => 'ok',
            (err: { code?: string }) => err.code ?? 'error',
          );
          outcomes[result] = (outcomes[result] ?? 0) + 1;
        }
      } finally {
        await writeFile(stop, '');
        await exited;
      }
      // Whatever the interleaving: nothing was ever written through the symlink.
      expect(await readdir(secret)).toEqual([]);
      expect(Object.keys(outcomes).every((k) => ['ok', 'BROKER_FORBIDDEN', 'BROKER_BAD_REQUEST'].includes(k))).toBe(true);
      // The swapper stops between full rounds: `sub` is the real directory again.
      const written = (await readdir(path.join(allowed, 'sub'))).filter((n) => n.endsWith('.bin'));
      expect(written.length).toBe(outcomes.ok ?? 0);
    });

    it("a client token's umask is combined with 022; the owner's is taken as given", async () => {
      const downloader = on((await daemon.client.createClientToken({ description: 'umask', scope: ['download'] })).token);
      const viaToken = path.join(out, 'allowed', 'umask0-token.bin');
      await downloader.postDownload({ url: af.url(FILE), path: viaToken, umask: 0 });
      expect((await stat(viaToken)).mode & 0o777).toBe(0o644);
      const viaOwner = path.join(out, 'umask0-owner.bin');
      await daemon.client.postDownload({ url: af.url(FILE), path: viaOwner, umask: 0 });
      expect((await stat(viaOwner)).mode & 0o777).toBe(0o666);
    });

    it('a download is visible (route and events) to the owner and the token that started it only; a download-only token gets its own events and download() works', async () => {
      const downloader = on((await daemon.client.createClientToken({ description: 'visible', scope: ['download'] })).token);
      const reader = on((await daemon.client.createClientToken({ description: 'status only', scope: ['status:read'] })).token);
      const stop = new AbortController();
      const ownerEvents = recordEvents(daemon.client, stop.signal);
      const readerEvents = recordEvents(reader, stop.signal);
      const downloaderEvents = recordEvents(downloader, stop.signal);
      await Promise.all([ownerEvents.opened, readerEvents.opened, downloaderEvents.opened]);

      const ownerId = 'owner-download-0001';
      await daemon.client.postDownload({ url: af.url(FILE), path: path.join(out, 'owners.bin'), id: ownerId });
      // The client library with a download-only token: the daemon writes the file, progress from its events.
      const progress: number[] = [];
      af.setFault(SLOW, { kind: 'slow', bytesPerSecond: 1024 * KiB });
      const mine = await downloader.download(af.url(SLOW), path.join(out, 'allowed', 'mine.bin'), { onProgress: (p) => progress.push(p.received) });
      expect(mine.sha256).toBe((await af.digestOf(SLOW)).sha256);
      expect(progress.at(-1)).toBe(512 * KiB);
      const theirId = mine.requestId;

      // Route: the other party's id is unknown (404), for reading and for cancelling.
      await expect(downloader.downloadProgress(ownerId)).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND' });
      await expect(downloader.cancelDownload(ownerId)).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND' });
      await expect(downloader.downloadProgress(theirId)).resolves.toMatchObject({ id: theirId, state: 'done' });
      await expect(daemon.client.downloadProgress(theirId)).resolves.toMatchObject({ id: theirId });
      await expect(reader.downloadProgress(ownerId)).rejects.toMatchObject({ code: 'BROKER_FORBIDDEN' });

      // Events: the done events arrived at the owner before we look at the others (same bus, same order).
      await expect.poll(() => ownerEvents.events.filter((e) => e.type === 'download.done').map((e) => e.id)).toEqual(expect.arrayContaining([ownerId, theirId]));
      await expect.poll(() => downloaderEvents.events.some((e) => e.type === 'download.done' && e.id === theirId)).toBe(true);
      stop.abort();
      await Promise.all([ownerEvents.done, readerEvents.done, downloaderEvents.done]);
      expect(readerEvents.events.filter((e) => e.type.startsWith('download.'))).toEqual([]);
      const downloadersDownloads = new Set(downloaderEvents.events.filter((e) => e.type.startsWith('download.')).map((e) => e.id));
      expect([...downloadersDownloads]).toEqual([theirId]);
      expect(downloaderEvents.events.every((e) => e.type.startsWith('download.'))).toBe(true);
      expect(JSON.stringify(downloaderEvents.events)).not.toContain('owners.bin');
    });
  });

  describe('CLI fetch -o into a FIFO or a device streams, as curl does', () => {
    it('a FIFO: the reader receives every byte; no .part, no rename, the FIFO stays a FIFO', async () => {
      const dir = await mkdtemp(path.join(out, 'fifo-'));
      const fifo = path.join(dir, 'pipe');
      await run('mkfifo', [fifo]);
      const received = new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        createReadStream(fifo).on('data', (c) => chunks.push(c as Buffer)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
      });
      const result = await runCli(['fetch', af.url(FILE), '-o', fifo, '--sha256', (await af.digestOf(FILE)).sha256], { env: daemon.env });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(createHash('sha256').update(await received).digest('hex')).toBe((await af.digestOf(FILE)).sha256);
      expect((await lstat(fifo)).isFIFO()).toBe(true);
      expect(await readdir(dir)).toEqual(['pipe']);
    });

    itWhen(isRoot, 'root (mknod, a second uid)', 'a character device made in a temp dir (mknod DIR/null c 1 3): exit 0, still a device, no .part', async () => {
      const dir = await mkdtemp(path.join(out, 'null-'));
      const device = path.join(dir, 'null');
      await run('mknod', [device, 'c', '1', '3']);
      const result = await runCli(['fetch', af.url(FILE), '-o', device], { env: daemon.env });
      expect(result.code).toBe(0);
      expect((await lstat(device)).isCharacterDevice()).toBe(true);
      expect(await readdir(dir)).toEqual(['null']);
      expect(af.requestsTo(FILE)).toHaveLength(1);
    });
  });
});
