import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { VerifiedBy } from '../protocol/downloads.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { SHA1_HEX, SHA256_HEX, type FetchRecord } from '../protocol/fetch.js';
import { partKey } from '../protocol/resume-decisions.js';
import { openDownloadTarget } from '../node/download-target.js';
import { resumeToFile } from '../node/resume-to-file.js';

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

/**
 * The streaming download (extra listeners, where the daemon may not write for us): the body comes
 * over the socket and is written here by the one resumable writer the daemon uses too
 * (src/node/resume-to-file.ts: O_NOFOLLOW, O_EXCL, own regular files, a `.part.json` for another
 * URL is discarded, Range + If-Range, verification, rename of the very file written).
 */
export async function downloadFile(client: FetchClient, url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const sha1 = checkDigest(options.sha1, SHA1_HEX, 'sha1');
  const sha256 = checkDigest(options.sha256, SHA256_HEX, 'sha256');
  const target = await openDownloadTarget(path.resolve(dest));
  let requestId = '';
  try {
    let resumedFrom = 0;
    let total: number | undefined;
    let received = 0;
    const outcome = await resumeToFile(target, {
      key: partKey(url),
      describe: url,
      expected: { sha1, sha256 },
      mode: 0o666 & ~process.umask(),
      // A fresh start asks the daemon to verify (it withholds the last chunk until the digest matches);
      // a resume cannot (a digest and a Range do not mix): the whole file is verified here.
      open: async (range, signal) => {
        const response = await client.fetch(url, range.range === undefined ? { ...(sha1 === undefined ? {} : { sha1 }), ...(sha256 === undefined ? {} : { sha256 }), signal } : { range: range.range, ...(range.ifRange === undefined ? {} : { ifRange: range.ifRange }), signal });
        requestId = response.requestId;
        return response;
      },
      onStart: (start) => {
        resumedFrom = start.resumedFrom;
        total = start.total;
        received = start.resumedFrom;
      },
      onBytes: (bytes) => {
        received += bytes;
        options.onProgress?.({ received, total, resumedFrom });
      },
      signal: options.signal ?? new AbortController().signal,
    });
    return { path: target.path, size: outcome.bytes, sha1: outcome.sha1, sha256: outcome.sha256, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed, requestId };
  } finally {
    await target.release();
  }
}

function checkDigest(value: string | undefined, pattern: RegExp, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!pattern.test(value)) {
    throw new BrokerError('BROKER_BAD_REQUEST', { message: `${name} must be ${name === 'sha1' ? 40 : 64} hexadecimal characters.`, details: { field: name } });
  }
  return value.toLowerCase();
}
