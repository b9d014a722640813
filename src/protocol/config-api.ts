import { z } from 'zod';

/**
 * Settings at run time (DESIGN section 3): `GET /v1/config` and `PATCH /v1/config`, owner socket
 * only (config may hold proxy credentials). Shared by the daemon and the client; pure.
 */

/** The media type of an RFC 7396 JSON merge patch; `application/json` is accepted too. */
export const MERGE_PATCH_CONTENT_TYPE = 'application/merge-patch+json';

/**
 * Top-level keys that only a restart applies: the upstream connection settings (the agent is
 * built once), the extra listeners (opened at start) and the secret store (chosen at start).
 * Everything else applies at once, as on SIGHUP.
 */
export const RESTART_ONLY_KEYS = ['proxy', 'caFile', 'timeouts', 'listeners', 'secretStore'] as const;

export const ConfigViewSchema = z.looseObject({
  /** The config file's path. */
  path: z.string(),
  /** Whether the file exists (no file = every default). */
  exists: z.boolean(),
  /**
   * The file's own content, as written (only the keys it sets); `{}` without a file. A merge
   * patch applies to this, never to `effective`. null when the file is not valid JSON (`fileError` says why).
   */
  file: z.record(z.string(), z.unknown()).nullable(),
  fileError: z.string().optional(),
  /** The config the daemon runs with: the file's keys with every default filled in. */
  effective: z.record(z.string(), z.unknown()),
  /** The file's ETag; send it back in `If-Match` with PATCH. Also the response's ETag header. */
  etag: z.string(),
  /**
   * Top-level keys whose value in the file differs from what the running daemon uses and that
   * only a restart applies (from RESTART_ONLY_KEYS); empty when everything is applied.
   */
  restartRequired: z.array(z.string()),
});
export type ConfigView = z.output<typeof ConfigViewSchema>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * RFC 7396 JSON merge patch: objects merge key by key, `null` removes a key, anything else
 * (arrays included: `servers` is replaced whole) replaces the target's value. Builds new objects;
 * neither argument is changed. Keys are defined as own data properties, so `__proto__` in a
 * patch is an ordinary (and, for config, unknown) key, never a prototype.
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const result: Record<string, unknown> = {};
  if (isPlainObject(target)) for (const [key, value] of Object.entries(target)) define(result, key, value);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else define(result, key, applyMergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value));
  }
  return result;
}

function define(object: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}
