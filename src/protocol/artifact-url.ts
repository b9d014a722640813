/**
 * The names of an artifact URL without a policy, shared by the daemon, the client and the CLI:
 * the canonical artifact of a download-API URL (`origin/ui/api/v1/download?repoKey=R&path=P`) is
 * `origin/artifactory/R/P`, of any other URL its origin and path. The token policy
 * (src/broker/policy.ts) computes the full canonical URL it sends; these are the pure, total
 * helpers for names and messages, so every layer names an artifact the same way.
 */

/** Artifactory's UI download API: one `repoKey` and one `path` name the artifact. */
export const DOWNLOAD_API_PATH = '/ui/api/v1/download';

/** What a saved file may be called: no path separators, no dot names, no control characters. */
const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/;

/** True when `name` may be used as a file name as it is. */
export function isSafeFileName(name: string): boolean {
  return SAFE_FILE_NAME.test(name);
}

function parse(rawUrl: string): URL | undefined {
  try {
    return new URL(rawUrl);
  } catch {
    return undefined;
  }
}

/** True for the download-API path (a trailing slash is the same endpoint). */
function isDownloadApi(url: URL): boolean {
  return url.pathname === DOWNLOAD_API_PATH || url.pathname === `${DOWNLOAD_API_PATH}/`;
}

/** repoKey and path of a download-API URL with exactly one of each; undefined otherwise. */
function downloadApiParts(url: URL): { repoKey: string; path: string } | undefined {
  const repoKeys = url.searchParams.getAll('repoKey');
  const paths = url.searchParams.getAll('path');
  if (repoKeys.length !== 1 || paths.length !== 1) return undefined;
  return { repoKey: repoKeys[0] as string, path: paths[0] as string };
}

/**
 * The URL a message or a log line names: the canonical artifact URL (`origin/artifactory/R/P`)
 * for the download-API form, else origin and path; never userinfo or a query (signed URLs carry
 * credentials there).
 */
export function describeArtifactUrl(rawUrl: string): string {
  const url = parse(rawUrl);
  if (url === undefined) return '(invalid URL)';
  const parts = isDownloadApi(url) ? downloadApiParts(url) : undefined;
  if (parts !== undefined) return `${url.origin}/artifactory/${parts.repoKey}/${parts.path.replace(/^\/+/, '')}`;
  return `${url.origin}${url.pathname}`;
}

/**
 * The last segment of the canonical artifact path, decoded: for the download-API form the last
 * segment of `path` (percent-decoded once by URLSearchParams, as Artifactory does), else of the
 * URL's path. Undefined when there is none: an empty, "." or ".." segment, an encoded "/" or "\\",
 * a bad escape, a download-API URL without exactly one repoKey and one path, or no URL at all.
 */
export function lastArtifactSegment(rawUrl: string): string | undefined {
  const url = parse(rawUrl);
  if (url === undefined) return undefined;
  let segments: string[];
  if (isDownloadApi(url)) {
    const parts = downloadApiParts(url);
    if (parts === undefined) return undefined;
    segments = parts.path.split('/');
  } else {
    try {
      segments = url.pathname.split('/').map((segment) => decodeURIComponent(segment));
    } catch {
      return undefined;
    }
  }
  const last = segments.pop();
  if (last === undefined || last === '' || last === '.' || last === '..' || /[/\\]/.test(last)) return undefined;
  return last;
}

/**
 * The file name a download of `url` is saved under: its last canonical segment when that is a
 * plain file name (letters, digits, `._+-`), else undefined (the caller picks a fallback).
 */
export function artifactFileName(rawUrl: string): string | undefined {
  const last = lastArtifactSegment(rawUrl);
  return last !== undefined && isSafeFileName(last) ? last : undefined;
}
