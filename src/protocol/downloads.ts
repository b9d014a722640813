import { z } from 'zod';
import { SHA1_HEX, SHA256_HEX } from './fetch.js';
import { absolutePathExample, isAbsolutePlatformPath } from './absolute-path.js';

/**
 * `POST /v1/downloads`, `GET/DELETE /v1/downloads/:id` (DESIGN section 5): the daemon itself
 * writes the file. Shared by the daemon (to validate and answer) and the client library.
 */

const sha1 = z.string().regex(SHA1_HEX, 'must be 40 hexadecimal characters (a SHA-1 digest)').transform((v) => v.toLowerCase());
const sha256 = z.string().regex(SHA256_HEX, 'must be 64 hexadecimal characters (a SHA-256 digest)').transform((v) => v.toLowerCase());

/** Chosen by the client (so it can poll and cancel before the answer) or by the daemon. */
export const DOWNLOAD_ID = /^[A-Za-z0-9-]{8,64}$/;

/** The default umask when a client does not send its own: files come out 0644. */
export const DEFAULT_UMASK = 0o022;

export const DownloadRequestSchema = z
  .strictObject({
    url: z.string().min(1, 'must not be empty').max(16_384, 'is too long').optional(),
    source: z.string().min(1).max(64).optional(),
    app: z.string().min(1).max(214).optional(),
    version: z.string().min(1).max(256).optional(),
    path: z
      .string({ error: 'is required: the absolute path of the file to write' })
      .min(2, 'must be an absolute file path')
      .max(4096, 'is too long')
      .refine((p) => isAbsolutePlatformPath(p), `must be an absolute file path (e.g. ${absolutePathExample()})`),
    sha1: sha1.optional(),
    sha256: sha256.optional(),
    /**
     * The caller's umask: the finished file gets `0666 & ~umask`, as if the caller had created it.
     * Absent: DEFAULT_UMASK (0644 files).
     */
    umask: z.number().int().min(0).max(0o777).optional(),
    id: z.string().regex(DOWNLOAD_ID, 'must be 8-64 characters of A-Z, a-z, 0-9 and "-"').optional(),
  })
  .refine((b) => (b.url !== undefined) !== (b.source !== undefined || b.app !== undefined), { message: 'give either "url" or "source" + "app"', path: ['url'] })
  .refine((b) => b.url !== undefined || (b.source !== undefined && b.app !== undefined), { message: '"source" and "app" go together', path: ['app'] })
  .refine((b) => b.url !== undefined || (b.sha1 === undefined && b.sha256 === undefined), { message: 'an app download is verified against the index shasum; do not pass a digest', path: ['sha1'] })
  .refine((b) => b.url === undefined || b.version === undefined, { message: '"version" only goes with "source" + "app"', path: ['version'] });
export type DownloadRequest = z.input<typeof DownloadRequestSchema>;
export type DownloadRequestInput = z.output<typeof DownloadRequestSchema>;

/** How the content was checked: an expected digest (`shasum`), the server's own sha1, or not at all. */
export const VERIFIED_BY = ['shasum', 'server-checksum', 'none'] as const;
export type VerifiedBy = (typeof VERIFIED_BY)[number];
/** On `GET /v1/apps/:source/:name/tarball`: what the daemon verifies the stream against (`shasum` or `none`). */
export const VERIFIED_BY_HEADER = 'x-tokenbroker-verified-by';

export const DownloadOutcomeSchema = z.looseObject({
  id: z.string(),
  path: z.string(),
  bytes: z.number().int().min(0),
  sha1: z.string(),
  sha256: z.string(),
  verifiedBy: z.enum(VERIFIED_BY),
  resumed: z.boolean(),
});
export type DownloadOutcome = z.output<typeof DownloadOutcomeSchema>;

export const DOWNLOAD_STATES = ['running', 'done', 'failed', 'cancelled'] as const;
export type DownloadState = (typeof DOWNLOAD_STATES)[number];

export const DownloadProgressSchema = z.looseObject({
  id: z.string(),
  path: z.string(),
  /** Bytes of the file so far, including those resumed from an earlier attempt. */
  received: z.number().int().min(0),
  /** The whole file's size, once the server said. */
  total: z.number().int().min(0).nullable(),
  /** Bytes that were already on disk from an earlier attempt. */
  resumedFrom: z.number().int().min(0),
  state: z.enum(DOWNLOAD_STATES).or(z.string()),
});
export type DownloadProgressView = z.output<typeof DownloadProgressSchema>;

export const DownloadIdParamsSchema = z.strictObject({
  id: z.string().regex(DOWNLOAD_ID, 'must be a download id'),
});

/** Beside `FILE.part`: what is needed to resume it safely. Written by the daemon and the client library. */
export const PartInfoSchema = z.object({
  url: z.string(),
  etag: z.string().optional(),
  lastModified: z.string().optional(),
  total: z.number().int().optional(),
});
export type PartInfo = z.output<typeof PartInfoSchema>;

export { downloadCancelled, isDownloadCancelled } from './download-cancelled.js';
