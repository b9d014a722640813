import path from 'node:path';
import { PassThrough, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PartInfo, VerifiedBy } from '../protocol/downloads.js';
import { checkDownloadTarget, commitPart, createPart, discardPart, openResumablePart, writePartInfo, type OpenPart } from '../protocol/part-files.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { SHA1_HEX, SHA256_HEX, type FetchRecord } from '../protocol/fetch.js';
import { FileDigests, serverChecksums } from '../protocol/file-digests.js';

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
  /** Digests of the whole file. */
  sha1: string;
  sha256: string;
  /**
   * How the content was checked: `shasum` (the digest the caller or the app index gave),
   * `server-checksum` (the server's X-Checksum-Sha1/-Sha256 or sha1 ETag), `none`.
   */
  verifiedBy: VerifiedBy;
  /** True when an earlier attempt's `.part` file was continued. */
  resumed: boolean;
  /** The fetch's request id (streamed) or the download id (daemon-written). */
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

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/**
 * The streaming download (extra listeners, where the daemon may not write for us): the body comes
 * over the socket and is written here, with the same `.part` rules as the daemon's writer
 * (src/protocol/part-files.ts: O_NOFOLLOW, O_EXCL, own regular files, a `.part.json` for another
 * URL is discarded).
 */
export async function downloadFile(client: FetchClient, url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const sha1 = checkDigest(options.sha1, SHA1_HEX, 'sha1');
  const sha256 = checkDigest(options.sha256, SHA256_HEX, 'sha256');
  const target = await checkDownloadTarget(path.resolve(dest));
  const digestOptions = { ...(sha1 === undefined ? {} : { sha1 }), ...(sha256 === undefined ? {} : { sha256 }) };

  let existing = await openResumablePart(target);
  const validator = existing?.info.etag ?? existing?.info.lastModified;
  if (existing !== undefined && (existing.info.url !== url || validator === undefined || existing.part.size === 0)) {
    await existing.part.handle.close();
    await discardPart(target);
    existing = undefined;
  }
  let resumeFrom = existing?.part.size ?? 0;
  const dropExisting = async (): Promise<void> => {
    await existing?.part.handle.close().catch(() => undefined);
    existing = undefined;
    await discardPart(target);
  };

  let response: FetchResult;
  try {
    response = resumeFrom > 0 ? await client.fetch(url, { range: `bytes=${resumeFrom}-`, ifRange: validator as string, ...signalOf(options) }) : await client.fetch(url, { ...digestOptions, ...signalOf(options) });
  } catch (err) {
    // 416: the part file is not a prefix of the file any more (or is all of it): start over.
    if (resumeFrom === 0 || !isBrokerError(err, 'BROKER_UPSTREAM_ERROR') || err.details?.status !== 416) {
      await existing?.part.handle.close().catch(() => undefined);
      throw err;
    }
    await dropExisting();
    resumeFrom = 0;
    response = await client.fetch(url, { ...digestOptions, ...signalOf(options) });
  }

  let total: number | undefined;
  if (response.status === 206 && resumeFrom > 0) {
    const range = CONTENT_RANGE.exec(response.headers['content-range'] ?? '');
    if (range === null || Number(range[1]) !== resumeFrom) {
      response.body.destroy();
      await dropExisting();
      throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `The server resumed at the wrong place (${response.headers['content-range'] ?? 'no Content-Range'}); the partial file was removed.`, hint: 'Run the download again to start from the beginning.', details: { status: 206 } });
    }
    total = range[3] === '*' ? undefined : Number(range[3]);
  } else if (response.status === 200) {
    // A fresh start, or If-Range said the file changed: the part file is worthless.
    if (existing !== undefined) await dropExisting();
    resumeFrom = 0;
    const length = response.headers['content-length'];
    total = length === undefined ? undefined : Number(length);
  } else {
    response.body.destroy();
    await existing?.part.handle.close().catch(() => undefined);
    throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `Unexpected status ${response.status} for a download.`, details: { status: response.status } });
  }

  const info: PartInfo = {
    url,
    ...(response.headers.etag === undefined ? {} : { etag: response.headers.etag }),
    ...(response.headers['last-modified'] === undefined ? {} : { lastModified: response.headers['last-modified'] }),
    ...(total === undefined ? {} : { total }),
  };
  let part: OpenPart;
  if (existing !== undefined) {
    await writePartInfo(target, info);
    part = existing.part;
  } else {
    part = await createPart(target, info);
  }

  // A resumed download only streams the tail: the digest covers the bytes already on disk too.
  const hashes = new FileDigests();
  if (resumeFrom > 0) await hashPrefix(part, resumeFrom, hashes);
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
    await pipeline(response.body, progress, handleSink(part));
  } catch (err) {
    await part.handle.close().catch(() => undefined);
    // A checksum abort means the bytes are wrong: keep nothing. Anything else: keep them to resume.
    if (isBrokerError(err, 'BROKER_CHECKSUM_MISMATCH')) await discardPart(target);
    throw err;
  }

  const digests = hashes.digest();
  const server = serverChecksums(response.headers);
  const verifiedBy: VerifiedBy = sha1 !== undefined || sha256 !== undefined ? 'shasum' : server.sha1 !== undefined || server.sha256 !== undefined ? 'server-checksum' : 'none';
  const expected = verifiedBy === 'shasum' ? { sha1, sha256 } : server;
  for (const algorithm of ['sha256', 'sha1'] as const) {
    const want = expected[algorithm];
    const actual = digests[algorithm];
    if (want !== undefined && actual !== want) {
      await part.handle.close().catch(() => undefined);
      await discardPart(target);
      throw new BrokerError('BROKER_CHECKSUM_MISMATCH', {
        message: `The ${algorithm} of the downloaded file (${actual}) does not match the expected ${want}; the partial file was removed.`,
        details: { algorithm, expected: want, actual, requestId: response.requestId },
      });
    }
  }
  if (total !== undefined && received !== total) {
    await part.handle.close().catch(() => undefined);
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The download ended after ${received} of ${total} bytes.`, hint: 'Run it again to resume.', details: { reason: 'short-body', requestId: response.requestId } });
  }
  await commitPart(part, target, 0o666 & ~process.umask());
  return { path: target, size: received, sha1: digests.sha1, sha256: digests.sha256, verifiedBy, resumed: resumeFrom > 0, requestId: response.requestId };
}

/** Feeds the first `size` bytes of the part file to the hashes (a resumed download's prefix). */
async function hashPrefix(part: OpenPart, size: number, hashes: FileDigests): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(1024 * 1024, size));
  for (let position = 0; position < size; ) {
    const { bytesRead } = await part.handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
    if (bytesRead === 0) break;
    hashes.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

/** Writes to the open part file (which stays open for the fsync and rename); batches become one writev. */
function handleSink(part: OpenPart): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    writev(chunks, callback) {
      part.handle.writev(chunks.map((c) => c.chunk as Buffer)).then(() => callback(), callback);
    },
  });
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
