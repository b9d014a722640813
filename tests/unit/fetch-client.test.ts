import { createHash } from 'node:crypto';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { TokenBrokerClient } from '../../src/client/index.js';
import { HARNESS_TOKEN, startFetchHarness, type FetchHarness } from '../helpers/fetch-harness.js';
import { bufferIO } from '../helpers/buffer-io.js';
import { makeTempHome } from '../helpers/test-daemon.js';

const MiB = 1024 * 1024;
const RESTRICTED = '/artifactory/swtools/restricted/tool-4m.zip';


describe('client.download and the fetch command', () => {
  let h: FetchHarness;
  let work: string;
  beforeAll(async () => {
    h = await startFetchHarness();
    work = await makeTempHome('tbd-');
    h.af.setFile(RESTRICTED, { size: 4 * MiB, seed: 11 });
  });
  afterAll(async () => {
    await h.close();
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    h.af.clearFaults();
    h.af.clearRequests();
  });

  it('downloads a restricted file (token added by the daemon) with progress, verified, renamed into place', async () => {
    const { sha256, sha1 } = await h.af.digestOf(RESTRICTED);
    const dest = path.join(work, 'tool.zip');
    const progress: number[] = [];
    // Paced by the upstream (about half a second), so progress reports (at most 10/s) come while it
    // runs, however fast the machine is.
    h.af.setFault(RESTRICTED, { kind: 'slow', bytesPerSecond: 8 * MiB }, { times: 1 });
    const result = await h.client.download(h.af.url(RESTRICTED), dest, { sha256, sha1, onProgress: (p) => progress.push(p.received) });
    expect(result).toMatchObject({ path: dest, size: 4 * MiB, sha256, sha1, resumed: false });
    expect(progress.at(-1)).toBe(4 * MiB);
    expect(progress.length).toBeGreaterThan(1);
    expect(createHash('sha256').update(await readFile(dest)).digest('hex')).toBe(sha256);
    expect(await readdir(work)).toEqual(['tool.zip']);
    expect(h.af.requestsTo(RESTRICTED)[0]?.headers.authorization).toBe(`Bearer ${HARNESS_TOKEN}`);
    await rm(dest);
  });

  it('an aborted download keeps its part file; the next call resumes it', async () => {
    const { sha256 } = await h.af.digestOf(RESTRICTED);
    const dest = path.join(work, 'aborted.zip');
    h.af.setFault(RESTRICTED, { kind: 'slow', bytesPerSecond: 2 * MiB }, { times: 1 });
    const controller = new AbortController();
    const error = await h.client
      .download(h.af.url(RESTRICTED), dest, {
        sha256,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.received > 256 * 1024) controller.abort();
        },
      })
      .catch((err: unknown) => err);
    // On the owner's socket the daemon writes the file: aborting cancels it there.
    expect(error).toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'client-aborted' } });
    const partSize = (await stat(`${dest}.part`)).size;
    expect(partSize).toBeGreaterThan(0);

    h.af.clearRequests();
    const result = await h.client.download(h.af.url(RESTRICTED), dest, { sha256 });
    expect(result.resumed).toBe(true);
    expect(h.af.requestsTo(RESTRICTED)[0]?.headers.range).toBe(`bytes=${partSize}-`);
    expect(createHash('sha256').update(await readFile(dest)).digest('hex')).toBe(sha256);
    await rm(dest);
  });

  it('a part file of another version (If-Range no longer matches) is replaced by the whole new file', async () => {
    const { sha256 } = await h.af.digestOf(RESTRICTED);
    const dest = path.join(work, 'changed.zip');
    await writeFile(`${dest}.part`, Buffer.alloc(1000, 1));
    await writeFile(`${dest}.part.json`, JSON.stringify({ url: h.af.url(RESTRICTED), etag: 'an-old-etag' }));
    const result = await h.client.download(h.af.url(RESTRICTED), dest, { sha256 });
    expect(result).toMatchObject({ resumed: false, size: 4 * MiB, sha256 });
    expect(h.af.requestsTo(RESTRICTED)[0]?.headers['if-range']).toBe('an-old-etag');
    await rm(dest);
  });

  it('a part file that is already whole (416) starts over', async () => {
    // A file of its own: RESTRICTED is in the daemon's cache by now, and a restart would hit it.
    const file = '/artifactory/swtools/restricted/whole.bin';
    h.af.setFile(file, { size: MiB, seed: 12 });
    const { sha256, sha1 } = await h.af.digestOf(file);
    const dest = path.join(work, 'whole.zip');
    await writeFile(`${dest}.part`, h.af.contentOf(file));
    await writeFile(`${dest}.part.json`, JSON.stringify({ url: h.af.url(file), etag: sha1 }));
    const result = await h.client.download(h.af.url(file), dest, { sha256 });
    expect(result).toMatchObject({ resumed: false, sha256 });
    expect(h.af.requestsTo(file).map((r) => r.headers.range)).toEqual([`bytes=${MiB}-`, 'bytes=0-']);
    await rm(dest);
  });

  it('client.fetch passes a Range and returns 206 with the request id', async () => {
    const result = await h.client.fetch(h.af.url(RESTRICTED), { range: 'bytes=0-9' });
    expect(result.status).toBe(206);
    expect(result.headers['content-range']).toBe(`bytes 0-9/${4 * MiB}`);
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
    let size = 0;
    for await (const chunk of result.body) size += (chunk as Buffer).length;
    expect(size).toBe(10);
  });

  it('fetch without -o refuses to write to a terminal (usage error with a hint)', async () => {
    const io = bufferIO({}, { stdout: true, stderr: true });
    const code = await main(['fetch', h.af.url(RESTRICTED)], { io, makeClient: () => new TokenBrokerClient({ socketPath: h.socketPath, stateDir: h.stateDir, onVersionMismatch: () => undefined }) });
    expect(code).toBe(2);
    expect(io.err()).toMatch(/terminal/);
    expect(io.err()).toMatch(/hint: .*-o FILE/);
    expect(h.af.requests).toHaveLength(0);
  });

  it('fetch -o draws a progress bar on a terminal stderr, and nothing when stderr is not one', async () => {
    const client = (): TokenBrokerClient => new TokenBrokerClient({ socketPath: h.socketPath, stateDir: h.stateDir, onVersionMismatch: () => undefined });
    const tty = bufferIO({}, { stdout: false, stderr: true });
    expect(await main(['fetch', h.af.url(RESTRICTED), '-o', path.join(work, 'bar.zip')], { io: tty, makeClient: client })).toBe(0);
    expect(tty.err()).toMatch(/\[#+\] 100% {2}4\.0 MiB \/ 4\.0 MiB {2}.*\/s {2}ETA/);
    expect(tty.err()).toMatch(/saved .*bar\.zip \(4\.0 MiB, sha256 [0-9a-f]{64}\)/);

    const pipe = bufferIO({}, { stdout: false, stderr: false });
    expect(await main(['fetch', h.af.url(RESTRICTED), '-o', path.join(work, 'quiet.zip')], { io: pipe, makeClient: client })).toBe(0);
    expect(pipe.err()).toBe('');
    // The command's result, as `apps download` gives it: the saved path, on stdout, piped or not.
    expect(pipe.out()).toBe(`${path.join(work, 'quiet.zip')}\n`);
  });

  it('fetch rejects a malformed digest as a usage error', async () => {
    const io = bufferIO({}, { stdout: false, stderr: false });
    expect(await main(['fetch', h.af.url(RESTRICTED), '--sha256', 'abc'], { io })).toBe(2);
    expect(io.err()).toMatch(/--sha256 must be 64 hexadecimal characters/);
  });
});
