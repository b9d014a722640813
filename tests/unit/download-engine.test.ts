import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OWNER } from '../../src/broker/download-service.js';
import { openDownloadTarget } from '../../src/node/download-target.js';
import { HashWorkerPool } from '../../src/node/hash-worker.js';
import { commitPart, createPart } from '../../src/node/part-files.js';
import { startFetchHarness, type FetchHarness } from '../helpers/fetch-harness.js';
import { makeTempHome } from '../helpers/test-daemon.js';

const FILE = '/artifactory/swtools/restricted/engine/tool.bin';

/**
 * The one transfer engine (issue 19) and the writer's directory-relative file handling
 * (issue 20), without a daemon process: the real transfer and writer on a real fake Artifactory.
 */
describe('download engine', () => {
  let h: FetchHarness;
  let dir: string;
  beforeAll(async () => {
    h = await startFetchHarness();
    h.af.setFile(FILE, { size: 300 * 1024, seed: 41 });
    dir = await makeTempHome('tbeng-');
  });
  afterAll(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a download is not an anonymous /v1/fetches entry; its progress is events, and GET /v1/downloads/:id for a late reader', async () => {
    const before = h.service.ledger.size;
    const outcome = await h.downloads.download({ url: h.af.url(FILE), path: path.join(dir, 'a.bin'), id: 'engine-dl-0001' }, { principal: OWNER, signal: new AbortController().signal });
    expect(outcome.sha256).toBe((await h.af.digestOf(FILE)).sha256);
    expect(h.service.ledger.size).toBe(before);
    expect(h.events.filter((e) => e.type === 'download.done' && e.id === 'engine-dl-0001')).toHaveLength(1);
    expect(h.events.some((e) => e.type === 'download.progress' && e.id === 'engine-dl-0001')).toBe(true);
    expect(h.downloads.get('engine-dl-0001', OWNER)).toMatchObject({ state: 'done', received: 300 * 1024, total: 300 * 1024 });
    expect(h.downloads.get('engine-dl-0001', 'client-token:someone-else')).toBeUndefined();
    expect(h.downloads.cancel('engine-dl-0001', 'client-token:someone-else')).toBeUndefined();
  });

  it('the daemon and the client write the same .part.json key: a .part left by one resumes in the other', async () => {
    const dest = path.join(dir, 'shared.bin');
    // Stalls after 100 KiB: the body timeout ends it once those bytes are on disk.
    h.af.setFault(FILE, { kind: 'stall', afterBytes: 100 * 1024 }, { times: 1 });
    await expect(h.downloads.download({ url: h.af.url(FILE), path: dest }, { principal: OWNER, signal: new AbortController().signal })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE' });
    expect((await lstat(`${dest}.part`)).size).toBeGreaterThan(0);
    // The client's streaming writer (extra listeners) picks it up.
    const { downloadFile } = await import('../../src/client/fetch.js');
    const result = await downloadFile(h.client, h.af.url(FILE), dest);
    expect(result.resumed).toBe(true);
    expect(result.sha256).toBe((await h.af.digestOf(FILE)).sha256);
  });

  it('a connection that drops while the .part is being prepared ends the download (kept for a resume), it does not hang', async () => {
    h.af.setFault(FILE, { kind: 'drop', afterBytes: 100 * 1024 }, { times: 1 });
    const dest = path.join(dir, 'dropped.bin');
    await expect(h.downloads.download({ url: h.af.url(FILE), path: dest }, { principal: OWNER, signal: new AbortController().signal })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE' });
    const again = await h.downloads.download({ url: h.af.url(FILE), path: dest }, { principal: OWNER, signal: new AbortController().signal });
    expect(again.sha256).toBe((await h.af.digestOf(FILE)).sha256);
  });

  it('works relative to the opened directory: a directory swapped for a symlink after the check does not redirect the write', async () => {
    const parent = await mkdtemp(path.join(dir, 'swap-'));
    const elsewhere = await mkdtemp(path.join(dir, 'elsewhere-'));
    await mkdir(path.join(parent, 'sub'));
    const target = await openDownloadTarget(path.join(parent, 'sub', 'f.bin'));
    try {
      // After the check: the checked directory moves away, a symlink to elsewhere takes its name.
      await rename(path.join(parent, 'sub'), path.join(parent, 'moved'));
      await symlink(elsewhere, path.join(parent, 'sub'));
      const part = await createPart(target, { url: 'https://x.example/f.bin', etag: 'e' });
      await part.handle.write(Buffer.from('payload'));
      await commitPart(part, target, 0o644);
    } finally {
      await target.release();
    }
    expect(await readdir(elsewhere)).toEqual([]);
    expect(await readFile(path.join(parent, 'moved', 'f.bin'), 'utf8')).toBe('payload');
  });

  it('renames only the file it wrote: a .part replaced after verification is refused (same device and inode)', async () => {
    const sub = await mkdtemp(path.join(dir, 'inode-'));
    const target = await openDownloadTarget(path.join(sub, 'f.bin'));
    try {
      const part = await createPart(target, { url: 'https://x.example/f.bin', etag: 'e' });
      await part.handle.write(Buffer.from('verified bytes'));
      // Someone puts another file at FILE.part (a rename: another inode).
      await writeFile(path.join(sub, 'other'), 'planted bytes');
      await rename(path.join(sub, 'other'), path.join(sub, 'f.bin.part'));
      await expect(commitPart(part, target, 0o644)).rejects.toMatchObject({ code: 'BROKER_BAD_REQUEST', details: { reason: 'part-replaced' } });
    } finally {
      await target.release();
    }
    await expect(lstat(path.join(sub, 'f.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(createHash('sha256').update(await readFile(path.join(sub, 'f.bin.part'))).digest('hex')).toBe(createHash('sha256').update('planted bytes').digest('hex'));
  });
});

/** The daemon's composition: the writer hashes on the hash worker (src/daemon/main.ts). */
describe('download engine on the hash worker', () => {
  const BIG = '/artifactory/swtools/restricted/engine/big.bin';
  let h: FetchHarness;
  let dir: string;
  // A short idle time: a pool whose downloads all ended (or gave up) stops its thread soon.
  const pool = new HashWorkerPool(50);
  beforeAll(async () => {
    h = await startFetchHarness({ digests: () => pool.digests() });
    // Larger than the 8 MiB backlog the writer allows, with an odd tail.
    h.af.setFile(BIG, { size: 20 * 1024 * 1024 + 7, seed: 43 });
    dir = await makeTempHome('tbengw-');
  });
  afterAll(async () => {
    await pool.close();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a broken download gives its digests up (the worker stops); the resume hashes the kept prefix first and gets the file\'s digests', async () => {
    const dest = path.join(dir, 'big.bin');
    // Breaks off past the first 1 MiB batch, mid-batch: the prefix is read back in uneven pieces.
    h.af.setFault(BIG, { kind: 'drop', afterBytes: 1024 * 1024 + 512 * 1024 + 123 }, { times: 1 });
    await expect(h.downloads.download({ url: h.af.url(BIG), path: dest }, { principal: OWNER, signal: new AbortController().signal })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE' });
    const kept = (await lstat(`${dest}.part`)).size;
    expect(kept).toBeGreaterThan(0);
    // A download that gave up without discard() would keep the worker running forever.
    await vi.waitFor(() => expect(pool.running).toBe(false), { timeout: 10_000, interval: 20 });

    const again = await h.downloads.download({ url: h.af.url(BIG), path: dest, id: 'engine-worker-0001' }, { principal: OWNER, signal: new AbortController().signal });
    const expected = await h.af.digestOf(BIG);
    expect(again).toMatchObject({ resumed: true, sha1: expected.sha1, sha256: expected.sha256 });
    expect(h.downloads.get('engine-worker-0001', OWNER)).toMatchObject({ state: 'done', resumedFrom: kept });
    const written = await readFile(dest);
    expect(createHash('sha256').update(written).digest('hex')).toBe(expected.sha256);
  });
});
