import { z } from 'zod';

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
});
export type Status = z.output<typeof StatusSchema>;
