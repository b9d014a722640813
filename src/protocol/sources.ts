import { z } from 'zod';

/**
 * App sources and the app index on the socket API (DESIGN sections 5 and 6): what the daemon
 * answers and what it accepts. The daemon and the client share these schemas.
 */

/** The official source's id: always `official`, whatever its source.json calls itself. */
export const OFFICIAL_SOURCE_ID = 'official';

/**
 * Source ids (DESIGN section 6) are one plain path segment, used in routes and state file names:
 * lower case a-z, 0-9, ".", "_", "-", starting and ending with a letter or digit.
 */
export const SOURCE_ID_PATTERN = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;

/** Display names as source.json gives them: 1-100 printable characters ("Release Test"). */
export const SOURCE_DISPLAY_NAME_PATTERN = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]{1,100}$/u;

/**
 * How a caller names a source: its id, or its exact display name (the CLI and DELETE accept both).
 * The daemon resolves it; here it is only bounded.
 */
export const SourceRefSchema = z.string().regex(SOURCE_DISPLAY_NAME_PATTERN, 'must be a source id or display name (1-100 printable characters)');

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
  /** The document it concerns (source.json, an app info, an icon), by canonical URL. */
  url: z.string().optional(),
  /** The field path inside that document, e.g. `versions.1.2.3.shasum`. */
  field: z.string().optional(),
  /** Upstream HTTP status, when the problem was an HTTP answer. */
  status: z.number().optional(),
  /** Whole seconds the server asked to wait (the same number as an envelope's `details.retryAfter`). */
  retryAfter: z.number().int().nonnegative().optional(),
  /**
   * True for something off in a document that was kept anyway (e.g. a `latestVersion` missing
   * from `versions`): listed after the errors, not counted in `errorCount`, never makes the source `failing`.
   */
  note: z.boolean().optional(),
});
export type SourceProblem = z.output<typeof SourceProblemSchema>;

export const SourceViewSchema = z.looseObject({
  /** The path segment used by every route, CLI command and state file (`official`, `release-test`). */
  id: z.string(),
  /** The display name from source.json ("Release Test"); the id until the document is known. */
  name: z.string(),
  description: z.string().optional(),
  url: z.string(),
  official: z.boolean(),
  /** True when the source's URL needs the identity token (token policy). */
  restricted: z.boolean(),
  /** True for a source on an origin that is no configured server: public, never the token. */
  thirdParty: z.boolean(),
  state: z.enum(SOURCE_STATES),
  /** Apps offered now (withdrawn ones not counted). */
  appCount: z.number().int(),
  /** Apps the previous source.json listed and the current one no longer does (kept, flagged). */
  withdrawnCount: z.number().int(),
  /** Last refresh in which every document was fetched (a 304 counts), ISO; null = never. */
  lastRefreshAt: z.string().nullable(),
  /** The first error of the last refresh attempt (never a note); null when it succeeded. */
  lastError: SourceProblemSchema.nullable(),
  /** Every problem of the last attempt, errors first, then notes (at most 20; `errorCount` has the total of errors). */
  problems: z.array(SourceProblemSchema),
  errorCount: z.number().int(),
  /** When the scheduler next refreshes this source, ISO; null when none is scheduled. */
  nextRefreshAt: z.string().nullable(),
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
  id: z.string(),
  name: z.string(),
  removed: z.boolean(),
});
export type SourceRemoved = z.output<typeof SourceRemovedSchema>;

/**
 * One version of an app, whole, as pc-nrfconnect-shared's `AppVersion` (ipc/MetaFiles.ts): a
 * desktop app can write its own app files from it. `shasum` (sha1 hex) is optional, as there.
 */
export const AppVersionSchema = z.looseObject({
  tarballUrl: z.string(),
  shasum: z.string().optional(),
  publishTimestamp: z.string().optional(),
  nrfutilModules: z.record(z.string(), z.array(z.string())).optional(),
  nrfutilCore: z.string().optional(),
});
export type AppVersion = z.output<typeof AppVersionSchema>;

/**
 * The real `AppInfo` shape (pc-nrfconnect-shared ipc/MetaFiles.ts), read as leniently as the
 * launcher reads it: `description` may be absent, `homepage` null or absent, `latestVersion`
 * missing from `versions`. Fields not named here are passed through as the publisher wrote them.
 */
export const AppInfoShape = {
  name: z.string(),
  displayName: z.string(),
  description: z.string().optional(),
  homepage: z.string().nullable().optional(),
  iconUrl: z.string(),
  releaseNotesUrl: z.string(),
  latestVersion: z.string(),
  versions: z.record(z.string(), AppVersionSchema),
  nrfutil: z.record(z.string(), z.array(z.string())).optional(),
  nrfutilCore: z.string().optional(),
};

/**
 * An app as `GET /v1/apps` answers it: the AppInfo whole (with every field the publisher added),
 * plus which source it is from and whether it is withdrawn (listed by the previous good
 * source.json, not by the current one). `source`, `withdrawn` and `withdrawnAt` are always the
 * daemon's: a document's own fields of those names never show through.
 */
export const AppViewSchema = z.looseObject({
  ...AppInfoShape,
  source: z.string(),
  withdrawn: z.boolean(),
  /** When it left source.json, ISO; present only while withdrawn. */
  withdrawnAt: z.string().optional(),
});
export type AppView = z.output<typeof AppViewSchema>;
export const AppListSchema = z.array(AppViewSchema);

/** `POST /v1/sources` answers like the launcher's add: the source and its apps. */
export const SourceAddedSchema = z.looseObject({
  source: SourceViewSchema,
  apps: AppListSchema,
});
export type SourceAdded = z.output<typeof SourceAddedSchema>;

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
  id: SourceRefSchema.optional(),
});

export const SourceParamsSchema = z.strictObject({
  id: SourceRefSchema,
});

export const AppsQuerySchema = z.strictObject({
  source: SourceRefSchema.optional(),
});

export const AppParamsSchema = z.strictObject({
  source: SourceRefSchema,
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
  /** sha1 hex from the app info document, when it has one; the download is verified against it. */
  shasum: z.string().optional(),
  /** The last segment of the canonical tarball URL, e.g. `pc-nrfconnect-ble-4.0.4.tgz`. */
  fileName: z.string(),
  withdrawn: z.boolean(),
});
export type AppTarball = z.output<typeof AppTarballSchema>;

/** `GET /v1/apps/:source/:name?version=`: the app info (same shape as in the list) and that version's tarball. */
export const AppDetailSchema = AppViewSchema.extend({ tarball: AppTarballSchema });
export type AppDetail = z.output<typeof AppDetailSchema>;
