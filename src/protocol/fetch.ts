import { z } from 'zod';

/**
 * `GET /v1/fetch` and `GET /v1/fetches/:id` (DESIGN section 5): the query, the headers that cross
 * the broker, and how a fetch ended. Shared by the daemon (to validate and answer) and the client
 * library (to ask and to read the answer).
 */

/** Every fetch response (and error) carries it; `GET /v1/fetches/:id` takes it. */
export const REQUEST_ID_HEADER = 'x-tokenbroker-request-id';
/** `hit` when the body came from the daemon's verified-content cache (informational). */
export const CACHE_HEADER = 'x-tokenbroker-cache';

/** Request headers passed upstream; everything else a local client sends is ignored. */
export const FORWARDED_REQUEST_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since'] as const;
export type ForwardedRequestHeader = (typeof FORWARDED_REQUEST_HEADERS)[number];

/** Response headers passed back; Set-Cookie, auth challenges and everything else stay behind. */
export const PASSED_RESPONSE_HEADERS = [
  'content-length',
  'content-range',
  'content-type',
  'etag',
  'last-modified',
  'accept-ranges',
  'x-checksum-sha1',
  'x-checksum-sha256',
] as const;

export const SHA1_HEX = /^[0-9a-fA-F]{40}$/;
export const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

const sha1 = z.string().regex(SHA1_HEX, 'must be 40 hexadecimal characters (a SHA-1 digest)').transform((v) => v.toLowerCase());
const sha256 = z.string().regex(SHA256_HEX, 'must be 64 hexadecimal characters (a SHA-256 digest)').transform((v) => v.toLowerCase());

export const FetchQuerySchema = z.strictObject({
  url: z.string({ error: 'is required: the absolute URL to fetch' }).min(1, 'must not be empty').max(16_384, 'is too long'),
  sha1: sha1.optional(),
  sha256: sha256.optional(),
});
export type FetchQuery = z.output<typeof FetchQuerySchema>;

/** The forwarded request headers: single, printable, bounded values. */
const headerValue = z.string().max(1024, 'is too long').regex(/^[\x20-\x7e]*$/, 'must be printable ASCII');
export const FetchRequestHeadersSchema = z.object({
  // One range only: a multipart/byteranges answer is of no use to a downloader.
  range: headerValue.regex(/^bytes=(\d+-\d*|-\d+)$/, 'must be one byte range such as "bytes=100-" or "bytes=0-99"').optional(),
  'if-range': headerValue.optional(),
  'if-none-match': headerValue.optional(),
  'if-modified-since': headerValue.optional(),
});
export type FetchRequestHeaders = z.output<typeof FetchRequestHeadersSchema>;

export const FETCH_OUTCOMES = ['in-progress', 'ok', 'checksum-mismatch', 'upstream-aborted', 'client-aborted', 'timeout', 'error'] as const;
export type FetchOutcomeKind = (typeof FETCH_OUTCOMES)[number];

export const FetchIdParamsSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a request id from the X-Tokenbroker-Request-Id header'),
});

/**
 * How a recent fetch ended. `error` (a refusal or upstream error answered before any byte, with
 * its code) is not in the DESIGN list, which only names how a streamed body ended; it lets a
 * caller look up every id it was given.
 */
export const FetchRecordSchema = z.looseObject({
  id: z.string(),
  /** Origin and path only: query strings of URLs may carry credentials. */
  url: z.string(),
  outcome: z.enum(FETCH_OUTCOMES).or(z.string()),
  startedAt: z.string(),
  endedAt: z.string().optional(),
  /** Status answered to the client, once known. */
  status: z.number().int().optional(),
  /** Body bytes sent to the client. */
  bytes: z.number().int(),
  cache: z.enum(['hit', 'miss', 'off']).optional(),
  error: z.looseObject({ code: z.string(), message: z.string() }).optional(),
});
export type FetchRecord = z.output<typeof FetchRecordSchema>;
