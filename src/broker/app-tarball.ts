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
    const known = Object.keys(app.info.versions).slice(0, 20).join(', ');
    throw new BrokerError('BROKER_NOT_FOUND', {
      message: `${app.source}/${app.info.name} has no version "${chosen.slice(0, 64)}".`,
      hint: `Known versions: ${known}. Omit the version for the latest (${app.info.latestVersion}).`,
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
