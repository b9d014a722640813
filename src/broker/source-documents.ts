import { z } from 'zod';
import { AppNameSchema, SOURCE_NAME_PATTERN } from '../protocol/sources.js';
import { describeIssue, formatPath } from '../protocol/zod-issues.js';

/**
 * The upstream documents of an app source (DESIGN section 6), validated before anything of them
 * is kept. Unknown fields are ignored (publishers add fields); known ones must have the right shape.
 */

/** Caps: a bigger document is refused (and the last good copy kept) without being buffered whole. */
export const SOURCE_JSON_MAX_BYTES = 4 * 1024 * 1024;
export const APP_INFO_MAX_BYTES = 1024 * 1024;
export const WITHDRAWN_JSON_MAX_BYTES = 1024 * 1024;
/** More app info URLs than this in one source is not a source anyone publishes. */
export const MAX_APPS_PER_SOURCE = 5000;

const documentUrl = z.string().min(1, 'must be a URL').max(8192, 'is longer than 8192 characters');

export const SourceJsonSchema = z.object({
  name: z.string().regex(SOURCE_NAME_PATTERN, 'must be 1-64 characters of A-Z, a-z, 0-9, ".", "_", "-", starting with a letter or digit'),
  description: z.string().max(16_384).optional(),
  apps: z.array(documentUrl).max(MAX_APPS_PER_SOURCE, `must list at most ${MAX_APPS_PER_SOURCE} apps`),
});
export type SourceJson = z.output<typeof SourceJsonSchema>;

export const WithdrawnJsonSchema = z.array(documentUrl).max(MAX_APPS_PER_SOURCE, `must list at most ${MAX_APPS_PER_SOURCE} apps`);

const AppVersionSchema = z.object({
  shasum: z
    .string()
    .regex(/^[0-9a-fA-F]{40}$/, 'must be the 40-character hex sha1 of the tarball')
    .transform((value) => value.toLowerCase()),
  publishTimestamp: z.union([z.string().max(64), z.number()]).optional(),
  tarballUrl: documentUrl,
});

export const AppInfoSchema = z
  .object({
    name: AppNameSchema,
    displayName: z.string().max(256),
    description: z.string().max(16_384),
    homepage: z.string().max(8192).optional(),
    iconUrl: z.string().max(8192),
    releaseNotesUrl: z.string().max(8192),
    latestVersion: z.string().min(1).max(256),
    versions: z.record(z.string().min(1).max(256), AppVersionSchema),
  })
  .superRefine((info, ctx) => {
    if (!Object.hasOwn(info.versions, info.latestVersion)) {
      ctx.addIssue({ code: 'custom', path: ['latestVersion'], message: `names version "${info.latestVersion.slice(0, 64)}", which is not in "versions"` });
    }
  });
export type AppInfo = z.output<typeof AppInfoSchema>;

export type ParsedDocument<T> = { ok: true; value: T } | { ok: false; message: string; field?: string };

/** JSON text -> validated document, or one sentence naming the field path that is wrong. */
export function parseDocument<S extends z.ZodType>(text: string, schema: S, what: string): ParsedDocument<z.output<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `${what} is not valid JSON (${err instanceof Error ? err.message.slice(0, 200) : 'parse error'}).` };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const field = issue === undefined ? '' : formatPath(issue.path);
  return { ok: false, message: `${what} is not valid: ${describeIssue(issue)}.`, ...(field === '' ? {} : { field }) };
}
