import { createHash } from 'node:crypto';
import { BrokerError } from '../../src/protocol/errors.js';
import type { TokenAccess } from '../../src/broker/token-access.js';
import type { FakeArtifactory } from '../fixtures/fake-artifactory.js';

/** Where the fake Artifactory publishes the official (public) and a restricted source. */
export const OFFICIAL_BASE = '/artifactory/swtools/external/ncd/apps/official';
export const RESTRICTED_BASE = '/artifactory/swtools/internal/ncd/apps/restricted';

export interface PublishedSource {
  base: string;
  sourcePath: string;
  sourceUrl: string;
  /** App name -> path of its app info document. */
  appInfoPaths: Map<string, string>;
  withdrawnPath: string;
}

export interface PublishOptions {
  name: string;
  /** App names listed in source.json. */
  apps: readonly string[];
  /** App names in withdrawn.json (listed or not); omitted = no withdrawn.json (404). */
  withdrawn?: readonly string[];
  versions?: readonly string[];
}

export function tarballBytes(app: string, version: string): Buffer {
  return Buffer.from(`tarball of ${app} ${version}\n`.repeat(50));
}

export function appInfoDocument(af: FakeArtifactory, base: string, app: string, versions: readonly string[] = ['1.0.0', '1.2.0']): Record<string, unknown> {
  return {
    name: app,
    displayName: `Display ${app}`,
    description: `The ${app} app`,
    homepage: 'https://example.com/app',
    iconUrl: af.url(`${base}/${app}.svg`),
    releaseNotesUrl: af.url(`${base}/${app}-Changelog.md`),
    latestVersion: versions[versions.length - 1],
    versions: Object.fromEntries(
      versions.map((version) => [
        version,
        {
          shasum: createHash('sha1').update(tarballBytes(app, version)).digest('hex'),
          publishTimestamp: '2025-06-01T10:00:00Z',
          tarballUrl: af.url(`${base}/${app}-${version}.tgz`),
        },
      ]),
    ),
  };
}

/** Publishes source.json, every app info (and withdrawn.json) on the fake Artifactory. */
export function publishSource(af: FakeArtifactory, base: string, options: PublishOptions): PublishedSource {
  const appInfoPaths = new Map<string, string>();
  const all = [...new Set([...options.apps, ...(options.withdrawn ?? [])])];
  for (const app of all) {
    const path = `${base}/${app}.json`;
    appInfoPaths.set(app, path);
    af.setJson(path, appInfoDocument(af, base, app, options.versions));
    for (const version of options.versions ?? ['1.0.0', '1.2.0']) af.setFile(`${base}/${app}-${version}.tgz`, tarballBytes(app, version));
  }
  const sourcePath = `${base}/source.json`;
  af.setJson(sourcePath, { name: options.name, description: `${options.name} apps`, apps: options.apps.map((app) => af.url(`${base}/${app}.json`)) });
  const withdrawnPath = `${base}/withdrawn.json`;
  if (options.withdrawn !== undefined) af.setJson(withdrawnPath, options.withdrawn.map((app) => af.url(`${base}/${app}.json`)));
  else af.removeFile(withdrawnPath);
  return { base, sourcePath, sourceUrl: af.url(sourcePath), appInfoPaths, withdrawnPath };
}

/** A TokenAccess the test controls: no token until `token` is set; a 401 makes it invalid, like the real one. */
export class TestTokenAccess implements TokenAccess {
  token: string | undefined;
  invalid = false;
  readonly rejections: { server: string; message: string }[] = [];

  tokenFor(server: string): string {
    if (this.invalid) throw new BrokerError('BROKER_TOKEN_INVALID', { message: `The server rejected the identity token for "${server}".`, details: { server } });
    if (this.token === undefined) throw new BrokerError('BROKER_TOKEN_MISSING', { message: `No identity token is set for "${server}".`, details: { server } });
    return this.token;
  }

  /** As the port promises: a 401 for a token replaced meanwhile changes nothing; a caller that omits the token fails. */
  rejected(server: string, message: string, usedToken?: string): void {
    if (usedToken === undefined) throw new Error('TokenAccess.rejected() needs the token the refused request carried');
    if (usedToken !== this.token) return;
    this.invalid = true;
    this.rejections.push({ server, message });
  }

  set(token: string): void {
    this.token = token;
    this.invalid = false;
  }
}
