import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { CacheWriter, CachedContent, CachedContentInfo, ContentCache, DomainLog } from '../broker/ports.js';
import { createTempFile, renameDurably, sweepTempFiles, writeFileAtomic } from '../node/atomic-file.js';

export interface FsContentCacheOptions {
  /** The daemon's cache dir (already checked private); bodies go into its `content/` subdir. */
  cacheDir: string;
  /** A getter: SIGHUP can change the cap. 0 turns caching off. */
  maxBytes(): number;
  log: DomainLog;
  now?: () => number;
}

export interface FsContentCache extends ContentCache {
  /** Bytes and entries held, for status. */
  usage(): Promise<{ bytes: number; entries: number; maxBytes: number }>;
}

/** A body is served for at most this many URLs (mirrors of one file); the oldest is forgotten. */
const MAX_URLS = 32;
const SHA256 = /^[0-9a-f]{64}$/;
/** Bytes a cache write may queue before the download waits for the disk. */
const WRITE_BUFFER = 1024 * 1024;

const MetaSchema = z.object({
  version: z.literal(1),
  sha1: z.string().regex(/^[0-9a-f]{40}$/),
  sha256: z.string().regex(SHA256),
  size: z.number().int().min(0),
  contentType: z.string().optional(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  urls: z.array(z.string()).min(1),
  storedAt: z.string(),
});
type Meta = z.output<typeof MetaSchema>;

interface Entry {
  meta: Meta;
  lastUsed: number;
}

/**
 * The verified-content cache on disk: `content/<sha256>` holds a body that passed verification,
 * `content/<sha256>.json` what is known about it (digests, size, headers, the URLs it came from).
 * Bodies are written to a temp file and renamed into place only after verification, so a reader
 * never sees a partial one; the fetch service verifies them again when serving, so even a body
 * damaged on disk never reaches a client complete. Size is capped; least recently used bodies go
 * first (use time survives restarts as the body file's mtime).
 */
export function createFsContentCache(options: FsContentCacheOptions): FsContentCache {
  const dir = path.join(options.cacheDir, 'content');
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const bySha1 = new Map<string, string>();
  let total = 0;
  let loading: Promise<void> | undefined;

  const blobPath = (sha256: string): string => path.join(dir, sha256);
  const metaPath = (sha256: string): string => path.join(dir, `${sha256}.json`);

  function index(meta: Meta, lastUsed: number): void {
    const previous = entries.get(meta.sha256);
    if (previous !== undefined) total -= previous.meta.size;
    entries.set(meta.sha256, { meta, lastUsed });
    bySha1.set(meta.sha1, meta.sha256);
    total += meta.size;
  }

  function unindex(sha256: string): void {
    const entry = entries.get(sha256);
    if (entry === undefined) return;
    entries.delete(sha256);
    if (bySha1.get(entry.meta.sha1) === sha256) bySha1.delete(entry.meta.sha1);
    total -= entry.meta.size;
  }

  async function removeFiles(sha256: string): Promise<void> {
    unindex(sha256);
    await unlink(metaPath(sha256)).catch(() => undefined);
    await unlink(blobPath(sha256)).catch(() => undefined);
  }

  /** Builds the index from disk once; drops temp files and anything incomplete or unreadable. */
  function load(): Promise<void> {
    loading ??= (async () => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // Bodies whose writer died mid-write: the one sweeper of atomic writes.
      await sweepTempFiles(dir);
      const names = await readdir(dir);
      const metas = new Set(names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)));
      for (const name of names) {
        if (!SHA256.test(name)) continue;
        if (!metas.has(name)) {
          // A body without its description (crash between rename and meta write): unusable.
          await unlink(path.join(dir, name)).catch(() => undefined);
          continue;
        }
        try {
          const meta = MetaSchema.parse(JSON.parse(await readFile(metaPath(name), 'utf8')));
          const info = await stat(blobPath(name));
          if (meta.sha256 !== name || !info.isFile() || info.size !== meta.size) throw new Error('does not match its body');
          index(meta, info.mtimeMs);
        } catch (err) {
          options.log.warn({ entry: name, err: err instanceof Error ? err.message : String(err) }, 'dropping a damaged cache entry');
          await removeFiles(name);
        }
      }
      for (const sha256 of metas) {
        if (!entries.has(sha256)) await unlink(metaPath(sha256)).catch(() => undefined);
      }
    })();
    return loading;
  }

  async function evict(keep: string): Promise<void> {
    const max = options.maxBytes();
    while (total > max) {
      let oldest: [string, Entry] | undefined;
      for (const item of entries) {
        if (item[0] !== keep && (oldest === undefined || item[1].lastUsed < oldest[1].lastUsed)) oldest = item;
      }
      if (oldest === undefined) break;
      options.log.debug({ sha256: oldest[0], size: oldest[1].meta.size }, 'cache: evicting least recently used body');
      await removeFiles(oldest[0]);
    }
  }

  async function lookup(query: { url: string; sha1?: string | undefined; sha256?: string | undefined }): Promise<CachedContent | undefined> {
    if (options.maxBytes() === 0) return undefined;
    await load();
    const sha256 = query.sha256 ?? (query.sha1 === undefined ? undefined : bySha1.get(query.sha1));
    if (sha256 === undefined) return undefined;
    const entry = entries.get(sha256);
    if (entry === undefined) return undefined;
    const { meta } = entry;
    if (query.sha1 !== undefined && meta.sha1 !== query.sha1) return undefined;
    if (!meta.urls.includes(query.url)) return undefined;
    try {
      const info = await stat(blobPath(sha256));
      if (info.size !== meta.size) throw new Error('size changed');
    } catch {
      await removeFiles(sha256);
      return undefined;
    }
    entry.lastUsed = now();
    const at = new Date(entry.lastUsed);
    await utimes(blobPath(sha256), at, at).catch(() => undefined);
    return {
      sha1: meta.sha1,
      sha256: meta.sha256,
      size: meta.size,
      contentType: meta.contentType,
      etag: meta.etag,
      lastModified: meta.lastModified,
      open: () => createReadStream(blobPath(sha256), { highWaterMark: 256 * 1024 }),
    };
  }

  async function begin(expectedSize: number | undefined): Promise<CacheWriter | undefined> {
    const max = options.maxBytes();
    if (max === 0 || (expectedSize !== undefined && expectedSize > max)) return undefined;
    await load();
    // Named after no body yet (the digest is known at commit): a temp file of the one atomic write.
    const { path: temp, handle } = await createTempFile(path.join(dir, 'body'));
    // A write stream batches queued chunks into one writev: the download never waits for the disk
    // chunk by chunk, only when more than WRITE_BUFFER is queued (then backpressure, memory flat).
    const out = createWriteStream('', { fd: handle, highWaterMark: WRITE_BUFFER });
    let failure: Error | undefined;
    out.on('error', (err) => {
      failure ??= err;
    });
    let written = 0;
    let done = false;

    const closeHandle = (): Promise<void> =>
      new Promise((resolve, reject) => {
        if (out.destroyed) {
          if (failure !== undefined) reject(failure);
          else resolve();
          return;
        }
        out.end(() => (failure === undefined ? resolve() : reject(failure)));
      });

    return {
      async write(chunk: Buffer): Promise<void> {
        if (failure !== undefined) throw failure;
        if (done) throw new Error('cache writer is closed');
        written += chunk.length;
        if (written > max) throw new Error(`the body is larger than the cache (${max} bytes)`);
        if (out.write(chunk)) return;
        await new Promise<void>((resolve, reject) => {
          const settle = (): void => {
            out.off('drain', settle);
            out.off('close', settle);
            if (failure !== undefined) reject(failure);
            else resolve();
          };
          out.on('drain', settle);
          out.on('close', settle);
        });
      },
      async commit(info: CachedContentInfo & { url: string }): Promise<void> {
        if (done) return;
        done = true;
        try {
          await closeHandle();
          if (!SHA256.test(info.sha256) || info.size !== written) throw new Error('digest or size does not describe what was written');
          const existing = entries.get(info.sha256);
          const urls = [...(existing?.meta.urls.filter((u) => u !== info.url) ?? []), info.url].slice(-MAX_URLS);
          const meta: Meta = {
            version: 1,
            sha1: info.sha1,
            sha256: info.sha256,
            size: info.size,
            ...(info.contentType === undefined ? {} : { contentType: info.contentType }),
            ...(info.etag === undefined ? {} : { etag: info.etag }),
            ...(info.lastModified === undefined ? {} : { lastModified: info.lastModified }),
            urls,
            storedAt: new Date(now()).toISOString(),
          };
          if (existing === undefined) await renameDurably(temp, blobPath(info.sha256));
          else await unlink(temp);
          await writeFileAtomic(metaPath(info.sha256), JSON.stringify(meta));
          index(meta, now());
          await evict(info.sha256);
        } catch (err) {
          await unlink(temp).catch(() => undefined);
          throw err;
        }
      },
      async abort(): Promise<void> {
        if (done) return;
        done = true;
        out.destroy();
        await new Promise<void>((resolve) => (out.closed ? resolve() : out.once('close', () => resolve())));
        await unlink(temp).catch(() => undefined);
      },
    };
  }

  return {
    lookup,
    begin,
    async remove(sha256: string): Promise<void> {
      if (!SHA256.test(sha256)) return;
      await load();
      await removeFiles(sha256);
    },
    async usage() {
      await load();
      return { bytes: total, entries: entries.size, maxBytes: options.maxBytes() };
    },
  };
}
