import { isLoopbackHost } from '../protocol/config-schema.js';
import type { ServerConfig } from '../protocol/config-schema.js';
import { DOWNLOAD_API_PATH, lastArtifactSegment } from '../protocol/artifact-url.js';

/**
 * Token policy (DESIGN section 4), the core security promise: which URLs the daemon fetches at all
 * (only those under a configured server's prefixes; it is not an open proxy), which of them get
 * `Authorization: Bearer <token>`, and where redirects may lead.
 *
 * Every decision is made on the canonical URL, which is also the URL the caller must request, so
 * the server sees exactly what was judged. Canonical = WHATWG `URL` serialisation, minus the
 * fragment and an empty `?`, with percent-encoded unreserved characters (RFC 3986 2.3: A-Z a-z 0-9
 * - . _ ~) decoded and all other percent-escapes in the path upper-cased (RFC 3986 6.2.2).
 *
 * Anything a server might interpret differently from a plain string comparison is refused rather
 * than guessed at (a local client has no legitimate reason to send it):
 * - "." / ".." segments, literal or percent-encoded (WHATWG silently resolves them, so the client's
 *   apparent intent and the fetched path would differ);
 * - encoded "/" "\" "%" and control characters in the path (servers that decode them, or decode
 *   twice, could escape a prefix), literal backslashes, ";" (path parameters: Tomcat strips them,
 *   so "..;" acts as ".."), empty segments ("//");
 * - any userinfo (even an empty "@"), non-ASCII or percent-encoded hosts, whitespace or control
 *   characters anywhere, scheme forms other than "http://" / "https://", URLs over 8192 characters.
 * Reasons never echo userinfo or a query string (signed storage URLs carry credentials there).
 */

/** At most this many redirects are followed from one request; the next one is refused. */
export const MAX_REDIRECTS = 5;
/** Longer URLs (raw or canonical) are refused: no legitimate download URL comes close. */
export const MAX_URL_LENGTH = 8192;

export interface TokenPolicyOptions {
  /** Permits http:// on loopback hosts only (tests, local mirrors); DESIGN section 3. */
  readonly allowInsecureLoopback: boolean;
  /**
   * Third-party sources (DESIGN section 6): a URL on an origin that is no configured server is
   * allowed (public, never the token) iff this says so for its canonical URL. Wired by the source
   * service (the documents and the URLs its current indexes list); absent = no third party at all.
   */
  readonly thirdParty?: (canonicalUrl: string) => boolean;
}

/** Artifactory's UI download API: `?isNativeBrowsing=false&repoKey=R&path=P` is the artifact `/artifactory/R/P`. */

export interface AllowedUrl {
  readonly allowed: true;
  /**
   * The URL as given, normalised (the form to store and hand back: re-classifying it gives the
   * same decision). For a download-API URL this is its rebuilt form with only repoKey and path.
   */
  readonly url: string;
  /**
   * The canonical URL: origin + canonical artifact path (`/artifactory/R/P` for both URL forms),
   * plus the query of a short URL. Used for file names, cache keys, problems, error messages and
   * the ledger: two different apps never read the same `.../ui/api/v1/download`.
   */
  readonly canonicalUrl: string;
  /**
   * What goes upstream: the form given, or the download-API form when the server's requestForm
   * is "download-api", or the same path and query on the server's publicMirrorOrigin (public only).
   */
  readonly requestUrl: string;
  /** Last segment of the canonical path, percent-decoded (`pc-nrfconnect-ppk-4.2.1.tgz`). */
  readonly fileName: string;
  /** The configured server whose prefixes matched (a synthetic all-public one for a third-party URL). */
  readonly server: ServerConfig;
  /** True when the request must carry the server's token (never for third-party or mirror requests). */
  readonly needsToken: boolean;
  /** True for a public URL on an origin that is no configured server (section 6). */
  readonly thirdParty: boolean;
}

export interface RefusedUrl {
  readonly allowed: false;
  /** A sentence for BROKER_URL_NOT_ALLOWED messages; never contains userinfo or a query. */
  readonly reason: string;
}

export type UrlClassification = AllowedUrl | RefusedUrl;

/** One request in a redirect chain; start with `initialHop`, then follow `redirectDecision`. */
export interface RequestHop {
  /** The URL to request now (canonical). */
  readonly url: string;
  /**
   * The allowed URL the client asked for. Retries and resumes start again from here, never from a
   * redirect target (signed storage URLs expire within seconds).
   */
  readonly originalUrl: string;
  /** Server of the original request: whose token `sendAuthorization` refers to. */
  readonly server: ServerConfig;
  /** True when this request may carry `Authorization: Bearer <token>` of `server`. */
  readonly sendAuthorization: boolean;
  /** Redirects followed to reach `url` (0 for the original request). */
  readonly redirects: number;
  /**
   * True once any hop left the original origin. Like the Fetch standard, the token is then never
   * re-attached, even if a later redirect comes back: we cannot vouch for what a foreign origin
   * sent us back to.
   */
  readonly leftOrigin: boolean;
}

export type RedirectDecision = { readonly allowed: true; readonly hop: RequestHop } | RefusedUrl;

export interface TokenPolicy {
  classify(rawUrl: string): UrlClassification;
  /** True when the daemon may fetch this URL at all. */
  allowed(rawUrl: string): boolean;
  /** True when the URL is allowed and needs the token (false when not allowed). */
  needsToken(rawUrl: string): boolean;
  /** The first hop of a request the policy allowed. */
  initialHop(allowed: AllowedUrl): RequestHop;
  /**
   * Decides whether to follow a redirect answered to `from` (the raw Location header value; a
   * relative one is resolved against `from.url`). Refuses a missing or repeated Location, more
   * than MAX_REDIRECTS redirects, non-http(s) targets, userinfo, and plain http:// unless
   * loopback is allowed and the target is loopback. Any https origin may be a target (signed
   * storage); the token goes along only while the chain stays on the original origin and the
   * target itself needs it.
   */
  redirectDecision(from: RequestHop, location: string | readonly string[] | undefined): RedirectDecision;
}

interface PreparedServer {
  readonly config: ServerConfig;
  readonly origin: string;
  /** publicMirrorOrigin, if any. */
  readonly mirror: string | undefined;
  /** Prefixes in comparison form (see `analysePath`). */
  readonly authenticated: readonly string[];
  readonly public: readonly string[];
}

type PathAnalysis =
  | { readonly ok: true; readonly canonical: string; readonly comparable: string }
  | { readonly ok: false; readonly problem: string };

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const UNICODE_SPACE = /\s/u;
const SCHEME_FORM = /^https?:\/\/(?![/\\])/i;
const MAX_SHOWN_PATH = 200;

/**
 * C0 and C1 controls, DEL, and any Unicode whitespace: WHATWG strips or drops some of these
 * silently, so what a client typed and what would be fetched could differ.
 */
function hasControlOrSpace(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code <= 0x20 || (code >= 0x7f && code <= 0x9f)) return true;
  }
  return UNICODE_SPACE.test(value);
}

function refuse(reason: string): RefusedUrl {
  return { allowed: false, reason };
}

/** Origin and path of a URL for messages: no userinfo, no query, no fragment, bounded length. */
function describe(url: URL): string {
  const path = url.pathname.length > MAX_SHOWN_PATH ? `${url.pathname.slice(0, MAX_SHOWN_PATH)}…` : url.pathname;
  return `${url.origin}${path}`;
}

function hex(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * Walks a WHATWG-serialised path once, producing the canonical path (to send) and the comparison
 * form (to match prefixes against: every ASCII escape decoded, i.e. what the server sees after
 * decoding), or the first reason to refuse it.
 */
function analysePath(pathname: string): PathAnalysis {
  let canonical = '';
  let comparable = '';
  for (let i = 0; i < pathname.length; i++) {
    const ch = pathname.charAt(i);
    if (ch === '\\') return { ok: false, problem: 'contains a backslash' };
    if (ch === ';') return { ok: false, problem: 'contains ";" (servers may treat it as a path parameter)' };
    if (ch !== '%') {
      canonical += ch;
      comparable += ch;
      continue;
    }
    const digits = pathname.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(digits)) return { ok: false, problem: 'contains an invalid percent-escape' };
    i += 2;
    const byte = Number.parseInt(digits, 16);
    const decoded = String.fromCharCode(byte);
    if (decoded === '/' || decoded === '\\') {
      return { ok: false, problem: 'contains an encoded slash or backslash (%2F, %5C), which a server may decode' };
    }
    if (decoded === '%') return { ok: false, problem: 'contains an encoded "%" (%25), which allows double decoding' };
    if (decoded === ';') return { ok: false, problem: 'contains an encoded ";" (%3B), which a server may treat as a path parameter' };
    if (byte < 0x20 || byte === 0x7f) return { ok: false, problem: 'contains an encoded control character' };
    if (UNRESERVED.test(decoded)) {
      canonical += decoded;
      comparable += decoded;
    } else {
      canonical += hex(byte);
      // Non-ASCII bytes stay escaped (upper-case) so a lone UTF-8 byte cannot break decoding.
      comparable += byte < 0x80 ? decoded : hex(byte);
    }
  }
  const segments = comparable.split('/').slice(1);
  for (const [index, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') return { ok: false, problem: 'contains a "." or ".." segment' };
    if (segment === '' && index !== segments.length - 1) return { ok: false, problem: 'contains an empty segment ("//")' };
  }
  return { ok: true, canonical, comparable };
}

/**
 * Checks on the string as the client wrote it, before WHATWG parsing normalises the evidence away
 * (dot segments, "@" with empty userinfo, percent-encoded or IDNA-mapped hosts, lenient schemes).
 */
function rawProblem(raw: string): string | undefined {
  if (raw.length === 0) return 'the URL is empty';
  if (raw.length > MAX_URL_LENGTH) return `the URL is longer than ${MAX_URL_LENGTH} characters`;
  if (hasControlOrSpace(raw)) return 'the URL contains whitespace or control characters';
  if (raw.includes('\\')) return 'the URL contains a backslash';
  const scheme = SCHEME_FORM.exec(raw);
  if (!scheme) {
    const match = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw);
    const protocol = match?.[1]?.toLowerCase();
    if (protocol !== undefined && protocol !== 'http' && protocol !== 'https') {
      return `only http:// and https:// URLs can be fetched, not ${protocol}:`;
    }
    return 'the URL must be absolute and start with "https://" followed by the host';
  }
  const rest = raw.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  if (authority.includes('@')) return 'the URL must not contain a user name or password';
  if (/[^\u0021-\u007e]/u.test(authority) || authority.includes('%')) {
    return 'the host must be plain ASCII (use the xn-- form for international names)';
  }
  if (authorityEnd !== -1 && rest.charAt(authorityEnd) === '/') {
    const afterAuthority = rest.slice(authorityEnd);
    const pathEnd = afterAuthority.search(/[?#]/);
    const rawPath = pathEnd === -1 ? afterAuthority : afterAuthority.slice(0, pathEnd);
    for (const segment of rawPath.split('/')) {
      const dots = segment.replace(/%2e/gi, '.');
      if (dots === '.' || dots === '..') return 'the URL path contains a "." or ".." segment (literal or percent-encoded)';
    }
  }
  return undefined;
}

type ArtifactAnalysis =
  | {
      readonly ok: true;
      /** Canonical artifact path (canonical escapes). */
      readonly canonicalPath: string;
      /** Comparison form of the canonical path (see `analysePath`). */
      readonly comparable: string;
      /** Query kept in the canonical URL: a short URL's own; none for the download API. */
      readonly query: string;
      /** The URL as given, normalised (download API: rebuilt with only repoKey and path). */
      readonly given: string;
      /** repoKey and path of a download-API URL. */
      readonly downloadApi: { readonly repoKey: string; readonly path: string } | undefined;
    }
  | { readonly ok: false; readonly problem: string };

/**
 * The canonical artifact of a URL (DESIGN section 4). On a configured server the UI download
 * API names `/artifactory/<repoKey>/<path>`: exactly one non-empty repoKey and path, other
 * parameters ignored, the path percent-decoded once (URLSearchParams), then checked like any
 * path (no "." / ".." or empty segments, no backslash, no encoded "/" "\\" "%").
 */
function canonicalArtifact(url: URL, onServer: boolean): ArtifactAnalysis {
  const path = analysePath(url.pathname);
  if (!path.ok) return { ok: false, problem: `the path ${path.problem}` };
  if (!onServer || path.comparable !== DOWNLOAD_API_PATH) {
    return { ok: true, canonicalPath: path.canonical, comparable: path.comparable, query: url.search, given: `${url.origin}${path.canonical}${url.search}`, downloadApi: undefined };
  }
  const query = url.searchParams;
  const repoKeys = query.getAll('repoKey');
  const paths = query.getAll('path');
  if (repoKeys.length !== 1 || paths.length !== 1) {
    return { ok: false, problem: `the download API URL must name exactly one repoKey and one path (it has ${repoKeys.length} and ${paths.length})` };
  }
  const repoKey = repoKeys[0] as string;
  const artifactPath = paths[0] as string;
  if (repoKey === '' || artifactPath === '') return { ok: false, problem: 'the download API URL has an empty repoKey or path' };
  if (repoKey.includes('/')) return { ok: false, problem: 'the repoKey of the download API URL contains "/"' };
  const segments = [repoKey, ...artifactPath.split('/')];
  for (const segment of segments) {
    if (segment === '') return { ok: false, problem: 'the path of the download API URL contains an empty segment' };
    if (segment === '.' || segment === '..') return { ok: false, problem: 'the path of the download API URL contains a "." or ".." segment' };
    if (segment.includes('\\')) return { ok: false, problem: 'the path of the download API URL contains a backslash' };
    if (/%(2f|5c)/i.test(segment)) return { ok: false, problem: 'the path of the download API URL contains an encoded slash or backslash' };
    if (hasControlOrSpace(segment.replace(/ /g, 'x'))) return { ok: false, problem: 'the path of the download API URL contains control characters' };
  }
  const encoded = `/artifactory/${segments.map(encodeURIComponent).join('/')}`;
  const canonical = analysePath(encoded);
  if (!canonical.ok) return { ok: false, problem: `the path of the download API URL ${canonical.problem}` };
  return {
    ok: true,
    canonicalPath: canonical.canonical,
    comparable: canonical.comparable,
    query: '',
    given: downloadApiUrl(url.origin, repoKey, artifactPath),
    downloadApi: { repoKey, path: artifactPath },
  };
}

/** `origin/ui/api/v1/download?isNativeBrowsing=false&repoKey=R&path=P`, P with its slashes kept (as the launcher writes it). */
function downloadApiUrl(origin: string, repoKey: string, artifactPath: string): string {
  const path = artifactPath.split('/').map(encodeURIComponent).join('/');
  return `${origin}${DOWNLOAD_API_PATH}?isNativeBrowsing=false&repoKey=${encodeURIComponent(repoKey)}&path=${path}`;
}

/** The download-API form of a short `/artifactory/R/P` canonical path; undefined for other paths. */
function downloadApiForm(origin: string, canonicalPath: string): string | undefined {
  const match = /^\/artifactory\/([^/]+)\/(.+[^/])$/.exec(canonicalPath);
  if (match === null) return undefined;
  const decode = (value: string): string => value.split('/').map(decodeSegment).join('/');
  return downloadApiUrl(origin, decode(match[1] as string), decode(match[2] as string));
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function underAny(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((prefix) => path.startsWith(prefix));
}

function prepareServer(server: ServerConfig): PreparedServer {
  const originUrl = new URL(server.origin);
  const comparablePrefix = (prefix: string): string => {
    // Prefixes go through the same canonicalisation as request paths so both sides compare alike.
    const analysed = prefix.startsWith('/') && prefix.endsWith('/') ? analysePath(new URL(prefix, originUrl).pathname) : undefined;
    if (!analysed?.ok) {
      throw new Error(`server "${server.name}": prefix "${prefix}" must start and end with "/" and be a plain path`);
    }
    return analysed.comparable;
  };
  return {
    config: server,
    origin: originUrl.origin,
    mirror: server.publicMirrorOrigin === null ? undefined : new URL(server.publicMirrorOrigin).origin,
    authenticated: server.authenticatedPrefixes.map(comparablePrefix),
    public: server.publicPrefixes.map(comparablePrefix),
  };
}

/** How many classifications a policy keeps (a few per source in practice). */
const MEMO_LIMIT = 512;

/** The shape of a third-party source's synthetic server: everything public, no token to send. */
const THIRD_PARTY_SERVER: ServerConfig = {
  name: 'third-party',
  origin: '',
  tokenInfoPath: '/',
  pingPath: '/',
  authenticatedPrefixes: [],
  publicPrefixes: ['/'],
  requestForm: 'as-given',
  publicMirrorOrigin: null,
};

export function createTokenPolicy(servers: readonly ServerConfig[], options: TokenPolicyOptions): TokenPolicy {
  const prepared = servers.map(prepareServer);
  const configuredOrigins = prepared.map((server) => server.origin).join(', ') || '(none)';

  function insecureAllowed(url: URL): boolean {
    return url.protocol === 'https:' || (url.protocol === 'http:' && options.allowInsecureLoopback && isLoopbackHost(url.hostname));
  }

  /** Decision on an already parsed URL; shared by `classify` and same-origin redirect targets. */
  function classifyParsed(url: URL): UrlClassification {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      return refuse(`only http:// and https:// URLs can be fetched, not ${url.protocol}`);
    }
    if (url.username !== '' || url.password !== '') return refuse('the URL must not contain a user name or password');
    const candidates = prepared.filter((server) => server.origin === url.origin);
    const mirrored = candidates.length === 0 ? prepared.filter((server) => server.mirror === url.origin) : [];
    if (candidates.length === 0 && mirrored.length === 0 && options.thirdParty === undefined) {
      return refuse(`${url.origin} is not a configured server (configured: ${configuredOrigins})`);
    }
    if (!insecureAllowed(url)) {
      return refuse(`plain http:// is only allowed for loopback servers with "allowInsecureLoopback": true (${url.origin})`);
    }
    const artifact = canonicalArtifact(url, candidates.length > 0);
    if (!artifact.ok) return refuse(`${describe(url)}: ${artifact.problem}`);
    const canonicalUrl = `${url.origin}${artifact.canonicalPath}${artifact.query}`;
    if (canonicalUrl.length > MAX_URL_LENGTH || artifact.given.length > MAX_URL_LENGTH) {
      return refuse(`the URL is longer than ${MAX_URL_LENGTH} characters`);
    }
    const fileName = lastArtifactSegment(canonicalUrl) ?? '';
    if (candidates.length === 0) {
      // A public URL on a server's mirror is requested as given, never with the token.
      for (const server of mirrored) {
        if (underAny(artifact.comparable, server.public)) {
          return { allowed: true, url: artifact.given, canonicalUrl, requestUrl: artifact.given, fileName, server: server.config, needsToken: false, thirdParty: false };
        }
      }
      thirdPartyAsks++;
      if (options.thirdParty?.(canonicalUrl) === true) {
        const server: ServerConfig = { ...THIRD_PARTY_SERVER, name: `third-party ${url.origin}`, origin: url.origin };
        return { allowed: true, url: artifact.given, canonicalUrl, requestUrl: artifact.given, fileName, server, needsToken: false, thirdParty: true };
      }
      return refuse(`${url.origin} is not a configured server (configured: ${configuredOrigins})`);
    }
    // Servers sharing an origin are tried in config order; the first whose prefixes match wins.
    for (const server of candidates) {
      const isPublic = underAny(artifact.comparable, server.public);
      const isAuthenticated = underAny(artifact.comparable, server.authenticated);
      if (!isPublic && !isAuthenticated) continue;
      const needsToken = isAuthenticated && !isPublic;
      const form =
        artifact.downloadApi !== undefined
          ? artifact.given
          : server.config.requestForm === 'download-api'
            ? (downloadApiForm(url.origin, artifact.canonicalPath) ?? artifact.given)
            : artifact.given;
      // The mirror serves public files only: the token never goes there.
      const requestUrl = !needsToken && server.mirror !== undefined ? server.mirror + form.slice(url.origin.length) : form;
      return { allowed: true, url: artifact.given, canonicalUrl, requestUrl, fileName, server: server.config, needsToken, thirdParty: false };
    }
    const prefixes = [...new Set(candidates.flatMap((server) => [...server.config.authenticatedPrefixes, ...server.config.publicPrefixes]))];
    return refuse(`${url.origin}${artifact.canonicalPath.slice(0, MAX_SHOWN_PATH)} is outside the configured prefixes of ${url.origin} (${prefixes.join(', ')})`);
  }

  /**
   * Classifications by raw URL (issue 23: status classified each source's URL several times per
   * request, most of its cost). A policy is built per config, so a reload starts afresh; answers
   * that asked the third-party predicate follow the sources and are never kept. Bounded: a burst
   * of distinct URLs (fetches of many files) clears it rather than growing it.
   */
  const memo = new Map<string, UrlClassification>();
  let thirdPartyAsks = 0;

  function classify(rawUrl: string): UrlClassification {
    if (typeof rawUrl !== 'string') return refuse('no URL was given');
    const known = memo.get(rawUrl);
    if (known !== undefined) return known;
    const asksBefore = thirdPartyAsks;
    const result = classifyUncached(rawUrl);
    if (thirdPartyAsks === asksBefore) {
      if (memo.size >= MEMO_LIMIT) memo.clear();
      memo.set(rawUrl, Object.freeze(result));
    }
    return result;
  }

  function classifyUncached(rawUrl: string): UrlClassification {
    const problem = rawProblem(rawUrl);
    if (problem !== undefined) return refuse(problem);
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      return refuse('the URL cannot be parsed');
    }
    return classifyParsed(url);
  }

  function initialHop(allowed: AllowedUrl): RequestHop {
    return {
      url: allowed.requestUrl,
      originalUrl: allowed.requestUrl,
      server: allowed.server,
      sendAuthorization: allowed.needsToken,
      redirects: 0,
      leftOrigin: false,
    };
  }

  function redirectDecision(from: RequestHop, header: string | readonly string[] | undefined): RedirectDecision {
    if (from.redirects >= MAX_REDIRECTS) return refuse(`too many redirects (more than ${MAX_REDIRECTS})`);
    // Two Location headers are ambiguous (proxies may pick either): refuse rather than choose.
    if (typeof header !== 'string' && header !== undefined && header.length > 1) {
      return refuse('the redirect has more than one Location header');
    }
    const location = typeof header === 'string' ? header : header?.[0];
    if (location === undefined) return refuse('the redirect has no Location header');
    if (location.length === 0) return refuse('the redirect has an empty Location header');
    if (location.length > MAX_URL_LENGTH) return refuse(`the redirect target is longer than ${MAX_URL_LENGTH} characters`);
    if (hasControlOrSpace(location)) return refuse('the redirect target contains whitespace or control characters');
    if (location.includes('\\')) return refuse('the redirect target contains a backslash');
    let target: URL;
    try {
      target = new URL(location, from.url);
    } catch {
      return refuse('the redirect target cannot be parsed');
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') {
      return refuse(`redirects may only lead to https:// URLs, not ${target.protocol}`);
    }
    if (target.username !== '' || target.password !== '') return refuse('the redirect target must not contain a user name or password');
    if (!insecureAllowed(target)) {
      return refuse(`a redirect to plain http:// is refused (${target.origin}); only loopback hosts with "allowInsecureLoopback": true may use http://`);
    }
    const originalOrigin = new URL(from.originalUrl).origin;
    const leftOrigin = from.leftOrigin || target.origin !== originalOrigin;
    // On a configured server the target gets the same scrutiny as a direct request; a refused or
    // public path is still followed (any https target is), but never with the token.
    const asDirect = prepared.some((server) => server.origin === target.origin) ? classifyParsed(target) : undefined;
    target.hash = '';
    // Foreign targets are requested as served: rewriting a signed storage URL would break its signature.
    const url = asDirect?.allowed ? asDirect.url : target.href;
    if (url.length > MAX_URL_LENGTH) return refuse(`the redirect target is longer than ${MAX_URL_LENGTH} characters`);
    const sendAuthorization =
      !leftOrigin && asDirect?.allowed === true && asDirect.needsToken && asDirect.server.name === from.server.name;
    return {
      allowed: true,
      hop: { url, originalUrl: from.originalUrl, server: from.server, sendAuthorization, redirects: from.redirects + 1, leftOrigin },
    };
  }

  return {
    classify,
    allowed: (rawUrl) => classify(rawUrl).allowed,
    needsToken: (rawUrl) => {
      const result = classify(rawUrl);
      return result.allowed && result.needsToken;
    },
    initialHop,
    redirectDecision,
  };
}
