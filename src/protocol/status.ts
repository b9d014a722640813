import { z } from 'zod';
import { SourcesStatusSchema } from './sources.js';
import { SecretStoreStatusSchema, TokenViewSchema } from './token.js';

/**
 * `GET /v1/status`: the one schema the daemon's route returns, the client library parses and the
 * CLI prints. Objects are loose, so a client keeps (and `status --json` shows) sections a newer
 * daemon adds; optional sections are ones a daemon may not report on every platform.
 */

/** What the HTTP server knows about itself. */
export const ServerStatusSchema = z.looseObject({
  version: z.string(),
  pid: z.number().int(),
  uptimeSeconds: z.number(),
  startedAt: z.string(),
  socket: z.looseObject({
    path: z.string(),
    activated: z.boolean(),
  }),
  config: z.looseObject({
    path: z.string(),
  }),
  paths: z.looseObject({
    state: z.string(),
    cache: z.string(),
  }),
  /** One entry per configured server. */
  tokens: z.array(TokenViewSchema),
});

/** An extra listener (DESIGN section 8): its socket and octal mode, e.g. "0660". */
export const ListenerStatusSchema = z.looseObject({
  path: z.string(),
  mode: z.string(),
});
export type ListenerStatus = z.output<typeof ListenerStatusSchema>;

/**
 * `coreDumps` in `GET /v1/status`: the daemon's soft core-file limit in bytes (`null` where the
 * platform does not tell), with a warning unless it is 0 (a core file would hold the token).
 */
export const CoreDumpsStatusSchema = z.object({
  limit: z.union([z.number().int().nonnegative(), z.literal('unlimited'), z.null()]),
  warning: z.string().optional(),
});
export type CoreDumpsStatus = z.output<typeof CoreDumpsStatusSchema>;

export const CacheStatusSchema = z.looseObject({
  bytes: z.number(),
  entries: z.number().int(),
  maxBytes: z.number(),
});
export type CacheStatus = z.output<typeof CacheStatusSchema>;

/** The sections the daemon's services report (wired in the daemon's composition root). */
export const StatusSectionsSchema = z.looseObject({
  secretStore: SecretStoreStatusSchema,
  sources: SourcesStatusSchema,
  listeners: z.array(ListenerStatusSchema),
  clientTokens: z.looseObject({ count: z.number().int() }),
  cache: CacheStatusSchema,
  /** Reported where the platform has core-file limits (the hardening work wires it in main.ts). */
  coreDumps: CoreDumpsStatusSchema.optional(),
});
export type StatusSections = z.output<typeof StatusSectionsSchema>;

export const StatusSchema = z.looseObject({
  ...ServerStatusSchema.shape,
  ...StatusSectionsSchema.shape,
});
export type Status = z.output<typeof StatusSchema>;
