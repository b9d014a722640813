import { z } from 'zod';

/**
 * App sources and the app index on the socket API (DESIGN sections 5 and 6): what the daemon
 * answers and what it accepts. The daemon and the client share these schemas.
 */

/** The official source is always present under this name, whatever its source.json says. */
export const OFFICIAL_SOURCE_NAME = 'official';

/**
 * Source names appear in URLs (`/v1/apps/:source/...`) and in state file names, so they are one
 * plain path segment: no "/", no ".." (the first character is a letter or digit), no spaces.
 * Unique without regard to case.
 */
export const SOURCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const SourceNameSchema = z.string().regex(SOURCE_NAME_PATTERN, 'must be 1-64 characters of A-Z, a-z, 0-9, ".", "_", "-", starting with a letter or digit');

/** App names: one path segment as well (npm scopes such as "@x/y" are not used by app sources). */
export const APP_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,213}$/;
export const AppNameSchema = z.string().regex(APP_NAME_PATTERN, 'must be 1-214 characters of A-Z, a-z, 0-9, ".", "_", "-", starting with a letter or digit');

export const SOURCE_STATES = ['ok', 'stale', 'failing', 'needs-token'] as const;
export type SourceState = (typeof SOURCE_STATES)[number];

/** One problem of the last refresh: which document, which field, what went wrong. */
export const SourceProblemSchema = z.looseObject({
  code: z.string(),
  message: z.string(),
  /** ISO time of the attempt that found it. */
  at: z.string(),
  /** The document it concerns (source.json, withdrawn.json or an app info URL). */
  url: z.string().optional(),
  /** The field path inside that document, e.g. `versions.1.2.3.shasum`. */
  field: z.string().optional(),
  /** Upstream HTTP status, when the problem was an HTTP answer. */
  status: z.number().optional(),
});
export type SourceProblem = z.output<typeof SourceProblemSchema>;

export const SourceViewSchema = z.looseObject({
  name: z.string(),
  url: z.string(),
  official: z.boolean(),
  /** True when the source's URL needs the identity token (token policy). */
  restricted: z.boolean(),
  state: z.enum(SOURCE_STATES),
  appCount: z.number().int(),
  /** Last refresh in which every document was fetched (a 304 counts), ISO; null = never. */
  lastRefreshAt: z.string().nullable(),
  /** The first problem of the last refresh attempt; null when it succeeded. */
  lastError: SourceProblemSchema.nullable(),
  /** Every problem of the last attempt (at most 20; `errorCount` has the total). */
  errors: z.array(SourceProblemSchema),
  errorCount: z.number().int(),
  /** When the scheduler next refreshes this source, ISO; null when none is scheduled. */
  nextRefreshAt: z.string().nullable(),
  description: z.string().optional(),
});
export type SourceView = z.output<typeof SourceViewSchema>;
export const SourceListSchema = z.array(SourceViewSchema);

export const REFRESH_OUTCOMES = ['updated', 'unchanged', 'failed', 'needs-token'] as const;
export type RefreshOutcome = (typeof REFRESH_OUTCOMES)[number];

/** `POST /v1/sources/refresh` answers one of these per refreshed source. */
export const SourceRefreshResultSchema = SourceViewSchema.extend({
  /** updated: new content; unchanged: every document answered 304 (or the same bytes). */
  outcome: z.enum(REFRESH_OUTCOMES),
});
export type SourceRefreshResult = z.output<typeof SourceRefreshResultSchema>;
export const SourceRefreshResultListSchema = z.array(SourceRefreshResultSchema);

export const SourceRemovedSchema = z.looseObject({
  name: z.string(),
  removed: z.boolean(),
});
export type SourceRemoved = z.output<typeof SourceRemovedSchema>;

export const AppViewSchema = z.looseObject({
  source: z.string(),
  name: z.string(),
  displayName: z.string(),
  description: z.string(),
  latestVersion: z.string(),
  /** Newest first. */
  versions: z.array(z.string()),
  /** Listed in the source's withdrawn.json: no longer offered for new installs. */
  withdrawn: z.boolean(),
  homepage: z.string().optional(),
  iconUrl: z.string().optional(),
  releaseNotesUrl: z.string().optional(),
});
export type AppView = z.output<typeof AppViewSchema>;
export const AppListSchema = z.array(AppViewSchema);

/** The `sources` section of `GET /v1/status`. */
export const SourcesStatusSchema = z.looseObject({
  count: z.number().int(),
  lastRefreshAt: z.string().nullable(),
  nextRefreshAt: z.string().nullable(),
  /** How many sources are failing (their last refresh attempt had errors). */
  failing: z.number().int(),
  failingSources: z.array(z.string()),
  needsToken: z.array(z.string()),
  /** Every source with its state, in list order. */
  items: z.array(z.looseObject({ id: z.string(), name: z.string(), state: z.enum(SOURCE_STATES) })),
});
export type SourcesStatus = z.output<typeof SourcesStatusSchema>;

// ---- request shapes ----

export const AddSourceBodySchema = z.strictObject({
  url: z.string({ error: 'must be the URL of a source.json' }).min(1, 'must be the URL of a source.json').max(8192, 'is longer than 8192 characters'),
});

export const RefreshSourcesBodySchema = z.strictObject({
  name: SourceNameSchema.optional(),
});

export const SourceParamsSchema = z.strictObject({
  name: SourceNameSchema,
});

export const AppsQuerySchema = z.strictObject({
  source: SourceNameSchema.optional(),
});

export const AppParamsSchema = z.strictObject({
  source: SourceNameSchema,
  name: AppNameSchema,
});

export const AppVersionQuerySchema = z.strictObject({
  version: z
    .string()
    .min(1, 'must be a version such as "4.0.4"')
    .max(256, 'is longer than 256 characters')
    .optional(),
});

/** One version's tarball of an app: where it is, what it must hash to, what to save it as. */
export const AppTarballSchema = z.looseObject({
  source: z.string(),
  name: z.string(),
  version: z.string(),
  tarballUrl: z.string(),
  /** sha1 hex from the app info document; the download is verified against it. */
  shasum: z.string(),
  /** The last segment of tarballUrl, e.g. `pc-nrfconnect-ble-4.0.4.tgz`. */
  fileName: z.string(),
  withdrawn: z.boolean(),
});
export type AppTarball = z.output<typeof AppTarballSchema>;

/** `GET /v1/apps/:source/:name?version=`: the app and the tarball of that (or the latest) version. */
export const AppDetailSchema = AppViewSchema.extend({ tarball: AppTarballSchema });
export type AppDetail = z.output<typeof AppDetailSchema>;
