import { z } from 'zod';

/** Event types sent on `GET /v1/events` (WebSocket), one JSON message each: `{type, at, ...}`. */
export const EVENT_TYPES = [
  'token.set',
  'token.removed',
  'token.invalid',
  'token.expiring',
  'token.expired',
  'sources.refreshed',
  'source.failed',
  'fetch.checksum-mismatch',
  'download.progress',
  'download.done',
  /** The config was changed (PATCH /v1/config or SIGHUP): which top-level keys, and which of them wait for a restart. Never values. */
  'config.changed',
  'daemon.stopping',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Unknown types are kept (a newer daemon may send more); `at` is an ISO timestamp. */
export const BrokerEventSchema = z.looseObject({
  type: z.string(),
  at: z.string(),
});
export type BrokerEvent = z.output<typeof BrokerEventSchema> & { type: EventType | (string & {}) };
