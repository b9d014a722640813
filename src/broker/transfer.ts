import type { Readable } from 'node:stream';
import { BrokerError } from '../protocol/errors.js';
import { PASSED_RESPONSE_HEADERS } from '../protocol/fetch.js';
import { parseContentRange } from '../protocol/resume-decisions.js';
import { describeArtifactUrl as describeUrl } from '../protocol/artifact-url.js';
import type { AllowedUrl } from './policy.js';
import type { UpstreamResponse } from './ports.js';
import { discardBody } from './upstream-errors.js';
import type { TokenUse, UpstreamExchange } from './upstream-exchange.js';

/**
 * The one transfer of the daemon: a URL opened through the one upstream exchange (policy, token,
 * redirects, error mapping), answered with a status, the passed headers and the body. It has two
 * sinks: the HTTP answer (`/v1/fetch` and app tarballs, through FetchService: ledger, cache,
 * verified relay) and a file (`POST /v1/downloads`, through the DownloadFiles port's
 * `resumeToFile`). Neither sink sees an upstream status other than 200, 206 or 304.
 */
export interface TransferAnswer {
  status: number;
  /** Lower-case names, only PASSED_RESPONSE_HEADERS (never Set-Cookie or auth challenges). */
  headers: Record<string, string>;
  /** Streamed, never buffered; destroy it to abort the upstream request. */
  body: Readable;
}

/** A URL the policy allowed, with the token checked when it needs one (before any cache or upstream). */
export interface JudgedUrl {
  target: AllowedUrl;
  token: TokenUse;
}

/** `token`: the token this transfer may use (default the server's; a third party's tarball passes `exchange.withoutToken`). */
export function judgeUrl(exchange: UpstreamExchange, url: string, token: TokenUse = exchange.lazyToken()): JudgedUrl {
  const target = exchange.allowed(url);
  if (target.needsToken) token.get(target.server.name);
  return { target, token };
}

export interface TransferRequest {
  /** Range, If-Range, If-None-Match, If-Modified-Since: what may go upstream. */
  headers: Record<string, string>;
  signal: AbortSignal;
}

/**
 * Opens the transfer. Without a Range the exchange asks for `bytes=0-` and a 206 for the whole
 * body is answered as a 200 with its full Content-Length (progress bars need it). Any status
 * but 200/206/304 rejects with the exchange's envelope.
 */
export async function openTransfer(exchange: UpstreamExchange, judged: JudgedUrl, request: TransferRequest): Promise<TransferAnswer> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity', ...request.headers };
  const exchanged = await exchange.open({ target: judged.target, headers, wholeBody: request.headers.range === undefined, signal: request.signal, token: judged.token });
  const { response } = exchanged;
  if (response.status === 304) {
    discardBody(response);
    const passed = passHeaders(response.headers);
    delete passed['content-length'];
    return { status: 304, headers: passed, body: response.body };
  }
  if (response.status !== 200 && response.status !== 206) throw await exchange.fail(exchanged);
  const passed = passHeaders(response.headers);
  if (!exchanged.wholeBody || response.status !== 206) return { status: response.status, headers: passed, body: response.body };
  // Our own `bytes=0-`: the caller asked for the whole body and gets a 200 with its length.
  const range = parseContentRange(passed['content-range']);
  if (range === undefined || range.start !== 0 || (range.total !== undefined && range.end + 1 !== range.total)) {
    discardBody(response);
    throw new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `The server answered a request for the whole of ${describeUrl(judged.target.canonicalUrl)} with only part of it (${passed['content-range'] ?? 'no Content-Range'}).`,
      details: { status: 206, reason: 'partial-content', url: describeUrl(judged.target.canonicalUrl) },
    });
  }
  delete passed['content-range'];
  passed['content-length'] = String(range.total ?? range.end + 1);
  return { status: 200, headers: passed, body: response.body };
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Only the listed response headers cross the broker (never Set-Cookie or auth challenges). */
function passHeaders(upstream: UpstreamResponse['headers']): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of PASSED_RESPONSE_HEADERS) {
    const value = firstValue(upstream[name]);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}
