import type { AppView } from '../protocol/sources.js';
import type { AppInfo } from './source-documents.js';
import type { AppEntry, SourceIndex } from './source-index.js';

/**
 * Read-only views of one source index as the API shows them: the AppInfo whole plus `source`,
 * `withdrawn`, `withdrawnAt`. Nothing here changes the index.
 */

export interface IndexedAppInfo {
  info: AppInfo;
  withdrawn: boolean;
  withdrawnAt?: number;
}

/** One app of one source's index, for downloads (`shasum` and `tarballUrl` per version). */
export interface IndexedApp extends IndexedAppInfo {
  source: string;
  official: boolean;
}

/** Every app with a good app info, one per app name; a listed one wins over a withdrawn one. */
export function indexedApps(index: SourceIndex): IndexedAppInfo[] {
  const listed = new Set(index.source?.apps ?? []);
  const byName = new Map<string, IndexedAppInfo>();
  for (const [url, entry] of Object.entries(index.apps)) {
    if (entry.info === undefined) continue;
    const candidate = indexedOf(entry, entry.info, !listed.has(url));
    const existing = byName.get(entry.info.name);
    if (existing === undefined || (existing.withdrawn && !candidate.withdrawn)) byName.set(entry.info.name, candidate);
  }
  return [...byName.values()].sort((a, b) => (a.info.name < b.info.name ? -1 : a.info.name > b.info.name ? 1 : 0));
}

function indexedOf(entry: AppEntry, info: AppInfo, withdrawn: boolean): IndexedAppInfo {
  return { info, withdrawn, ...(withdrawn && entry.withdrawnAt !== undefined ? { withdrawnAt: entry.withdrawnAt } : {}) };
}

export function appViews(sourceId: string, index: SourceIndex): AppView[] {
  return indexedApps(index).map((app) => toAppView(sourceId, app));
}

export function findApp(index: SourceIndex, appName: string): IndexedAppInfo | undefined {
  return indexedApps(index).find((app) => app.info.name === appName);
}

export function appCounts(index: SourceIndex): { appCount: number; withdrawnCount: number } {
  const apps = indexedApps(index);
  const withdrawnCount = apps.filter((app) => app.withdrawn).length;
  return { appCount: apps.length - withdrawnCount, withdrawnCount };
}

/** Fields the daemon adds to every app view; a document's own fields of these names never show through. */
const DAEMON_FIELDS: ReadonlySet<string> = new Set(['source', 'withdrawn', 'withdrawnAt']);

export function toAppView(source: string, app: IndexedAppInfo): AppView {
  const info = Object.fromEntries(Object.entries(app.info).filter(([key]) => !DAEMON_FIELDS.has(key))) as AppInfo;
  return {
    ...info,
    source,
    withdrawn: app.withdrawn,
    ...(app.withdrawnAt === undefined ? {} : { withdrawnAt: new Date(app.withdrawnAt).toISOString() }),
  };
}

/**
 * Every URL the index lists: app infos (listed and withdrawn), their tarballs, icons and release
 * notes. For a third-party source these are the only URLs on its origin the daemon fetches.
 */
export function listedUrls(index: SourceIndex): string[] {
  const urls = [...(index.source?.apps ?? [])];
  for (const [url, entry] of Object.entries(index.apps)) {
    urls.push(url);
    if (entry.info === undefined) continue;
    urls.push(entry.info.iconUrl, entry.info.releaseNotesUrl);
    for (const version of Object.values(entry.info.versions)) urls.push(version.tarballUrl);
  }
  return urls;
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
