import { z } from 'zod';
import type { SourceProblem } from '../protocol/sources.js';
import { AppInfoSchema, SourceJsonSchema } from './source-documents.js';

/**
 * What the daemon keeps of one source between refreshes and restarts: the last good copy of every
 * document with the ETag it came with, withdrawn apps (computed locally, as the launcher does),
 * and the problems of the last attempt. Persisted atomically as one state document per source id,
 * so a crash leaves the previous index or the new one, whole.
 */

export const INDEX_VERSION = 2;
/** Problems kept per source (the total is counted): enough to diagnose, bounded in size. */
export const MAX_PROBLEMS = 20;

const ProblemRecordSchema = z.object({
  code: z.string(),
  message: z.string(),
  at: z.number(),
  url: z.string().optional(),
  field: z.string().optional(),
  status: z.number().optional(),
  retryAfter: z.number().int().nonnegative().optional(),
  /** Something off in a document that was kept anyway: listed, but not counted, never `failing`. */
  note: z.literal(true).optional(),
});
export type ProblemRecord = z.output<typeof ProblemRecordSchema>;

const AppEntrySchema = z.object({
  etag: z.string().optional(),
  /** The last good copy; absent when this document never validated. */
  info: AppInfoSchema.optional(),
  /** Set while the app is withdrawn: when it left source.json (ms). */
  withdrawnAt: z.number().optional(),
  /**
   * `assetsKey(info)` of the app info whose icon and release notes are stored; a different key
   * (the app info changed, or they were never fetched) means fetch them again.
   */
  assets: z.string().optional(),
  /** Bytes of fields the contract does not name that were over the cap and dropped from `info`. */
  extraFieldsDropped: z.number().int().optional(),
});
export type AppEntry = z.output<typeof AppEntrySchema>;

/**
 * Version 1 (tokenbroker 0.1) had the same shape plus a `withdrawn` list read from withdrawn.json;
 * it is read as version 2 (that list is dropped: withdrawn is computed from source.json now).
 */
export const SourceIndexSchema = z.object({
  version: z.union([z.literal(1), z.literal(INDEX_VERSION)]).transform((): typeof INDEX_VERSION => INDEX_VERSION),
  url: z.string(),
  source: SourceJsonSchema.optional(),
  sourceEtag: z.string().optional(),
  /** Keyed by app info URL as source.json lists it; withdrawn apps stay here until listed again. */
  apps: z.record(z.string(), AppEntrySchema).default({}),
  lastRefreshAt: z.number().optional(),
  lastAttemptAt: z.number().optional(),
  problems: z.array(ProblemRecordSchema).default([]),
  problemCount: z.number().int().default(0),
});
export type SourceIndex = z.output<typeof SourceIndexSchema>;

export function emptyIndex(url: string): SourceIndex {
  return { version: INDEX_VERSION, url, apps: {}, problems: [], problemCount: 0 };
}

/** State document holding one source's index. */
export function indexDocumentName(sourceId: string): string {
  return `indexes/${sourceId}.json`;
}

/** 0.1 stored indexes under the lower-cased source name. */
export function legacyIndexDocumentName(sourceName: string): string | undefined {
  const name = `indexes/${sourceName.toLowerCase()}.json`;
  return /^indexes\/[a-z0-9][a-z0-9._-]{0,63}\.json$/.test(name) ? name : undefined;
}

export function toProblemView(problem: ProblemRecord): SourceProblem {
  return { ...problem, at: new Date(problem.at).toISOString() };
}
