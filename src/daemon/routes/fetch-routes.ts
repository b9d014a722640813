import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FetchService } from '../../broker/fetch-service.js';
import { BrokerError } from '../../protocol/errors.js';
import { FetchIdParamsSchema, FetchQuerySchema, FetchRequestHeadersSchema, FORWARDED_REQUEST_HEADERS, REQUEST_ID_HEADER, type FetchRecord } from '../../protocol/fetch.js';
import { VERSION, VERSION_HEADER } from '../../protocol/version.js';
import { parseRequestPart } from '../validate.js';
import type { SecretScrubber } from '../../broker/secret-scrubber.js';
import type { TokenUse } from '../../broker/upstream-exchange.js';

/**
 * Relayed upstream headers (ETag, X-Checksum-*, Content-Disposition...) are the upstream's text:
 * one that carries a token (a proxy reflecting the request) is dropped, not passed on.
 */
export function withoutSecretHeaders<H extends Record<string, unknown>>(headers: H, scrubber: SecretScrubber): H {
  return Object.fromEntries(Object.entries(headers).filter(([, value]) => !scrubber.leaks(Array.isArray(value) ? value.join(', ') : String(value)))) as H;
}

/**
 * `GET /v1/fetch?url=&sha1=&sha256=` and `GET /v1/fetches/:id`. The route validates, hands the
 * rest to the FetchService, and pipes the body to the socket with backpressure. Errors before the
 * first byte go through the server's error handler as envelopes; after it, the connection is cut.
 */
export function registerFetchRoutes(app: FastifyInstance, service: FetchService, scrubber: SecretScrubber): void {
  // No automatic HEAD route: it would run the whole GET upstream and throw the body away.
  app.get('/v1/fetch', { exposeHeadRoute: false }, async (request, reply) => {
    const query = parseRequestPart(FetchQuerySchema, request.query, 'query', 'Call GET /v1/fetch?url=<absolute URL>[&sha256=<hex>|&sha1=<hex>].');
    await serveFetch(request, reply, service, query, scrubber);
  });

  app.get('/v1/fetches/:id', { exposeHeadRoute: false }, async (request): Promise<FetchRecord> => {
    const { id } = parseRequestPart(FetchIdParamsSchema, request.params, 'params');
    const record = service.ledger.get(id);
    if (record === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', {
        message: `No recent fetch has the id ${id}.`,
        hint: 'Only the last few hundred fetches are remembered, and only until the daemon restarts.',
      });
    }
    return record;
  });
}


export interface FetchTarget {
  url: string;
  sha1?: string | undefined;
  sha256?: string | undefined;
  /** Added to a successful answer (e.g. Content-Disposition for app tarballs). */
  extraHeaders?: Record<string, string>;
  /** The token the fetch may use (a third party's tarball: none); default the server's. */
  token?: TokenUse | undefined;
}

/**
 * Answers one request with a fetch through the FetchService: shared by `/v1/fetch` and the app
 * tarball route, so both get the same policy, token, verification, cache and abort handling.
 */
export async function serveFetch(request: FastifyRequest, reply: FastifyReply, service: FetchService, target: FetchTarget, scrubber: SecretScrubber): Promise<void> {
  // The one id of this request: fastify's (genReqId), already in the header and on request.log.
  const requestId = request.id;
  const headers = parseRequestPart(FetchRequestHeadersSchema, pickForwarded(request.headers), 'headers');

  const res = reply.raw;
  const controller = new AbortController();
  // Set once the service answered: then it, not the abort signal, records the client leaving.
  const listener: { clientGone?: () => void } = {};
  // The RESPONSE's close: the request's fires as soon as its (empty) body is read.
  res.once('close', () => {
    if (res.writableFinished) return;
    listener.clientGone?.();
    controller.abort();
  });

  let response;
  try {
    response = await service.fetch({ requestId, url: target.url, sha1: target.sha1, sha256: target.sha256, headers, signal: controller.signal, token: target.token });
  } catch (err) {
    if (controller.signal.aborted) {
      // Nobody is left to answer.
      reply.hijack();
      res.destroy();
      return;
    }
    throw err;
  }
  listener.clientGone = response.clientGone;
  reply.hijack();
  if (res.destroyed) {
    response.clientGone();
    return;
  }
  res.writeHead(response.status, { ...withoutSecretHeaders(response.headers, scrubber), ...(response.status < 300 ? target.extraHeaders : {}), [VERSION_HEADER]: VERSION, [REQUEST_ID_HEADER]: requestId });
  response.send(res);
}

/** Only the headers that may go upstream; Authorization and Cookie from local clients never do. */
function pickForwarded(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      throw new BrokerError('BROKER_BAD_REQUEST', { message: `The ${name} header was sent more than once.`, details: { field: `headers.${name}` } });
    }
    picked[name] = value;
  }
  return picked;
}
