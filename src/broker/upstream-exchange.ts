import type { Config, ServerConfig } from '../protocol/config-schema.js';
import { describeArtifactUrl } from '../protocol/artifact-url.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { createTokenPolicy, type AllowedUrl, type RequestHop, type TokenPolicy } from './policy.js';
import type { Clock, TokenAccess, Upstream, UpstreamResponse } from './ports.js';
import { readBodyCapped } from './read-body.js';
import { scrubSecrets, scrubThenCut } from './secret-scrubber.js';
import { discardBody, MAX_UPSTREAM_MESSAGE, readErrorBody, retryAfterSeconds, upstreamMessage } from './upstream-errors.js';

/**
 * THE one upstream exchange (DESIGN section 4). Every upstream request of the daemon goes through
 * here: fetches and app tarballs, source and app documents, icons, token validation, and
 * diagnose's server checks. One path, in this order: canonical URL -> policy -> token attach/drop
 * (fetched lazily, only when a hop needs it) -> one redirect loop -> User-Agent -> `Range:
 * bytes=0-` when a whole body is wanted -> timeouts (the Upstream adapter's) -> one error mapper.
 */

export interface UpstreamExchangeDeps {
  /** A getter: SIGHUP can change the servers, and with them the policy. */
  policy(): TokenPolicy;
  upstream: Upstream;
  tokens: TokenAccess;
  clock: Clock;
  /** Sent upstream as User-Agent on every request. */
  userAgent: string;
}

/**
 * The token one request may use. The default takes it lazily from TokenAccess (so a request that
 * never needs it never asks); token validation passes the candidate token instead.
 */
export interface TokenUse {
  /** The token for `server`; throws TOKEN_MISSING/INVALID/EXPIRED (then nothing is sent). */
  get(server: string): string;
  /** The token this request carried, if it carried one. */
  used(): string | undefined;
  /** The server answered 401 to a request that carried it. */
  rejected(server: string, message: string): void;
  /** Secrets to scrub from upstream-derived text: the token carried and the current one. */
  secrets(server: string): (string | undefined)[];
}

export interface ExchangeRequest {
  target: AllowedUrl;
  method?: 'GET' | 'HEAD';
  /** Extra request headers (conditional, Range, Accept); User-Agent and Authorization are ours. */
  headers?: Record<string, string>;
  /**
   * Ask for `Range: bytes=0-` so the answer carries the full length (files.nordicsemi.com omits
   * Content-Length otherwise); a 416 (empty file) starts again from the original URL without it.
   */
  wholeBody?: boolean;
  signal?: AbortSignal | undefined;
  token?: TokenUse;
}

export interface Exchanged {
  response: UpstreamResponse;
  /** The hop that answered (after redirects). */
  hop: RequestHop;
  target: AllowedUrl;
  /** True when `Range: bytes=0-` was sent and answered (a 206 then stands for the whole body). */
  wholeBody: boolean;
  token: TokenUse;
}

export interface DocumentRequest {
  url: string;
  /** ETag of the copy held; sent as If-None-Match byte for byte (Artifactory's is a bare sha1). */
  etag?: string | undefined;
  maxBytes: number;
  /** Accept header; `application/json` also turns an HTML answer into a wrong-origin error. */
  accept?: string;
  /** True when a 404 means "none" rather than an error. */
  optional?: boolean;
  signal?: AbortSignal | undefined;
  /** The token this request may use (default: the server's, lazily); `withoutToken` for a third party's URLs. */
  token?: TokenUse;
}

export type DocumentResult =
  | { status: 'ok'; body: Buffer; text: string; etag: string | undefined; contentType: string | undefined; target: AllowedUrl }
  | { status: 'not-modified'; target: AllowedUrl }
  | { status: 'absent'; target: AllowedUrl };

export interface EndpointRequest {
  server: ServerConfig;
  /** Path on the server's origin (tokenInfoPath, pingPath): outside the prefixes, never redirected. */
  path: string;
  /** The token to send (token validation), or none (ping). */
  token?: TokenUse;
  accept?: string;
  signal?: AbortSignal | undefined;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Error bodies are only read for the server's message. */
const ERROR_BODY_BYTES = 64 * 1024;

export class UpstreamExchange {
  constructor(private readonly deps: UpstreamExchangeDeps) {}

  /** The token policy of the current config (the sources ask it too: one policy, one exchange). */
  policy(): TokenPolicy {
    return this.deps.policy();
  }

  /** The policy's decision, or BROKER_URL_NOT_ALLOWED (nothing is sent). */
  allowed(rawUrl: string): AllowedUrl {
    const classified = this.deps.policy().classify(rawUrl);
    if (!classified.allowed) {
      throw new BrokerError('BROKER_URL_NOT_ALLOWED', { message: `The URL is not allowed: ${classified.reason}.`, details: { reason: classified.reason, url: describeArtifactUrl(rawUrl) } });
    }
    return classified;
  }

  /** The token of the policy's server, taken lazily from TokenAccess; a 401 marks it invalid. */
  lazyToken(): TokenUse {
    const access = this.deps.tokens;
    let value: string | undefined;
    return {
      get: (server) => (value ??= access.tokenFor(server)),
      used: () => value,
      rejected: (server, message) => access.rejected(server, message, value),
      secrets: (server) => [value, currentToken(access, server)],
    };
  }

  /**
   * For a URL a third party's index named (DESIGN section 6): fetched without the token where it
   * is public, refused before anything is sent where the request (or a redirect) would need it.
   */
  withoutToken(listedBy: string): TokenUse {
    return {
      get: (server) => {
        throw new BrokerError('BROKER_URL_NOT_ALLOWED', {
          message: `${listedBy} lists a URL that needs the identity token of ${server}; the broker never uses your token for a third party's index.`,
          hint: 'Ask the publisher of that source to list public URLs, or add the source from the server itself.',
          details: { reason: 'third-party-needs-token', server },
        });
      },
      used: () => undefined,
      rejected: () => undefined,
      secrets: (server) => [currentToken(this.deps.tokens, server)],
    };
  }

  /**
   * Sends the request and follows redirects (at most MAX_REDIRECTS, each judged by the policy,
   * Authorization dropped once the chain leaves the origin). Resolves with the first answer that
   * is not a redirect, whatever its status; the caller reads it or hands it to `fail`.
   */
  async open(request: ExchangeRequest): Promise<Exchanged> {
    const token = request.token ?? this.lazyToken();
    const target = request.target;
    // A request that needs the token checks it first: without a usable one nothing is sent.
    if (target.needsToken) token.get(target.server.name);
    const base: Record<string, string> = { ...request.headers, 'user-agent': this.deps.userAgent };
    let wholeBody = request.wholeBody === true;
    for (;;) {
      const headers = wholeBody ? { ...base, range: 'bytes=0-' } : base;
      const answered = await this.follow(target, request.method ?? 'GET', headers, request.signal, token);
      if (wholeBody && answered.response.status === 416) {
        // An empty file cannot satisfy bytes=0-: start again from the original URL, never from a
        // redirect target (signed storage URLs expire within seconds).
        discardBody(answered.response);
        wholeBody = false;
        continue;
      }
      return { ...answered, target, wholeBody, token };
    }
  }

  /** The one redirect loop of the daemon. */
  private async follow(target: AllowedUrl, method: 'GET' | 'HEAD', headers: Record<string, string>, signal: AbortSignal | undefined, token: TokenUse): Promise<{ response: UpstreamResponse; hop: RequestHop }> {
    const policy = this.deps.policy();
    let hop = policy.initialHop(target);
    for (;;) {
      const server = hop.server;
      // Authorization is decided per hop: the policy drops it once the chain leaves the origin.
      const hopHeaders = hop.sendAuthorization ? { ...headers, authorization: `Bearer ${token.get(server.name)}` } : headers;
      const response = await this.deps.upstream.request({ method, url: hop.url, headers: hopHeaders, ...(signal === undefined ? {} : { signal }) });
      // Until someone consumes the body, an upstream failure must not become an uncaught error.
      response.body.on('error', () => undefined);
      // A reflection can only hold the token this chain carried (asking for the current one here
      // would ask TokenAccess on requests that never need it).
      const sent = [token.used()];
      if (!REDIRECT_STATUSES.has(response.status)) return { response: withoutSecretValidators(response, sent), hop };
      discardBody(response);
      if (carriesSecret(response.headers.location, sent)) {
        // A proxy that reflects the request into Location: following it would hand the token to
        // whatever origin it names (and put it in our logs as a URL). Never followed.
        throw new BrokerError('BROKER_UPSTREAM_ERROR', {
          message: `The server redirected ${describeArtifactUrl(target.canonicalUrl)} to a URL that carries the identity token; the broker does not follow it.`,
          hint: "The server or a proxy in between reflects the request's Authorization header; report it to the server's administrators.",
          details: { status: response.status, reason: 'redirect-refused', url: describeArtifactUrl(target.canonicalUrl) },
        });
      }
      const decision = policy.redirectDecision(hop, response.headers.location);
      if (!decision.allowed) {
        const reason = this.scrub(decision.reason, token, server);
        throw new BrokerError('BROKER_UPSTREAM_ERROR', {
          message: `The server redirected ${describeArtifactUrl(target.canonicalUrl)} somewhere the broker does not follow: ${reason}.`,
          hint: "The server or a proxy in between is misconfigured; report it to the server's administrators.",
          details: { status: response.status, reason: 'redirect-refused', url: describeArtifactUrl(target.canonicalUrl) },
        });
      }
      hop = decision.hop;
    }
  }

  /** Reads (a bounded part of) an error answer and maps it: the one error mapper. */
  async fail(exchanged: Exchanged): Promise<BrokerError> {
    const text = await readErrorBody(exchanged.response.body);
    return this.errorFor({ ...exchanged, message: upstreamMessage(text) });
  }

  /**
   * Upstream status -> envelope: 401 (token sent) -> TOKEN_INVALID/_EXPIRED and the token is
   * marked rejected; 401 (no token) and 403 -> UPSTREAM_FORBIDDEN; 404/410 -> UPSTREAM_NOT_FOUND;
   * anything else (429, 5xx, unexpected) -> UPSTREAM_ERROR with the status and `retryAfter` in
   * whole seconds. Every upstream-derived text is scrubbed of the token first.
   */
  errorFor(failure: { response: UpstreamResponse; hop: RequestHop; target: AllowedUrl; token: TokenUse; message: string }): BrokerError {
    const { response, hop, token } = failure;
    const server = hop.server;
    const status = response.status;
    // Name the origin that answered: with publicMirrorOrigin set the first hop goes to the mirror
    // (e.g. files.nordicsemi.cn), not to the server's origin. Redirect targets keep the original URL.
    const url = describeArtifactUrl(hop.redirects === 0 ? hop.url : failure.target.canonicalUrl);
    // Redact first, then cut: cut first, a token the client placed at the cut would survive in part.
    const message = scrubThenCut(failure.message, token.secrets(server.name), MAX_UPSTREAM_MESSAGE);
    const said = message === '' ? '' : ` (the server said: ${message})`;
    if (status === 401) {
      if (hop.sendAuthorization) {
        // The token was sent and refused: the lifecycle marks it invalid (no retry until replaced).
        token.rejected(server.name, message);
        const expired = /expired/i.test(message);
        return new BrokerError(expired ? 'BROKER_TOKEN_EXPIRED' : 'BROKER_TOKEN_INVALID', {
          message: expired
            ? `The server says the identity token for ${server.name} has expired${said}.`
            : `The server rejected the identity token for ${server.name} when asked for ${url}${said}.`,
          details: { server: server.name, url },
        });
      }
      return new BrokerError('BROKER_UPSTREAM_FORBIDDEN', {
        message: `The server asks for authentication for ${url}, which the broker requests without the token (401).`,
        hint: 'The URL is under a public prefix, on a mirror or third-party origin, or a redirect target; if it needs the token, list its prefix in authenticatedPrefixes (and not publicPrefixes) in config.json.',
        details: { status: 401, url },
      });
    }
    if (status === 403) {
      return new BrokerError('BROKER_UPSTREAM_FORBIDDEN', { message: `The server refused access to ${url} (403)${said}.`, details: { status, url } });
    }
    if (status === 404 || status === 410) {
      return new BrokerError('BROKER_UPSTREAM_NOT_FOUND', { message: `The server has no file at ${url} (${status}).`, details: { status, url } });
    }
    const retryAfter = retryAfterSeconds(response.headers['retry-after'], this.deps.clock.now());
    const retry = retryAfter === undefined ? '' : ` It asked to retry after ${retryAfter} s.`;
    return new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `The server answered ${status} for ${url}${said}.${retry}`,
      ...(status === 429 ? { hint: 'The server is rate-limiting requests; wait and try again (details.retryAfter says how long, when the server said).' } : {}),
      details: { status, reason: 'status', url, ...(retryAfter === undefined ? {} : { retryAfter }) },
    });
  }

  /**
   * One small document (source.json, app info, icon, release notes): If-None-Match with the held
   * ETag, a size cap enforced while reading, errors mapped. Returns the bytes and their text.
   */
  async document(request: DocumentRequest): Promise<DocumentResult> {
    const target = this.allowed(request.url);
    const headers: Record<string, string> = { accept: request.accept ?? 'application/json' };
    if (request.etag !== undefined) headers['if-none-match'] = request.etag;
    const exchanged = await this.open({ target, headers, signal: request.signal, ...(request.token === undefined ? {} : { token: request.token }) });
    const { response, hop } = exchanged;
    // The origin that answered (a publicMirrorOrigin), as in errorFor.
    const url = describeArtifactUrl(hop.redirects === 0 ? hop.url : target.canonicalUrl);
    if (response.status === 304) {
      // Awaited, so the connection is free again before the caller's concurrency slot is.
      await readErrorBody(response.body);
      // A 304 to a request without If-None-Match would leave nothing to serve.
      if (request.etag === undefined) {
        throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `${url} answered 304 to an unconditional request.`, details: { status: 304, reason: 'not-modified-unasked', url } });
      }
      return { status: 'not-modified', target };
    }
    if (response.status === 404 && request.optional === true) {
      await readErrorBody(response.body);
      return { status: 'absent', target };
    }
    if (response.status !== 200) throw await this.fail(exchanged);
    const body = await readBodyCapped(response.body, request.maxBytes).catch((err: unknown) => {
      throw isBrokerError(err) ? err : new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The connection broke while reading ${url}.`, details: { reason: 'network', url }, cause: err });
    });
    if (body.tooLarge) {
      throw new BrokerError('BROKER_SOURCE_INVALID', {
        message: `${url} is larger than ${formatBytes(request.maxBytes)}; the last good copy is kept.`,
        hint: 'The document is not a plausible app source document; ask its publisher to check it.',
        details: { reason: 'too-large', url },
      });
    }
    const contentType = firstHeader(response.headers['content-type']);
    if (headers.accept === 'application/json') assertNotHtml(contentType, body.bytes, target.canonicalUrl, target.server, target.thirdParty);
    const etag = firstHeader(response.headers.etag);
    return { status: 'ok', body: body.bytes, text: body.text, etag: etag !== undefined && etag.length <= 512 ? etag : undefined, contentType, target };
  }

  /**
   * A request to a fixed endpoint of a server (token info, ping): the server's own origin only,
   * the given token or none, no redirect followed, the same error mapper.
   */
  async endpoint(request: EndpointRequest): Promise<{ status: number; headers: UpstreamResponse['headers']; text: string; exchanged: Exchanged }> {
    const { server } = request;
    const url = `${server.origin}${request.path}`;
    const target: AllowedUrl = { allowed: true, url, canonicalUrl: url, requestUrl: url, fileName: '', server, needsToken: request.token !== undefined, thirdParty: false };
    const token = request.token ?? noToken();
    const headers: Record<string, string> = { accept: request.accept ?? 'application/json', 'user-agent': this.deps.userAgent };
    if (request.token !== undefined) headers.authorization = `Bearer ${token.get(server.name)}`;
    const response = await this.deps.upstream.request({ method: 'GET', url, headers, ...(request.signal === undefined ? {} : { signal: request.signal }) });
    response.body.on('error', () => undefined);
    const hop: RequestHop = { url, originalUrl: url, server, sendAuthorization: request.token !== undefined, redirects: 0, leftOrigin: false };
    const exchanged: Exchanged = { response, hop, target, wholeBody: false, token };
    if (REDIRECT_STATUSES.has(response.status)) {
      discardBody(response);
      throw new BrokerError('BROKER_UPSTREAM_ERROR', {
        message: `${describeArtifactUrl(url)} answered with a redirect (${response.status}); the broker does not follow redirects from this endpoint.`,
        hint: `Check "origin" of server "${server.name}" in config.json: it must be the Artifactory server itself.`,
        details: { status: response.status, reason: 'redirect-refused', url: describeArtifactUrl(url) },
      });
    }
    const body = await readBodyCapped(response.body, ERROR_BODY_BYTES).catch((err: unknown) => {
      throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The connection to ${server.origin} broke while reading ${describeArtifactUrl(url)}.`, details: { reason: 'network' }, cause: err });
    });
    const text = body.tooLarge ? '' : body.text;
    return { status: response.status, headers: response.headers, text, exchanged };
  }

  /**
   * Token validation's own entry point (DESIGN section 4): `GET origin+tokenInfoPath` with the
   * candidate token. That path lies outside `authenticatedPrefixes`, so it is no URL the policy
   * judges: the server's own origin, no redirect followed, a 401 never touches the stored token.
   */
  tokenInfo(server: ServerConfig, token: string, signal?: AbortSignal): ReturnType<UpstreamExchange['endpoint']> {
    return this.endpoint({ server, path: server.tokenInfoPath, token: givenToken(token), signal });
  }

  /** The mapper for an endpoint answer read by `endpoint` (its body was already read). */
  endpointError(answer: { text: string; exchanged: Exchanged }): BrokerError {
    return this.errorFor({ ...answer.exchanged, message: upstreamMessage(answer.text) });
  }

  private scrub(text: string, token: TokenUse, server: ServerConfig): string {
    return scrubSecrets(text, token.secrets(server.name));
  }
}

export interface UpstreamExchangeSetup extends Omit<UpstreamExchangeDeps, 'policy'> {
  /** The current config: the policy follows it (rebuilt only when a SIGHUP swapped it). */
  config(): Readonly<Pick<Config, 'servers' | 'allowInsecureLoopback'>>;
  /** Third-party sources (DESIGN section 6): which canonical URLs their indexes list. */
  thirdParty?: (canonicalUrl: string) => boolean;
}

/**
 * THE factory of upstream exchanges. Two composition roots call it, nothing else constructs one
 * (tests/architecture.test.ts): the daemon's `assembleDaemon` (one exchange for sources, fetches,
 * downloads and token validation) and diagnose's server probe in the CLI.
 */
export function createUpstreamExchange(setup: UpstreamExchangeSetup): UpstreamExchange {
  const { config, thirdParty, ...deps } = setup;
  let built: { servers: readonly ServerConfig[]; insecure: boolean; policy: TokenPolicy } | undefined;
  const policy = (): TokenPolicy => {
    const current = config();
    if (built?.servers !== current.servers || built.insecure !== current.allowInsecureLoopback) {
      built = { servers: current.servers, insecure: current.allowInsecureLoopback, policy: createTokenPolicy(current.servers, { allowInsecureLoopback: current.allowInsecureLoopback, ...(thirdParty === undefined ? {} : { thirdParty }) }) };
    }
    return built.policy;
  };
  return new UpstreamExchange({ ...deps, policy });
}

/** A candidate token (validation): sent as given; a 401 does not touch the stored one. */
export function givenToken(token: string): TokenUse {
  return { get: () => token, used: () => token, rejected: () => undefined, secrets: () => [token] };
}

function noToken(): TokenUse {
  return {
    get: () => {
      throw new BrokerError('BROKER_INTERNAL', { message: 'A request without a token asked for one.' });
    },
    used: () => undefined,
    rejected: () => undefined,
    secrets: () => [],
  };
}

/**
 * An HTML page where JSON was expected (a login page, a portal, a proxy's error page): the origin
 * is not an Artifactory API. Said so with a hint, instead of a confusing parse error.
 */
export function assertNotHtml(contentType: string | undefined, body: Buffer, url: string, server: ServerConfig, thirdParty = false): void {
  const html = /^text\/html\b/i.test(contentType ?? '') || /^\s*<(!doctype|html)/i.test(body.subarray(0, 256).toString('utf8'));
  if (!html) return;
  throw new BrokerError('BROKER_UPSTREAM_ERROR', {
    message: `${describeArtifactUrl(url)} answered with an HTML page instead of JSON.`,
    hint:
      thirdParty
        ? 'The URL does not point to a JSON document (perhaps a web page or a login portal); check it.'
        : `Check "origin" of server "${server.name}" in config.json (now ${server.origin}): it must be the Artifactory server itself, not a web page or login portal in front of it.`,
    details: { status: 200, reason: 'not-json', url: describeArtifactUrl(url) },
  });
}

function carriesSecret(value: string | readonly string[] | undefined, secrets: readonly (string | undefined)[]): boolean {
  if (value === undefined) return false;
  const text = typeof value === 'string' ? value : value.join('\n');
  return scrubSecrets(text, secrets) !== text;
}

/** Validators that go into files (FILE.part.json, the cache index, source indexes) and back upstream. */
const VALIDATOR_HEADERS = ['etag', 'last-modified'] as const;

/**
 * A reflected ETag or Last-Modified is dropped where it enters the daemon (DESIGN section 5): it
 * would be written to `.part.json` and the cache index and sent back as If-Range. Without it the
 * answer is simply not resumable or revalidated; with `[redacted]` it would be a wrong validator.
 */
function withoutSecretValidators(response: UpstreamResponse, secrets: readonly (string | undefined)[]): UpstreamResponse {
  if (!VALIDATOR_HEADERS.some((name) => carriesSecret(response.headers[name], secrets))) return response;
  const headers = { ...response.headers };
  for (const name of VALIDATOR_HEADERS) if (carriesSecret(headers[name], secrets)) delete headers[name];
  return { ...response, headers };
}

function currentToken(access: TokenAccess, server: string): string | undefined {
  try {
    return access.tokenFor(server);
  } catch {
    return undefined;
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}
