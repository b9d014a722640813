import { BrokerError, isBrokerError } from '../protocol/errors.js';
import type { RequestHop, TokenPolicy } from './policy.js';
import type { Upstream, UpstreamResponse } from './ports.js';
import { artifactoryMessage, readBodyCapped } from './read-body.js';
import type { TokenAccess } from './token-access.js';

/**
 * Fetches one small JSON document (source.json, withdrawn.json, app info) for the source refresh:
 * token policy at every hop, `If-None-Match` with the stored ETag byte for byte (Artifactory's ETag
 * is a bare sha1 without quotes), a size cap enforced while reading, and upstream answers mapped
 * to the error registry.
 *
 * This is deliberately a small, separate redirect loop for bounded JSON bodies; the streaming
 * fetch pipeline (`GET /v1/fetch`) has its own. They follow the same policy decisions
 * (`initialHop`/`redirectDecision`) and can be unified once both exist.
 */

export interface DocumentFetchDeps {
  upstream: Upstream;
  policy: TokenPolicy;
  tokens: TokenAccess;
}

export interface DocumentRequest {
  url: string;
  /** ETag of the copy we hold; sent as If-None-Match exactly as the server gave it. */
  etag?: string | undefined;
  maxBytes: number;
  /** True for withdrawn.json: a 404 means "none", not an error. */
  optional?: boolean;
  signal?: AbortSignal;
  /** Accept header; JSON documents by default (icons and release notes ask for anything). */
  accept?: string;
}

export type DocumentResult =
  | { status: 'ok'; body: Buffer; text: string; etag: string | undefined; contentType: string | undefined }
  | { status: 'not-modified' }
  | { status: 'absent' };

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Error and redirect bodies are only read for the server's message. */
const SMALL_BODY_BYTES = 64 * 1024;

export async function fetchDocument(deps: DocumentFetchDeps, request: DocumentRequest): Promise<DocumentResult> {
  const classified = deps.policy.classify(request.url);
  if (!classified.allowed) {
    throw new BrokerError('BROKER_URL_NOT_ALLOWED', { message: `${classified.reason}.`, details: { url: safeUrl(request.url) } });
  }
  let hop: RequestHop = deps.policy.initialHop(classified);
  let usedToken: string | undefined;
  for (;;) {
    const headers: Record<string, string> = { accept: request.accept ?? 'application/json' };
    if (request.etag !== undefined) headers['if-none-match'] = request.etag;
    // tokenFor throws TOKEN_MISSING/INVALID/EXPIRED: then nothing is sent at all.
    usedToken = hop.sendAuthorization ? deps.tokens.tokenFor(hop.server.name) : undefined;
    if (usedToken !== undefined) headers.authorization = `Bearer ${usedToken}`;
    const response = await deps.upstream.request({ method: 'GET', url: hop.url, headers, ...(request.signal === undefined ? {} : { signal: request.signal }) });
    const status = response.status;

    if (REDIRECT_STATUSES.has(status)) {
      await discard(response);
      const decision = deps.policy.redirectDecision(hop, response.headers.location);
      if (!decision.allowed) {
        throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `${describe(hop.url)} redirected somewhere the daemon will not follow: ${decision.reason}.`, details: { status, url: safeUrl(request.url) } });
      }
      hop = decision.hop;
      continue;
    }
    if (status === 304) {
      await discard(response);
      // A 304 to a request without If-None-Match would leave us with nothing to serve.
      if (request.etag === undefined) throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `${describe(hop.url)} answered 304 to an unconditional request.`, details: { status, url: safeUrl(request.url) } });
      return { status: 'not-modified' };
    }
    if (status === 200) {
      const body = await readBodyCapped(response.body, request.maxBytes).catch((err: unknown) => {
        throw isBrokerError(err) ? err : new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The connection broke while reading ${describe(hop.url)}.`, details: { reason: 'network', url: safeUrl(request.url) }, cause: err });
      });
      if (body.tooLarge) {
        throw new BrokerError('BROKER_SOURCE_INVALID', {
          message: `${describe(request.url)} is larger than ${formatBytes(request.maxBytes)}; the last good copy is kept.`,
          hint: 'The document is not a plausible app source document; ask its publisher to check it.',
          details: { reason: 'too-large', url: safeUrl(request.url) },
        });
      }
      const etag = response.headers.etag;
      const contentType = response.headers['content-type'];
      return {
        status: 'ok',
        text: body.text,
        body: body.bytes,
        contentType: typeof contentType === 'string' && contentType.length <= 200 ? contentType : undefined,
        etag: typeof etag === 'string' && etag.length <= 512 ? etag : undefined,
      };
    }
    const text = await readBodyCapped(response.body, SMALL_BODY_BYTES).then((b) => (b.tooLarge ? '' : b.text)).catch(() => '');
    const upstreamMessage = artifactoryMessage(text);
    if (status === 404 && request.optional === true) return { status: 'absent' };
    throw upstreamStatusError(status, hop, request.url, upstreamMessage, response.headers['retry-after'], deps.tokens, usedToken);
  }
}

function upstreamStatusError(status: number, hop: RequestHop, originalUrl: string, upstreamMessage: string | undefined, retryAfter: string | string[] | undefined, tokens: TokenAccess, usedToken: string | undefined): BrokerError {
  const where = describe(originalUrl);
  const details = { status, url: safeUrl(originalUrl) };
  if (status === 401) {
    if (hop.sendAuthorization) {
      // The token was sent and refused: the token lifecycle marks it invalid; no retry loop.
      tokens.rejected(hop.server.name, upstreamMessage ?? 'Unauthorized', usedToken);
      const expired = /expired/i.test(upstreamMessage ?? '');
      return new BrokerError(expired ? 'BROKER_TOKEN_EXPIRED' : 'BROKER_TOKEN_INVALID', {
        message: `${hop.server.origin} rejected the identity token for ${where} (${upstreamMessage ?? 'HTTP 401'}).`,
        details: { ...details, server: hop.server.name },
      });
    }
    return new BrokerError('BROKER_UPSTREAM_FORBIDDEN', {
      message: `${where} requires authentication, but the token policy treats it as public (HTTP 401).`,
      hint: `Check "publicPrefixes" of server "${hop.server.name}" in config.json.`,
      details,
    });
  }
  if (status === 403) return new BrokerError('BROKER_UPSTREAM_FORBIDDEN', { message: `${where}: access refused (HTTP 403${upstreamMessage ? `, ${upstreamMessage}` : ''}).`, details });
  if (status === 404) return new BrokerError('BROKER_UPSTREAM_NOT_FOUND', { message: `${where} does not exist (HTTP 404).`, hint: 'Check the URL; a source URL points to its source.json.', details });
  const value = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  return new BrokerError('BROKER_UPSTREAM_ERROR', {
    message: `${where} answered HTTP ${status}${upstreamMessage ? ` (${upstreamMessage})` : ''}.`,
    details: { ...details, ...(value === undefined ? {} : { retryAfter: value.slice(0, 100) }) },
  });
}

async function discard(response: UpstreamResponse): Promise<void> {
  await readBodyCapped(response.body, SMALL_BODY_BYTES).catch(() => undefined);
}

/** Origin and path for messages: never a query string (signed URLs carry credentials there). */
export function describe(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return 'the document';
  }
}

function safeUrl(url: string): string {
  return describe(url);
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}
