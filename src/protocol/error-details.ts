import { z } from 'zod';

/**
 * The declared shape of `error.details` for each code (the envelope's machine-readable part).
 * Code branches on these fields, never on message text; the client can check an envelope with
 * `errorDetailsSchema(code)`. Objects are loose: a newer daemon may add fields.
 * `retryAfter` is always whole seconds, and an envelope carrying it also sets `Retry-After`.
 */

const status = z.number().int().min(100).max(599);
/** Origin and canonical path of the URL concerned: never userinfo or a query string. */
const url = z.string().max(4096);

/** Where the connection failed; the last four are how a fetch ended (the fetch ledger's outcomes), as the client library reports them. */
export const UpstreamUnreachableReason = z.enum(['aborted', 'connect-timeout', 'headers-timeout', 'tls', 'dns', 'network', 'short-body', 'timeout', 'upstream-aborted', 'client-aborted', 'unknown']);

/** Why an upstream answer was unusable (BROKER_UPSTREAM_ERROR), besides a plain error status. */
export const UpstreamErrorReason = z.enum(['status', 'redirect-refused', 'partial-content', 'not-modified-unasked', 'not-json']);

export const ERROR_DETAILS = {
  BROKER_BAD_REQUEST: z.looseObject({ field: z.string().optional(), reason: z.string().optional() }),
  BROKER_UNAUTHORIZED: z.looseObject({}),
  BROKER_FORBIDDEN: z.looseObject({ reason: z.string().optional(), requiredScope: z.string().optional() }),
  BROKER_URL_NOT_ALLOWED: z.looseObject({ reason: z.string(), url: url.optional() }),
  BROKER_UPSTREAM_FORBIDDEN: z.looseObject({ status, url: url.optional(), server: z.string().optional() }),
  /** `versions`: the versions an app lists, when the one asked for (or its latestVersion) is not among them. */
  BROKER_NOT_FOUND: z.looseObject({ name: z.string().optional(), versions: z.array(z.string()).optional() }),
  BROKER_UPSTREAM_NOT_FOUND: z.looseObject({ status, url: url.optional() }),
  BROKER_TOKEN_MISSING: z.looseObject({ server: z.string().optional() }),
  BROKER_TOKEN_INVALID: z.looseObject({ server: z.string().optional(), url: url.optional() }),
  /** `expiresAt`: ISO time, when the expiry is known (from the token's own shape or the server). */
  BROKER_TOKEN_EXPIRED: z.looseObject({ server: z.string().optional(), url: url.optional(), expiresAt: z.string().optional() }),
  BROKER_SOURCE_EXISTS: z.looseObject({ name: z.string().optional() }),
  BROKER_SOURCE_OFFICIAL: z.looseObject({}),
  /** `etag`: the config's current ETag (read the config again before retrying: the content changed). */
  BROKER_CONFIG_CHANGED: z.looseObject({ etag: z.string().optional() }),
  BROKER_SOURCE_INVALID: z.looseObject({ url: url.optional(), field: z.string().optional(), reason: z.string().optional() }),
  BROKER_INTERNAL: z.looseObject({}),
  BROKER_UPSTREAM_UNREACHABLE: z.looseObject({ reason: UpstreamUnreachableReason, code: z.string().optional(), url: url.optional(), requestId: z.string().optional() }),
  BROKER_UPSTREAM_ERROR: z.looseObject({
    status,
    reason: UpstreamErrorReason.optional(),
    url: url.optional(),
    /** Whole seconds the server asked to wait (Retry-After); absent when it did not say. */
    retryAfter: z.number().int().nonnegative().optional(),
  }),
  BROKER_CHECKSUM_MISMATCH: z.looseObject({ algorithm: z.enum(['sha1', 'sha256']).optional(), expected: z.string().optional(), actual: z.string().optional() }),
  BROKER_SECRET_STORE_UNAVAILABLE: z.looseObject({ state: z.string().optional(), reason: z.string().optional() }),
} as const;

type DeclaredCode = keyof typeof ERROR_DETAILS;

/** The details type of a code (a code without a declared schema carries none). */
export type ErrorDetailsOf<C extends string> = C extends DeclaredCode ? z.input<(typeof ERROR_DETAILS)[C]> : Record<string, never>;

/** The schema for a code's details, for checking an envelope received over the wire. */
export function errorDetailsSchema(code: string): z.ZodType | undefined {
  return Object.hasOwn(ERROR_DETAILS, code) ? ERROR_DETAILS[code as DeclaredCode] : undefined;
}
