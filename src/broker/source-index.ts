import { z } from 'zod';
import type { AppView, SourceProblem } from '../protocol/sources.js';
import { AppInfoSchema, SourceJsonSchema, type AppInfo, type SourceJson } from './source-documents.js';

/**
 * What the daemon keeps of one source between refreshes and restarts: the last good copy of every
 * document with the ETag it came with, and the problems of the last attempt. Persisted atomically
 * as one state document per source, so a crash leaves the previous index or the new one, whole.
 */

export const INDEX_VERSION = 1;
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
});
export type ProblemRecord = z.output<typeof ProblemRecordSchema>;

const AppEntrySchema = z.object({
  etag: z.string().optional(),
  /** The last good copy; absent when this document never validated. */
  info: AppInfoSchema.optional(),
});
export type AppEntry = z.output<typeof AppEntrySchema>;

export const SourceIndexSchema = z.object({
  version: z.literal(INDEX_VERSION),
  url: z.string(),
  source: SourceJsonSchema.optional(),
  sourceEtag: z.string().optional(),
  withdrawn: z.array(z.string()).default([]),
  withdrawnEtag: z.string().optional(),
  /** Keyed by app info URL, as listed in source.json / withdrawn.json. */
  apps: z.record(z.string(), AppEntrySchema).default({}),
  lastRefreshAt: z.number().optional(),
  lastAttemptAt: z.number().optional(),
  problems: z.array(ProblemRecordSchema).default([]),
  problemCount: z.number().int().default(0),
});
export type SourceIndex = z.output<typeof SourceIndexSchema>;

export function emptyIndex(url: string): SourceIndex {
  return { version: INDEX_VERSION, url, withdrawn: [], apps: {}, problems: [], problemCount: 0 };
}

/** State document holding one source's index. Names are unique without regard to case. */
export function indexDocumentName(sourceName: string): string {
  return `indexes/${sourceName.toLowerCase()}.json`;
}

/** App info URLs the index lists: source.json's apps, then withdrawn ones it no longer lists. */
export function listedAppUrls(index: SourceIndex): string[] {
  const urls = [...(index.source?.apps ?? [])];
  const seen = new Set(urls);
  for (const url of index.withdrawn) {
    if (!seen.has(url)) {
      seen.add(url);
      urls.push(url);
    }
  }
  return urls;
}

/** The apps of one source as the API shows them, sorted by name; one entry per app name. */
export function appViews(sourceName: string, index: SourceIndex): AppView[] {
  const withdrawn = new Set(index.withdrawn);
  const byName = new Map<string, AppView>();
  for (const url of listedAppUrls(index)) {
    const info = index.apps[url]?.info;
    if (info === undefined) continue;
    const view = toAppView(sourceName, info, withdrawn.has(url));
    const existing = byName.get(info.name);
    // Two documents for the same app name: the one still offered wins over a withdrawn one.
    if (existing === undefined || (existing.withdrawn && !view.withdrawn)) byName.set(info.name, view);
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The app info of `appName` in this index, preferring one that is not withdrawn. */
export function findApp(index: SourceIndex, appName: string): { info: AppInfo; withdrawn: boolean } | undefined {
  const withdrawn = new Set(index.withdrawn);
  let found: { info: AppInfo; withdrawn: boolean } | undefined;
  for (const url of listedAppUrls(index)) {
    const info = index.apps[url]?.info;
    if (info?.name !== appName) continue;
    const candidate = { info, withdrawn: withdrawn.has(url) };
    if (found === undefined || (found.withdrawn && !candidate.withdrawn)) found = candidate;
  }
  return found;
}

export function toAppView(source: string, info: AppInfo, withdrawn: boolean): AppView {
  return {
    source,
    name: info.name,
    displayName: info.displayName,
    description: info.description,
    latestVersion: info.latestVersion,
    versions: Object.keys(info.versions).sort((a, b) => compareVersions(b, a)),
    withdrawn,
    ...(info.homepage === undefined ? {} : { homepage: info.homepage }),
    iconUrl: info.iconUrl,
    releaseNotesUrl: info.releaseNotesUrl,
  };
}

/** Semver-like order: numeric parts numerically, a pre-release before its release, else text order. */
export function compareVersions(a: string, b: string): number {
  const [mainA = '', preA] = splitOnce(a.split('+')[0] ?? '', '-');
  const [mainB = '', preB] = splitOnce(b.split('+')[0] ?? '', '-');
  const partsA = mainA.split('.');
  const partsB = mainB.split('.');
  for (let i = 0; i < Math.max(partsA.length, partsB.length); i++) {
    const diff = comparePart(partsA[i] ?? '0', partsB[i] ?? '0');
    if (diff !== 0) return diff;
  }
  if (preA === undefined && preB !== undefined) return 1;
  if (preA !== undefined && preB === undefined) return -1;
  if (preA !== undefined && preB !== undefined) {
    const idsA = preA.split('.');
    const idsB = preB.split('.');
    for (let i = 0; i < Math.max(idsA.length, idsB.length); i++) {
      if (idsA[i] === undefined) return -1;
      if (idsB[i] === undefined) return 1;
      const diff = comparePart(idsA[i] as string, idsB[i] as string);
      if (diff !== 0) return diff;
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function splitOnce(value: string, separator: string): [string, string | undefined] {
  const at = value.indexOf(separator);
  return at === -1 ? [value, undefined] : [value.slice(0, at), value.slice(at + 1)];
}

function comparePart(a: string, b: string): number {
  const numeric = /^\d+$/;
  if (numeric.test(a) && numeric.test(b)) return Number(a) - Number(b);
  if (numeric.test(a)) return -1;
  if (numeric.test(b)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function toProblemView(problem: ProblemRecord): SourceProblem {
  return { ...problem, at: new Date(problem.at).toISOString() };
}

export type { SourceJson };
