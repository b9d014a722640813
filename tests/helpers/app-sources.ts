import { createHash } from 'node:crypto';
import type { AppView } from '../../src/protocol/sources.js';
import type { FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { waitUntil } from './wait-for.js';

/** Where the fake Artifactory publishes the official (public) and a restricted source. */
export const OFFICIAL_BASE = '/artifactory/swtools/external/ncd/apps/official';
export const RESTRICTED_BASE = '/artifactory/swtools/internal/ncd/apps/restricted';

export interface PublishedSource {
  base: string;
  sourcePath: string;
  /** The URL of source.json in the requested form. */
  sourceUrl: string;
  /** App name -> artifact path of its app info document. */
  appInfoPaths: Map<string, string>;
  /** Artifact path -> the URL source.json lists for it (in the requested form). */
  urlOf(path: string): string;
}

/**
 * How documents name each other. `download-api` is what nRF Connect for Desktop's publishing
 * (pc-nrfconnect-shared scripts/nordic-publish.ts) writes into every source.json and app info:
 * `/ui/api/v1/download?isNativeBrowsing=false&repoKey=R&path=P`. `artifact` is `/artifactory/R/P`.
 * Acceptance tests publish in the download-API form, as real sources are; unit tests mostly in the artifact form.
 */
export type UrlForm = 'artifact' | 'download-api';

export interface PublishOptions {
  /** The display name in source.json, e.g. "Release Test". */
  name: string;
  /** App names listed in source.json. */
  apps: readonly string[];
  /** Apps whose documents exist (e.g. withdrawn ones still published) but are not listed. */
  unlisted?: readonly string[];
  versions?: readonly string[];
  /** Versions published without `shasum` (optional in the real AppVersion). */
  withoutShasum?: readonly string[];
  form?: UrlForm;
}

/** The URL of an `/artifactory/R/P` artifact in the given form. */
export function formUrl(af: FakeArtifactory, artifactPath: string, form: UrlForm = 'artifact'): string {
  if (form === 'artifact') return af.url(artifactPath);
  const match = /^\/artifactory\/([^/]+)\/(.+)$/.exec(artifactPath);
  if (match === null) throw new Error(`not an artifact path: ${artifactPath}`);
  return af.url(`/ui/api/v1/download?isNativeBrowsing=false&repoKey=${encodeURIComponent(match[1] ?? '')}&path=${encodeURIComponent(match[2] ?? '')}`);
}

export function tarballBytes(app: string, version: string): Buffer {
  return Buffer.from(`tarball of ${app} ${version}\n`.repeat(50));
}

export const ICON_BYTES = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
export function releaseNotes(app: string): string {
  return `## ${app}\n\n- Everything is better now.\n`;
}

/** An app info in the real AppInfo shape (pc-nrfconnect-shared ipc/MetaFiles.ts), every per-version field set. */
export function appInfoDocument(af: FakeArtifactory, base: string, app: string, versions: readonly string[] = ['1.0.0', '1.2.0'], options: { form?: UrlForm; withoutShasum?: readonly string[] } = {}): Record<string, unknown> {
  const url = (path: string): string => formUrl(af, path, options.form);
  return {
    name: app,
    displayName: `Display ${app}`,
    description: `The ${app} app`,
    homepage: 'https://example.com/app',
    iconUrl: url(`${base}/${app}.png`),
    releaseNotesUrl: url(`${base}/${app}-Changelog.md`),
    latestVersion: versions[versions.length - 1],
    versions: Object.fromEntries(
      versions.map((version) => [
        version,
        {
          tarballUrl: url(`${base}/${app}-${version}.tgz`),
          ...(options.withoutShasum?.includes(version) === true ? {} : { shasum: createHash('sha1').update(tarballBytes(app, version)).digest('hex') }),
          publishTimestamp: '2025-06-01T10:00:00Z',
          nrfutilModules: { device: ['2.7.16'] },
          nrfutilCore: '7.13.0',
          // A field the contract does not name: passed through as published.
          someFutureField: 'kept',
        },
      ]),
    ),
    someFutureField: { kept: true },
  };
}

/** Publishes source.json, every app info, tarball, icon and release notes on the fake Artifactory. */
export function publishSource(af: FakeArtifactory, base: string, options: PublishOptions): PublishedSource {
  const appInfoPaths = new Map<string, string>();
  const versions = options.versions ?? ['1.0.0', '1.2.0'];
  const urlOf = (path: string): string => formUrl(af, path, options.form);
  for (const app of [...new Set([...options.apps, ...(options.unlisted ?? [])])]) {
    const path = `${base}/${app}.json`;
    appInfoPaths.set(app, path);
    af.setJson(path, appInfoDocument(af, base, app, versions, { ...(options.form === undefined ? {} : { form: options.form }), ...(options.withoutShasum === undefined ? {} : { withoutShasum: options.withoutShasum }) }));
    for (const version of versions) af.setFile(`${base}/${app}-${version}.tgz`, tarballBytes(app, version));
    af.setFile(`${base}/${app}.png`, ICON_BYTES);
    af.setFile(`${base}/${app}-Changelog.md`, releaseNotes(app));
  }
  const sourcePath = `${base}/source.json`;
  af.setJson(sourcePath, { name: options.name, description: `${options.name} apps`, apps: options.apps.map((app) => urlOf(`${base}/${app}.json`)) });
  return { base, sourcePath, sourceUrl: urlOf(sourcePath), appInfoPaths, urlOf };
}

/** Lists exactly `apps` in a published source.json (the documents stay published). */
export function listApps(af: FakeArtifactory, source: PublishedSource, name: string, apps: readonly string[]): void {
  af.setJson(source.sourcePath, { name, description: `${name} apps`, apps: apps.map((app) => source.urlOf(`${source.base}/${app}.json`)) });
}


/** Waits until the daemon lists at least `count` apps (of `source`, or of all): its first refresh runs after start-up. */
export async function appsListed(client: { apps(options?: { source?: string }): Promise<AppView[]> }, count: number, source?: string): Promise<void> {
  await waitUntil(`${count} apps${source === undefined ? '' : ` from ${source}`}`, async () => (await client.apps(source === undefined ? {} : { source })).length >= count);
}
