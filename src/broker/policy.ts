import { isLoopbackHost } from '../protocol/config-schema.js';
import type { ServerConfig } from '../protocol/config-schema.js';

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
   * Third-party app sources (DESIGN section 6): asked, with the canonical URL, about an https URL
   * (http on loopback with allowInsecureLoopback) on an origin that is no configured server. True
   * = fetch it publicly, never with a token. The source registry answers from its current indexes.
   */
  readonly thirdParty?: (canonicalUrl: string) => boolean;
}

export interface AllowedUrl {
  readonly allowed: true;
  /** Canonical form: request exactly this URL. */
  readonly url: string;
  readonly server: ServerConfig;
  /** True when the request must carry the server's token. */
  readonly needsToken: boolean;
  /** True for a URL allowed by the third-party hook: `server` is synthetic, never with a token. */
  readonly thirdParty?: boolean;
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
    authenticated: server.authenticatedPrefixes.map(comparablePrefix),
    public: server.publicPrefixes.map(comparablePrefix),
  };
}

/** The shape of a third-party source's synthetic server: everything public, no token to send. */
const THIRD_PARTY_SERVER: ServerConfig = {
  name: 'third-party',
  origin: '',
  tokenInfoPath: '/',
  pingPath: '/',
  authenticatedPrefixes: [],
  publicPrefixes: ['/'],
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
    if (candidates.length === 0) {
      const thirdParty = classifyThirdParty(url);
      if (thirdParty !== undefined) return thirdParty;
      return refuse(`${url.origin} is not a configured server (configured: ${configuredOrigins})`);
    }
    if (!insecureAllowed(url)) {
      return refuse(`plain http:// is only allowed for loopback servers with "allowInsecureLoopback": true (${url.origin})`);
    }
    const path = analysePath(url.pathname);
    if (!path.ok) return refuse(`the path of ${describe(url)} ${path.problem}`);
    const canonical = `${url.origin}${path.canonical}${url.search}`;
    if (canonical.length > MAX_URL_LENGTH) return refuse(`the URL is longer than ${MAX_URL_LENGTH} characters`);
    // Servers sharing an origin are tried in config order; the first whose prefixes match wins.
    for (const server of candidates) {
      const isPublic = underAny(path.comparable, server.public);
      const isAuthenticated = underAny(path.comparable, server.authenticated);
      if (isPublic || isAuthenticated) {
        return { allowed: true, url: canonical, server: server.config, needsToken: isAuthenticated && !isPublic };
      }
    }
    const prefixes = [...new Set(candidates.flatMap((server) => [...server.config.authenticatedPrefixes, ...server.config.publicPrefixes]))];
    return refuse(`${describe(url)} is outside the configured prefixes of ${url.origin} (${prefixes.join(', ')})`);
  }

  /** A URL the third-party hook vouches for, public; undefined = not third-party (refuse as usual). */
  function classifyThirdParty(url: URL): UrlClassification | undefined {
    if (options.thirdParty === undefined || !insecureAllowed(url)) return undefined;
    const path = analysePath(url.pathname);
    if (!path.ok) return undefined;
    const canonical = `${url.origin}${path.canonical}${url.search}`;
    if (canonical.length > MAX_URL_LENGTH || !options.thirdParty(canonical)) return undefined;
    const server: ServerConfig = { ...THIRD_PARTY_SERVER, name: `third-party ${url.origin}`, origin: url.origin };
    return { allowed: true, url: canonical, server, needsToken: false, thirdParty: true };
  }

  function classify(rawUrl: string): UrlClassification {
    if (typeof rawUrl !== 'string') return refuse('no URL was given');
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
      url: allowed.url,
      originalUrl: allowed.url,
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
