/**
 * The decisions of a resumable download, as pure functions (no files, no sockets): which range
 * to ask for, when a 416 means "start over", what a 200 or a 206 means for the `.part` on disk,
 * what `.part.json` records and what the finished file is verified against. The one writer
 * (src/node/resume-to-file.ts) carries them out for the daemon (`POST /v1/downloads`) and for
 * the client library's streaming path alike; the fetch pipeline reads Content-Range here too.
 */
import { isBrokerError } from './errors.js';
import type { PartInfo, VerifiedBy } from './downloads.js';

export interface Digests {
  sha1?: string | undefined;
  sha256?: string | undefined;
}

/** `bytes START-END/TOTAL` (TOTAL may be `*`, unknown). */
export interface ContentRange {
  start: number;
  end: number;
  total: number | undefined;
}

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

export function parseContentRange(value: string | undefined): ContentRange | undefined {
  const match = CONTENT_RANGE.exec(value?.trim() ?? '');
  if (match === null) return undefined;
  return { start: Number(match[1]), end: Number(match[2]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

/** What `.part.json` records as the URL: the parsed href (the same key whichever writer made it). */
export function partKey(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/** The validator that makes a resume safe (If-Range): the ETag, else Last-Modified. */
export function partValidator(info: PartInfo | undefined): string | undefined {
  return info?.etag ?? info?.lastModified;
}

/** An earlier attempt's `.part` as the writer found it. */
export interface ExistingPart {
  info: PartInfo;
  size: number;
}

/** The first request of a download: continue the `.part` (Range + If-Range) or start over. */
export interface FirstRequest {
  /** The `.part` on disk is not ours to continue (another URL, no validator, empty): remove it. */
  discardExisting: boolean;
  resumeFrom: number;
  range?: string;
  ifRange?: string;
}

export function firstRequest(existing: ExistingPart | undefined, key: string): FirstRequest {
  if (existing === undefined) return { discardExisting: false, resumeFrom: 0 };
  const validator = partValidator(existing.info);
  if (existing.info.url !== key || validator === undefined || existing.size === 0) return { discardExisting: true, resumeFrom: 0 };
  return { discardExisting: false, resumeFrom: existing.size, range: `bytes=${existing.size}-`, ifRange: validator };
}

/** A resume refused with 416: the `.part` is no prefix of the file any more (or all of it): start over. */
export function restartsAfter(err: unknown, resumeFrom: number): boolean {
  return resumeFrom > 0 && isBrokerError(err, 'BROKER_UPSTREAM_ERROR') && err.details?.status === 416;
}

/** What an answer means for the `.part`. */
export type ResponsePlan =
  /** 206 at the right place: append to the `.part`. */
  | { kind: 'append'; resumeFrom: number; total: number | undefined }
  /** 200: the whole file (a fresh start, or If-Range said the file changed: the `.part` is worthless). */
  | { kind: 'fresh'; resumeFrom: 0; total: number | undefined }
  /** A 206 at another place than asked: remove the `.part`, the user runs it again. */
  | { kind: 'wrong-range'; contentRange: string | undefined }
  | { kind: 'unexpected'; status: number };

export function planResponse(status: number, headers: Readonly<Record<string, string | undefined>>, resumeFrom: number): ResponsePlan {
  if (status === 206 && resumeFrom > 0) {
    const range = parseContentRange(headers['content-range']);
    if (range === undefined || range.start !== resumeFrom) return { kind: 'wrong-range', contentRange: headers['content-range'] };
    return { kind: 'append', resumeFrom, total: range.total };
  }
  if (status === 200) {
    const length = headers['content-length'];
    const total = length === undefined || !/^\d+$/.test(length) ? undefined : Number(length);
    return { kind: 'fresh', resumeFrom: 0, total };
  }
  return { kind: 'unexpected', status };
}

/** `.part.json` for an answer: the URL key and the validators a later resume sends back. */
export function partInfoFor(key: string, headers: Readonly<Record<string, string | undefined>>, total: number | undefined): PartInfo {
  return {
    url: key,
    ...(headers.etag === undefined ? {} : { etag: headers.etag }),
    ...(headers['last-modified'] === undefined ? {} : { lastModified: headers['last-modified'] }),
    ...(total === undefined ? {} : { total }),
  };
}

/** What the finished file is checked against: the caller's digest, else the server's own, else nothing. */
export function verificationOf(expected: Digests, server: Digests): { verifiedBy: VerifiedBy; against: Digests } {
  if (expected.sha1 !== undefined || expected.sha256 !== undefined) return { verifiedBy: 'shasum', against: expected };
  if (server.sha1 !== undefined || server.sha256 !== undefined) return { verifiedBy: 'server-checksum', against: server };
  return { verifiedBy: 'none', against: {} };
}

export interface DigestMismatch {
  algorithm: 'sha1' | 'sha256';
  expected: string;
  actual: string;
}

/** The first digest both sides know that differs (sha256 first). */
export function firstMismatch(expected: Digests, actual: Digests): DigestMismatch | undefined {
  for (const algorithm of ['sha256', 'sha1'] as const) {
    const want = expected[algorithm]?.toLowerCase();
    const got = actual[algorithm]?.toLowerCase();
    if (want !== undefined && got !== undefined && want !== got) return { algorithm, expected: want, actual: got };
  }
  return undefined;
}

/** A body that ended before the length the server announced. */
export function isShort(received: number, total: number | undefined): boolean {
  return total !== undefined && received !== total;
}
