import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { SHA1_HEX, SHA256_HEX, type FetchRecord } from '../protocol/fetch.js';

export interface FetchOptions {
  /** Verify the whole body against this digest (the daemon withholds the last chunk until it matches). */
  sha1?: string;
  sha256?: string;
  /** e.g. `bytes=1000-`; cannot be combined with a digest. */
  range?: string;
  ifRange?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** 200, 206 (a Range was asked for) or 304 (a conditional header matched). */
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** For `fetchOutcome()` and the daemon log. */
  requestId: string;
  /** Never buffered. If it breaks off, it errors with a BrokerError saying why. */
  body: Readable;
}

export interface DownloadProgress {
  /** Bytes of the file on disk so far, including those resumed from an earlier attempt. */
  received: number;
  /** The whole file's size, when the server said. */
  total: number | undefined;
  /** Bytes that were already there from an earlier attempt. */
  resumedFrom: number;
}

export interface DownloadOptions {
  sha1?: string;
  sha256?: string;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  path: string;
  size: number;
  /** Digests of the whole file (those that were asked for, sha256 always). */
  sha1?: string;
  sha256: string;
  /** True when an earlier attempt's `.part` file was continued. */
  resumed: boolean;
  requestId: string;
}

/** What `typedBody` and `downloadFile` need of the client. */
export interface FetchClient {
  fetch(url: string, options?: FetchOptions): Promise<FetchResult>;
  fetchOutcome(requestId: string, options?: { signal?: AbortSignal }): Promise<FetchRecord>;
}

/**
 * Wraps a fetch body so that a stream that breaks off errors with a typed error: the daemon is
 * asked how the fetch ended (it records that before it cuts the connection), and a checksum abort
 * becomes BROKER_CHECKSUM_MISMATCH, anything else BROKER_UPSTREAM_UNREACHABLE. The caller's own
 * abort stays an AbortError.
 */
export function typedBody(raw: Readable, requestId: string, client: Pick<FetchClient, 'fetchOutcome'>): Readable {
  const out = new PassThrough();
  raw.once('error', (err: Error) => {
    raw.unpipe(out);
    if (isAbort(err)) {
      out.destroy(err);
      return;
    }
    void explainBrokenBody(err, requestId, client).then((typed) => out.destroy(typed));
  });
  // A consumer that stops early aborts the request (and with it the upstream one).
  out.once('close', () => {
    if (!raw.destroyed) raw.destroy();
  });
  raw.pipe(out);
  return out;
}

function isAbort(err: unknown): boolean {
  const e = err as { name?: string; code?: string } | undefined;
  return e?.name === 'AbortError' || e?.code === 'ABORT_ERR';
}

async function explainBrokenBody(cause: Error, requestId: string, client: Pick<FetchClient, 'fetchOutcome'>): Promise<Error> {
  let record: FetchRecord | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      record = await client.fetchOutcome(requestId);
    } catch (err) {
      if (isBrokerError(err)) break;
      return err instanceof Error ? err : cause;
    }
    if (record.outcome !== 'in-progress') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (record?.outcome === 'checksum-mismatch') {
    return new BrokerError('BROKER_CHECKSUM_MISMATCH', {
      message: `The download was aborted: ${record.error?.message ?? 'its content does not match the expected checksum'}.`,
      details: { requestId },
      cause,
    });
  }
  const how = record?.outcome === 'timeout' ? 'the server stopped sending (timeout)' : record?.outcome === 'upstream-aborted' ? 'the connection to the server broke' : 'the connection broke';
  return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', {
    message: `The download broke off after ${record?.bytes ?? 'some'} bytes: ${how}.`,
    hint: 'Try again; `tokenbroker fetch -o FILE` and client.download() resume where they stopped.',
    details: { requestId, reason: record?.outcome === 'timeout' || record?.outcome === 'upstream-aborted' || record?.outcome === 'client-aborted' ? record.outcome : 'unknown' },
    cause,
  });
}

/** Beside the `.part` file: what is needed to resume it safely. */
const PartInfoSchema = z.object({
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  total: z.number().int().optional(),
});
type PartInfo = z.output<typeof PartInfoSchema>;

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** See TokenBrokerClient.download. */
export async function downloadFile(client: FetchClient, url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const sha1 = checkDigest(options.sha1, SHA1_HEX, 'sha1');
  const sha256 = checkDigest(options.sha256, SHA256_HEX, 'sha256');
  const part = `${dest}.part`;
  const infoFile = `${dest}.part.json`;
  const discard = async (): Promise<void> => {
    await rm(part, { force: true });
    await rm(infoFile, { force: true });
  };

  const saved = await readPartInfo(infoFile);
  const partSize = await sizeOf(part);
  const validator = saved?.etag ?? saved?.lastModified;
  let resumeFrom = saved !== undefined && saved.url === url && validator !== undefined && partSize !== undefined && partSize > 0 ? partSize : 0;
  if (resumeFrom === 0 && (partSize !== undefined || saved !== undefined)) await discard();

  let response: FetchResult;
  try {
    response =
      resumeFrom > 0
        ? await client.fetch(url, { range: `bytes=${resumeFrom}-`, ifRange: validator as string, ...signalOf(options) })
        : await client.fetch(url, { ...(sha1 === undefined ? {} : { sha1 }), ...(sha256 === undefined ? {} : { sha256 }), ...signalOf(options) });
  } catch (err) {
    // 416: the part file is not a prefix of the file any more (or is all of it): start over.
    if (resumeFrom === 0 || !isBrokerError(err, 'BROKER_UPSTREAM_ERROR') || err.details?.status !== 416) throw err;
    await discard();
    resumeFrom = 0;
    response = await client.fetch(url, { ...(sha1 === undefined ? {} : { sha1 }), ...(sha256 === undefined ? {} : { sha256 }), ...signalOf(options) });
  }

  let total: number | undefined;
  if (response.status === 206) {
    const range = CONTENT_RANGE.exec(response.headers['content-range'] ?? '');
    if (range === null || Number(range[1]) !== resumeFrom) {
      response.body.destroy();
      await discard();
      throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `The server resumed at the wrong place (${response.headers['content-range'] ?? 'no Content-Range'}); the partial file was removed.`, hint: 'Run the download again to start from the beginning.', details: { status: 206 } });
    }
    total = range[3] === '*' ? undefined : Number(range[3]);
  } else if (response.status === 200) {
    // A fresh start, or If-Range said the file changed: the part file is worthless.
    resumeFrom = 0;
    const length = response.headers['content-length'];
    total = length === undefined ? undefined : Number(length);
  } else {
    response.body.destroy();
    throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `Unexpected status ${response.status} for a download.`, details: { status: response.status } });
  }

  const info: PartInfo = {
    url,
    ...(response.headers.etag === undefined ? {} : { etag: response.headers.etag }),
    ...(response.headers['last-modified'] === undefined ? {} : { lastModified: response.headers['last-modified'] }),
    ...(total === undefined ? {} : { total }),
  };
  // Written before the first byte, so whatever reaches the part file can be resumed.
  await writeFile(infoFile, JSON.stringify(info), { mode: 0o600 });

  // A resumed download only streams the tail: the digest covers the bytes already on disk too.
  const hashes = new WholeFileHashes(sha1 !== undefined);
  if (resumeFrom > 0) await pipeline(createReadStream(part, { end: resumeFrom - 1 }), hashes.sink());
  let received = resumeFrom;
  const progress = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback) {
      received += chunk.length;
      hashes.update(chunk);
      options.onProgress?.({ received, total, resumedFrom: resumeFrom });
      callback(null, chunk);
    },
  });
  try {
    await pipeline(response.body, progress, createWriteStream(part, { flags: resumeFrom > 0 ? 'a' : 'w', mode: 0o600 }));
  } catch (err) {
    // A checksum abort means the bytes are wrong: keep nothing. Anything else: keep them to resume.
    if (isBrokerError(err, 'BROKER_CHECKSUM_MISMATCH')) await discard();
    throw err;
  }

  const digests = hashes.digest();
  for (const [algorithm, expected] of [['sha256', sha256], ['sha1', sha1]] as const) {
    const actual = digests[algorithm];
    if (expected !== undefined && actual !== expected) {
      await discard();
      throw new BrokerError('BROKER_CHECKSUM_MISMATCH', {
        message: `The ${algorithm} of the downloaded file (${actual}) does not match the expected ${expected}; the partial file was removed.`,
        details: { algorithm, expected, actual, requestId: response.requestId },
      });
    }
  }
  if (total !== undefined && received !== total) {
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The download ended after ${received} of ${total} bytes.`, hint: 'Run it again to resume.', details: { reason: 'short-body', requestId: response.requestId } });
  }
  await syncFile(part);
  await rename(part, dest);
  await rm(infoFile, { force: true });
  return { path: dest, size: received, ...(digests.sha1 === undefined ? {} : { sha1: digests.sha1 }), sha256: digests.sha256, resumed: resumeFrom > 0, requestId: response.requestId };
}

class WholeFileHashes {
  private readonly sha256 = createHash('sha256');
  private readonly sha1: Hash | undefined;
  constructor(withSha1: boolean) {
    this.sha1 = withSha1 ? createHash('sha1') : undefined;
  }

  update(chunk: Buffer): void {
    this.sha256.update(chunk);
    this.sha1?.update(chunk);
  }

  sink(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback) => {
        this.update(chunk);
        callback();
      },
    });
  }

  digest(): { sha1: string | undefined; sha256: string } {
    return { sha1: this.sha1?.digest('hex'), sha256: this.sha256.digest('hex') };
  }
}

function signalOf(options: DownloadOptions): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

function checkDigest(value: string | undefined, pattern: RegExp, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!pattern.test(value)) {
    throw new BrokerError('BROKER_BAD_REQUEST', { message: `${name} must be ${name === 'sha1' ? 40 : 64} hexadecimal characters.`, details: { field: name } });
  }
  return value.toLowerCase();
}

async function readPartInfo(file: string): Promise<PartInfo | undefined> {
  try {
    const parsed = PartInfoSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/** The rename must not make a file visible whose bytes are still only in the page cache. */
async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
