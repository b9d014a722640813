import { z } from 'zod';
import { AppNameSchema, OFFICIAL_SOURCE_ID, SOURCE_DISPLAY_NAME_PATTERN } from '../protocol/sources.js';
import { describeIssue, formatPath } from '../protocol/zod-issues.js';

/**
 * The upstream documents of an app source as nRF Connect for Desktop publishes them
 * (pc-nrfconnect-shared `ipc/MetaFiles.ts`; DESIGN section 6), validated before anything of them
 * is kept. Known fields must have the right shape; the rest is read as leniently as the launcher
 * reads it (`homepage` null or absent, `description` absent, a `latestVersion` missing from
 * `versions`), and fields the contract does not name are kept and passed through, top level and per
 * version, so a field Nordic adds tomorrow reaches apps without an update of tokenbroker.
 */

/** Caps: a bigger document is refused (and the last good copy kept) without being buffered whole. */
export const SOURCE_JSON_MAX_BYTES = 4 * 1024 * 1024;
export const APP_INFO_MAX_BYTES = 1024 * 1024;
/** Icons and release notes kept beside the index. */
export const APP_ASSET_MAX_BYTES = 1024 * 1024;
/**
 * The fields of one app info that the contract does not name (top level and every version
 * together, as serialized JSON) are kept up to this size; beyond it they are dropped, the named
 * fields kept, and a note says so. With the 1 MiB document cap this bounds what an index keeps
 * of data nobody validated: a few KiB is what a real app info carries in total.
 */
export const APP_INFO_EXTRA_FIELDS_MAX_BYTES = 64 * 1024;
/** More app info URLs than this in one source is not a source anyone publishes. */
export const MAX_APPS_PER_SOURCE = 5000;

const documentUrl = z.string().min(1, 'must be a URL').max(8192, 'is longer than 8192 characters');

export const SourceJsonSchema = z.object({
  name: z.string().regex(SOURCE_DISPLAY_NAME_PATTERN, 'must be 1-100 printable characters').refine((name) => name.trim() !== '', 'must not be blank'),
  description: z.string().max(16_384).optional(),
  apps: z.array(documentUrl).max(MAX_APPS_PER_SOURCE, `must list at most ${MAX_APPS_PER_SOURCE} apps`),
});
export type SourceJson = z.output<typeof SourceJsonSchema>;

const nrfutilModules = z.record(z.string().max(256), z.array(z.string().max(256)).max(100)).refine((modules) => Object.keys(modules).length <= 100, 'lists more than 100 modules');

const AppVersionDocumentSchema = z.looseObject({
  tarballUrl: documentUrl,
  /** Optional, as in the real `AppVersion`: the launcher then installs without a check. */
  shasum: z
    .string()
    .regex(/^[0-9a-fA-F]{40}$/, 'must be the 40-character hex sha1 of the tarball')
    .transform((value) => value.toLowerCase())
    .optional(),
  publishTimestamp: z.string().max(64).optional(),
  nrfutilModules: nrfutilModules.optional(),
  nrfutilCore: z.string().max(256).optional(),
});

/**
 * Named fields are checked; others pass through (looseObject). A `latestVersion` missing from
 * `versions` is kept (the launcher shows such an app): `appInfoNotes` notes it, and a download
 * without a version is refused with the known versions listed.
 */
export const AppInfoSchema = z.looseObject({
  name: AppNameSchema,
  displayName: z.string().max(256),
  description: z.string().max(16_384).optional(),
  homepage: z.string().max(8192).nullable().optional(),
  iconUrl: z.string().max(8192),
  releaseNotesUrl: z.string().max(8192),
  latestVersion: z.string().min(1).max(256),
  versions: z.record(z.string().min(1).max(256), AppVersionDocumentSchema),
  nrfutil: nrfutilModules.optional(),
  nrfutilCore: z.string().max(256).optional(),
});
export type AppInfo = z.output<typeof AppInfoSchema>;

const NAMED_APP_FIELDS: ReadonlySet<string> = new Set(Object.keys(AppInfoSchema.shape));
const NAMED_VERSION_FIELDS: ReadonlySet<string> = new Set(Object.keys(AppVersionDocumentSchema.shape));

/** Serialized size of the fields the contract does not name (top level and every version). */
export function extraFieldsBytes(info: AppInfo): number {
  let bytes = 0;
  const count = (record: object, named: ReadonlySet<string>): void => {
    for (const [key, value] of Object.entries(record)) {
      if (!named.has(key)) bytes += Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(value) ?? '') + 2;
    }
  };
  count(info, NAMED_APP_FIELDS);
  for (const version of Object.values(info.versions)) count(version, NAMED_VERSION_FIELDS);
  return bytes;
}

/** The app info with only the fields the contract names (when its other fields are over the cap). */
export function withoutExtraFields(info: AppInfo): AppInfo {
  const pick = <T extends object>(record: T, named: ReadonlySet<string>): T => Object.fromEntries(Object.entries(record).filter(([key]) => named.has(key))) as T;
  const versions = Object.fromEntries(Object.entries(info.versions).map(([version, entry]) => [version, pick(entry, NAMED_VERSION_FIELDS)]));
  return { ...pick(info, NAMED_APP_FIELDS), versions };
}

/**
 * What is off in an app info that is kept anyway (DESIGN section 6): each note becomes a source
 * problem marked `note`, which does not make the source failing.
 */
export function appInfoNotes(info: AppInfo): { message: string; field: string }[] {
  const notes: { message: string; field: string }[] = [];
  if (!Object.hasOwn(info.versions, info.latestVersion)) {
    const known = Object.keys(info.versions);
    notes.push({
      field: 'latestVersion',
      message: `latestVersion "${info.latestVersion.slice(0, 64)}" is not in "versions" (${known.length === 0 ? 'none listed' : `known: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''}`}); the app is kept, and a download must name its version.`,
    });
  }
  return notes;
}

export type ParsedDocument<T> = { ok: true; value: T } | { ok: false; message: string; field?: string };

/** JSON text -> validated document, or one sentence naming the field path that is wrong. */
export function parseDocument<S extends z.ZodType>(text: string, schema: S, what: string): ParsedDocument<z.output<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Not the parser's message: V8 quotes a piece of the input, which a reflecting upstream can
    // fill with part of the token (and a cut of it is no longer recognisable as the token).
    return { ok: false, message: `${what} is not valid JSON.` };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const field = issue === undefined ? '' : formatPath(issue.path);
  return { ok: false, message: `${what} is not valid: ${describeIssue(issue)}.`, ...(field === '' ? {} : { field }) };
}

/**
 * A source's id from its display name (DESIGN section 6): lower case, every run of characters
 * outside a-z 0-9 . _ - becomes "-", trimmed to start and end with a letter or digit, at most 64
 * characters; `-2`, `-3`… when taken. `official` is always taken (the official source's id).
 */
export function sourceIdFor(displayName: string, taken: (id: string) => boolean): string {
  const base =
    displayName
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .slice(0, 64)
      .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'source';
  const isTaken = (id: string): boolean => id === OFFICIAL_SOURCE_ID || taken(id);
  if (!isTaken(base)) return base;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const id = `${base.slice(0, 64 - suffix.length).replace(/[^a-z0-9]+$/, '')}${suffix}`;
    if (!isTaken(id)) return id;
  }
}

