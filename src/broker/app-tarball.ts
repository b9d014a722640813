import { BrokerError } from '../protocol/errors.js';
import type { AppTarball } from '../protocol/sources.js';
import { artifactFileName, isSafeFileName } from '../protocol/artifact-url.js';
import type { IndexedApp } from './app-views.js';

/**
 * Picks the version (the latest when none is asked for) and names the file it is saved as: the
 * tarball URL's canonical last segment (DESIGN section 4), when that is a plain file name, else `<name>-<version>.tgz`.
 */
export function resolveTarball(app: Pick<IndexedApp, 'source' | 'info' | 'withdrawn'>, version?: string): AppTarball {
  const chosen = version ?? app.info.latestVersion;
  const entry = Object.hasOwn(app.info.versions, chosen) ? app.info.versions[chosen] : undefined;
  if (entry === undefined) {
    const versions = Object.keys(app.info.versions);
    const known = versions.length === 0 ? 'none' : versions.slice(0, 20).join(', ') + (versions.length > 20 ? ', …' : '');
    const latestListed = Object.hasOwn(app.info.versions, app.info.latestVersion);
    throw new BrokerError('BROKER_NOT_FOUND', {
      // An app whose latestVersion is not among its versions is kept (as the launcher keeps it),
      // but "the latest" of it cannot be downloaded: the caller must name one that exists.
      message:
        version === undefined
          ? `${app.source}/${app.info.name} names latest version "${chosen.slice(0, 64)}", which its app info does not list; name a version (known versions: ${known}).`
          : `${app.source}/${app.info.name} has no version "${chosen.slice(0, 64)}" (known versions: ${known}).`,
      hint: latestListed ? `Known versions: ${known}. Omit the version for the latest (${app.info.latestVersion}).` : `Known versions: ${known}. Ask for one of them (${app.source}/${app.info.name}@VERSION).`,
      details: { name: app.info.name, versions: versions.slice(0, 100) },
    });
  }
  return {
    source: app.source,
    name: app.info.name,
    version: chosen,
    tarballUrl: entry.tarballUrl,
    shasum: entry.shasum,
    fileName: tarballFileName(entry.tarballUrl, app.info.name, chosen),
    withdrawn: app.withdrawn,
  };
}

export function tarballFileName(tarballUrl: string, name: string, version: string): string {
  // The canonical name: a download-API URL is named after its `path`, never `download`.
  const canonical = artifactFileName(tarballUrl);
  if (canonical !== undefined) return canonical;
  const fallback = `${name}-${version}.tgz`.replace(/[^A-Za-z0-9._+-]/g, '_');
  return isSafeFileName(fallback) ? fallback : 'app.tgz';
}
