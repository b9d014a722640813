import { z } from 'zod';

/**
 * `coreDumps` in `GET /v1/status`: the daemon's soft core-file limit in bytes (`null` where the
 * platform does not tell), with a warning unless it is 0 (a core file would hold the token).
 */
export const CoreDumpsStatusSchema = z.object({
  limit: z.union([z.number().int().nonnegative(), z.literal('unlimited'), z.null()]),
  warning: z.string().optional(),
});
export type CoreDumpsStatus = z.output<typeof CoreDumpsStatusSchema>;

/**
 * `GET /v1/status`. Later capabilities add sections (secret store, tokens, sources); the client
 * keeps unknown keys so an older client still shows what it understands.
 */
export const StatusSchema = z.looseObject({
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
  coreDumps: CoreDumpsStatusSchema.optional(),
});
export type Status = z.output<typeof StatusSchema>;
