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
});
export type StatusSections = z.output<typeof StatusSectionsSchema>;

export const StatusSchema = z.looseObject({
  ...ServerStatusSchema.shape,
  ...StatusSectionsSchema.shape,
});
export type Status = z.output<typeof StatusSchema>;
