import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/index.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { recordEvents } from '../helpers/event-stream.js';
import { waitUntil } from '../helpers/wait-for.js';
import { CLI_ENTRY, makeTempHome, REPO_ROOT, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

const MiB = 1024 * 1024;
const CANARY = 'tok-canary-5f1e2d3c4b5a69788796a5b4c3d2e1f0';
const BIG = '/artifactory/swtools/restricted/big-64m.bin';
const SMALL = '/artifactory/swtools/restricted/dir/tool-2m.zip';
const NO_SUMS = '/artifactory/swtools/restricted/no-sums.bin';

async function sha256Of(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/** Every file under `dir` (recursively) with its content; for "the canary is nowhere" checks. */
async function allFileText(dir: string): Promise<string> {
  let text = '';
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    text += (await readFile(path.join(entry.parentPath, entry.name))).toString('latin1');
  }
  return text;
}

/**
 * Daemon-written downloads (issue 15) and the download half of the local hardening (issue 14),
 * against the real daemon, a real fake Artifactory on loopback and real files.
 */
describe('POST /v1/downloads (real daemon)', () => {
  let af: FakeArtifactory;
  let home: string;
  let out: string;
  let outside: string;
  let daemon: TestDaemon;
  const config = (): Record<string, unknown> => ({
    allowInsecureLoopback: true,
    secretStore: 'memory',
    logLevel: 'warn',
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: af.url('/artifactory/swtools/external/none/source.json'),
    listeners: [{ path: path.join(home, 'shared', 'x.sock'), mode: '0600', downloadDirs: [path.join(out, 'allowed')] }],
  });
  const start = async (): Promise<void> => {
    daemon = await startTestDaemon({ home, config: config() });
    await daemon.client.setToken(CANARY);
  };

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { [CANARY]: { token_id: 'tid-canary' } } });
    af.setFile(BIG, { size: 64 * MiB, seed: 21 });
    af.setFile(SMALL, { size: 2 * MiB, seed: 22 });
    af.setFile(NO_SUMS, { size: MiB, seed: 23 }, { checksumHeaders: false, etag: null });
    home = await makeTempHome('tbdl-');
    out = await makeTempHome('tbdo-');
    outside = await makeTempHome('tbdx-');
    await mkdir(path.join(out, 'allowed'));
    await start();
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
    for (const dir of [home, out, outside]) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    af.clearFaults();
    af.clearRequests();
  });

  it('writes a 64 MiB restricted file: byte-identical, verified, renamed, mode from the caller\'s umask, events, no canary', async () => {
    const { sha256, sha1 } = await af.digestOf(BIG);
    const controller = new AbortController();
    const recording = recordEvents(daemon.client, controller.signal);
    const events: BrokerEvent[] = recording.events;
    // Subscribed before the download starts: no event is missed (no sleep standing in for it).
    await recording.opened;
    const dest = path.join(out, 'big.bin');
    const outcome = await daemon.client.postDownload({ url: af.url(BIG), path: dest, sha256, umask: 0o027 });
    expect(outcome).toMatchObject({ path: dest, bytes: 64 * MiB, sha256, sha1, verifiedBy: 'shasum', resumed: false });
    expect(await sha256Of(dest)).toBe(sha256);
    expect((await stat(dest)).mode & 0o777).toBe(0o640);
    expect(await readdir(out)).not.toContain('big.bin.part');
    expect(await readdir(out)).not.toContain('big.bin.part.json');
    // The default umask (022): 0644.
    const second = await daemon.client.postDownload({ url: af.url(SMALL), path: path.join(out, 'small.zip') });
    expect(second.verifiedBy).toBe('server-checksum');
    expect((await stat(path.join(out, 'small.zip'))).mode & 0o777).toBe(0o644);
    await waitUntil('download.done events', async () => events.filter((e) => e.type === 'download.done').length >= 2);
    controller.abort();
    await recording.done.catch(() => undefined);

    const done = events.find((e) => e.type === 'download.done' && e.id === outcome.id);
    expect(done).toMatchObject({ state: 'done', path: dest, bytes: 64 * MiB, verifiedBy: 'shasum' });
    const progress = events.filter((e) => e.type === 'download.progress' && e.id === outcome.id);
    expect(progress.length).toBeGreaterThan(0);
    // ≤ 10 per second: consecutive progress events of one download are ≥ 100 ms apart.
    for (let i = 1; i < progress.length; i++) expect(Date.parse(progress[i]?.at as string) - Date.parse(progress[i - 1]?.at as string)).toBeGreaterThanOrEqual(100);
    expect(await daemon.client.downloadProgress(outcome.id)).toMatchObject({ id: outcome.id, received: 64 * MiB, total: 64 * MiB, state: 'done' });
    // The canary: not in outcomes, events, the daemon's files or its log.
    expect(JSON.stringify([outcome, second, events])).not.toContain(CANARY);
    expect(await allFileText(out)).not.toContain(CANARY);
    expect(await allFileText(path.join(home, 'state'))).not.toContain(CANARY);
    expect(daemon.output()).not.toContain(CANARY);
    expect(af.requestsTo(BIG)[0]?.headers.authorization).toBe(`Bearer ${CANARY}`);
    await rm(dest);
  });

  it('a daemon SIGKILL half-way keeps .part + .part.json; the next download resumes to the right bytes', async () => {
    const { sha256 } = await af.digestOf(BIG);
    const dest = path.join(out, 'killed.bin');
    af.setFault(BIG, { kind: 'slow', bytesPerSecond: 16 * MiB }, { times: 1 });
    const pending = daemon.client.postDownload({ url: af.url(BIG), path: dest, sha256, id: 'kill-me-0001' }).catch((err: unknown) => err);
    await waitUntil('half of the file', async () => ((await daemon.client.downloadProgress('kill-me-0001').catch(() => undefined))?.received ?? 0) > 8 * MiB);
    daemon.process.kill('SIGKILL');
    await pending;
    await waitUntil('the daemon to exit', async () => daemon.process.exitCode !== null || daemon.process.signalCode !== null);
    const partSize = (await stat(`${dest}.part`)).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThan(64 * MiB);
    expect(JSON.parse(await readFile(`${dest}.part.json`, 'utf8'))).toMatchObject({ url: af.url(BIG) });
    await expect(stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });

    await start();
    af.clearRequests();
    const outcome = await daemon.client.postDownload({ url: af.url(BIG), path: dest, sha256 });
    expect(outcome).toMatchObject({ resumed: true, bytes: 64 * MiB, sha256, verifiedBy: 'shasum' });
    expect(af.requestsTo(BIG)[0]?.headers.range).toBe(`bytes=${partSize}-`);
    expect(await sha256Of(dest)).toBe(sha256);
    expect((await readdir(out)).filter((n) => n.startsWith('killed.bin'))).toEqual(['killed.bin']);
    await rm(dest);
  });

  it('a client cancel (DELETE /v1/downloads/:id, via the signal) keeps the .part; the same download resumes', async () => {
    const { sha256 } = await af.digestOf(BIG);
    const dest = path.join(out, 'cancelled.bin');
    af.setFault(BIG, { kind: 'slow', bytesPerSecond: 16 * MiB }, { times: 1 });
    const controller = new AbortController();
    const error = await daemon.client
      .download(af.url(BIG), dest, {
        sha256,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.received > 8 * MiB) controller.abort();
        },
      })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'client-aborted' } });
    const partSize = (await stat(`${dest}.part`)).size;
    expect(partSize).toBeGreaterThan(8 * MiB);
    await expect(stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
    af.clearRequests();
    const result = await daemon.client.download(af.url(BIG), dest, { sha256 });
    expect(result).toMatchObject({ resumed: true, size: 64 * MiB, sha256, verifiedBy: 'shasum' });
    expect(af.requestsTo(BIG)[0]?.headers.range).toBe(`bytes=${partSize}-`);
    expect(await sha256Of(dest)).toBe(sha256);
    await rm(dest);
  });

  it('Ctrl-C during fetch -o cancels, says the .part is kept and how to resume; a client that vanishes keeps it too', async () => {
    const { sha256 } = await af.digestOf(BIG);
    const dest = path.join(out, 'interrupted.bin');
    const partHasBytes = async (): Promise<boolean> => ((await stat(`${dest}.part`).catch(() => undefined))?.size ?? 0) > MiB;
    af.setFault(BIG, { kind: 'slow', bytesPerSecond: 8 * MiB }, { times: 2 });
    const child = spawn(process.execPath, [CLI_ENTRY, 'fetch', af.url(BIG), '-o', dest, '--sha256', sha256], { env: daemon.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil('the .part to grow', partHasBytes);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain(`interrupted: ${dest}.part is kept; run the same command again to resume.`);
    const kept = (await stat(`${dest}.part`)).size;
    expect(kept).toBeGreaterThan(MiB);
    await expect(stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });

    // The client process killed outright: the daemon sees the connection close and stops too.
    const stopEvents = new AbortController();
    const recording = recordEvents(daemon.client, stopEvents.signal);
    await recording.opened;
    const killed = spawn(process.execPath, [CLI_ENTRY, 'fetch', af.url(BIG), '-o', dest, '--sha256', sha256], { env: daemon.env, stdio: 'ignore' });
    await waitUntil('the resumed .part to grow', async () => ((await stat(`${dest}.part`).catch(() => undefined))?.size ?? 0) > kept + MiB);
    killed.kill('SIGKILL');
    // The daemon says when it stopped: its download.done event (cancelled), no sampling of the file size.
    await waitUntil('the daemon to stop the download', async () => recording.events.some((e) => e.type === 'download.done' && e.path === dest && e.state === 'cancelled'));
    stopEvents.abort();
    expect((await stat(`${dest}.part`)).size).toBeLessThan(64 * MiB);
    expect(JSON.parse(await readFile(`${dest}.part.json`, 'utf8'))).toMatchObject({ url: af.url(BIG) });

    const done = await runCli(['fetch', af.url(BIG), '-o', dest, '--sha256', sha256], { env: daemon.env });
    expect(done.code).toBe(0);
    expect(await sha256Of(dest)).toBe(sha256);
    await rm(dest);
  });

  it('a checksum mismatch exits 6; neither the target nor a .part ever appears', async () => {
    const dest = path.join(out, 'wrong.bin');
    const wrong = 'ab'.repeat(32);
    // The server's own checksum already disagrees: refused before a byte is written.
    const early = await runCli(['fetch', af.url(SMALL), '-o', dest, '--sha256', wrong], { env: daemon.env });
    expect(early.code).toBe(6);
    expect(early.stderr).toMatch(/BROKER_CHECKSUM_MISMATCH/);
    // No server checksum: the bytes are written, hashed, found wrong and removed.
    const seen: string[] = [];
    const watcher = setInterval(() => void readdir(out).then((names) => seen.push(...names.filter((n) => n.startsWith('wrong.bin') && !n.includes('.part')))), 2);
    const late = await runCli(['fetch', af.url(NO_SUMS), '-o', dest, '--sha256', wrong], { env: daemon.env });
    clearInterval(watcher);
    expect(late.code).toBe(6);
    expect(seen).toEqual([]);
    expect((await readdir(out)).filter((n) => n.startsWith('wrong.bin'))).toEqual([]);
  });

  it('without a digest or server checksum the CLI warns: verifiedBy none', async () => {
    const dest = path.join(out, 'unverified.bin');
    const result = await runCli(['fetch', af.url(NO_SUMS), '-o', dest], { env: daemon.env });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/warning: .*unverified\.bin was not verified/);
    await rm(dest);
  });

  it('an extra listener needs the download scope, and writes only under its downloadDirs', async () => {
    const shared = path.join(home, 'shared', 'x.sock');
    const on = (token: string): TokenBrokerClient => new TokenBrokerClient({ socketPath: shared, clientToken: token, onVersionMismatch: () => undefined });
    const fetchOnly = on((await daemon.client.createClientToken({ description: 'fetch only', scope: ['fetch'] })).token);
    const downloader = on((await daemon.client.createClientToken({ description: 'downloader', scope: ['download'] })).token);
    try {
      const allowed = path.join(out, 'allowed', 'tool.zip');
      await expect(fetchOnly.postDownload({ url: af.url(SMALL), path: allowed })).rejects.toMatchObject({ code: 'BROKER_FORBIDDEN', details: { requiredScope: 'download' } });
      await expect(downloader.postDownload({ url: af.url(SMALL), path: path.join(out, 'not-allowed.zip') })).rejects.toMatchObject({ code: 'BROKER_FORBIDDEN' });
      // A symlink inside the allowed dir that leads out of it does not widen it.
      await symlink(outside, path.join(out, 'allowed', 'escape'));
      await expect(downloader.postDownload({ url: af.url(SMALL), path: path.join(out, 'allowed', 'escape', 'x.zip') })).rejects.toMatchObject({ code: 'BROKER_FORBIDDEN' });
      expect(await readdir(outside)).toEqual([]);
      expect(af.requestsTo(SMALL)).toHaveLength(0);
      const outcome = await downloader.postDownload({ url: af.url(SMALL), path: allowed });
      expect(outcome).toMatchObject({ path: allowed, bytes: 2 * MiB, verifiedBy: 'server-checksum' });
    } finally {
      await fetchOnly.close();
      await downloader.close();
    }
  });

  it('fetch -o EXISTING_DIR saves under the URL\'s file name; -o missing/dir/file answers with a hint before any request; -o - is stdout', async () => {
    const dir = path.join(out, 'into');
    await mkdir(dir);
    const intoDir = await runCli(['fetch', af.url(SMALL), '-o', dir], { env: daemon.env });
    expect(intoDir.code).toBe(0);
    expect(await readdir(dir)).toEqual(['tool-2m.zip']);
    expect(await sha256Of(path.join(dir, 'tool-2m.zip'))).toBe((await af.digestOf(SMALL)).sha256);

    af.clearRequests();
    const missing = await runCli(['fetch', af.url(SMALL), '-o', path.join(out, 'missing', 'dir', 'file.zip')], { env: daemon.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/does not exist/);
    expect(missing.stderr).toMatch(/hint: Create it first/);
    expect(missing.stderr).not.toMatch(/ENOENT/);
    expect(af.requestsTo(SMALL)).toHaveLength(0);

    const stdout = await new Promise<Buffer>((resolve, reject) => {
      execFile(process.execPath, [CLI_ENTRY, 'fetch', af.url(SMALL), '-o', '-'], { env: daemon.env, cwd: out, encoding: 'buffer', maxBuffer: 8 * MiB }, (err, so) => (err ? reject(err) : resolve(so)));
    });
    expect(createHash('sha256').update(stdout).digest('hex')).toBe((await af.digestOf(SMALL)).sha256);
    await expect(lstat(path.join(out, '-'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('on a 60-column terminal the progress bar stays one line, redrawn in place', async () => {
    const dest = path.join(out, 'pty.bin');
    af.setFault(BIG, { kind: 'slow', bytesPerSecond: 64 * MiB }, { times: 1 });
    const command = `stty cols 60 rows 20; exec '${process.execPath}' '${CLI_ENTRY}' fetch '${af.url(BIG)}' -o '${dest}'`;
    const { stdout } = await promisify(execFile)('python3', [path.join(REPO_ROOT, 'tests', 'fixtures', 'pty-run.py'), 'never-typed', '', 'sh', '-c', command], { env: daemon.env, maxBuffer: 4 * MiB });
    const lines = stdout.split(/\r?\n/).filter((l) => l !== '');
    const progressLines = lines.filter((l) => l.includes('%'));
    // One progress line (redraws separated by \r only), then the summary line.
    expect(progressLines).toHaveLength(1);
    const redraws = (progressLines[0] as string).split('\r').filter((r) => r !== '');
    expect(redraws.length).toBeGreaterThan(1);
    for (const redraw of redraws) expect(redraw.replace('\x1b[K', '').length).toBeLessThan(60);
    expect(lines.some((l) => l.startsWith('saved '))).toBe(true);
    await rm(dest);
  });

  describe('planted files at FILE.part / FILE.part.json', () => {
    const cases: [string, (dest: string, victim: string) => Promise<void>][] = [
      ['a .part symlink to a missing file', async (dest, victim) => symlink(victim, `${dest}.part`)],
      [
        'a .part symlink to an existing file (with a matching .part.json)',
        async (dest, victim) => {
          await writeFile(victim, 'precious');
          await symlink(victim, `${dest}.part`);
          await writeFile(`${dest}.part.json`, JSON.stringify({ url: af.url(SMALL), etag: (await af.digestOf(SMALL)).sha1 }));
        },
      ],
      [
        'a .part.json symlink to an existing file',
        async (dest, victim) => {
          await writeFile(victim, 'precious');
          await writeFile(`${dest}.part`, Buffer.alloc(100));
          await symlink(victim, `${dest}.part.json`);
        },
      ],
      [
        'a foreign .part.json (another URL)',
        async (dest) => {
          await writeFile(`${dest}.part`, Buffer.alloc(1000, 7));
          await writeFile(`${dest}.part.json`, JSON.stringify({ url: af.url(BIG), etag: 'x' }));
        },
      ],
    ];
    for (const [name, plant] of cases) {
      for (const via of ['daemon', 'streaming'] as const) {
        it(`${name}: nothing outside the download dir is created or changed (${via})`, async () => {
          const dir = path.join(out, 'allowed', `planted-${via}-${cases.findIndex((c) => c[0] === name)}`);
          await mkdir(dir);
          const dest = path.join(dir, 'tool.zip');
          const victim = path.join(outside, `victim-${via}-${name.length}`);
          await plant(dest, victim);
          const before = await readFile(victim).catch(() => undefined);
          const streaming = new TokenBrokerClient({ socketPath: path.join(home, 'shared', 'x.sock'), clientToken: (await daemon.client.createClientToken({ description: 'streamer', scope: ['fetch'] })).token, onVersionMismatch: () => undefined });
          try {
            const result = await (via === 'daemon' ? daemon.client : streaming).download(af.url(SMALL), dest);
            expect(result).toMatchObject({ resumed: false, size: 2 * MiB });
          } finally {
            await streaming.close();
          }
          expect(await sha256Of(dest)).toBe((await af.digestOf(SMALL)).sha256);
          expect(await readdir(dir)).toEqual(['tool.zip']);
          const after = await readFile(victim).catch(() => undefined);
          expect(after === undefined ? undefined : after.toString()).toBe(before === undefined ? undefined : before.toString());
        });
      }
    }
  });
});
