import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import fastifyWebsocket from '@fastify/websocket';
import type { EventBus } from '../broker/event-bus.js';
import type { Clock } from '../broker/ports.js';
import type { SourceService } from '../broker/source-service.js';
import type { TokenService } from '../broker/token-service.js';
import type { Config } from '../protocol/config-schema.js';
import { BrokerError, isBrokerError, retryAfterOf } from '../protocol/errors.js';
import { VERSION, VERSION_HEADER } from '../protocol/version.js';
import { REQUEST_ID_HEADER } from '../protocol/fetch.js';
import type { Paths } from '../protocol/paths.js';
import type { StatusSections } from '../protocol/status.js';
import type { ClientTokenService } from '../broker/client-tokens.js';
import { installListenerAuth, type ExtraListenerTag } from './listener-auth.js';
import { registerClientTokenRoutes } from './routes/client-token-routes.js';
import { registerEventsRoutes } from './routes/events-routes.js';
import { registerSourceRoutes } from './routes/source-routes.js';
import { registerStatusRoutes } from './routes/status-routes.js';
import { registerTokenRoutes } from './routes/token-routes.js';
import type { FetchService } from '../broker/fetch-service.js';
import type { SecretScrubber } from '../broker/secret-scrubber.js';
import { registerAppRoutes } from './routes/app-routes.js';
import { registerFetchRoutes } from './routes/fetch-routes.js';
import type { DownloadService } from '../broker/download-service.js';
import { registerDownloadRoutes } from './routes/download-routes.js';
import { registerConfigRoutes } from './routes/config-routes.js';
import type { ConfigApi } from './config-control.js';
import { registerHelloRoutes } from './routes/hello-routes.js';

/** Everything the HTTP layer needs; wired in main.ts, faked in tests. */
export interface ServerDeps {
  logger: Logger;
  /** A getter, because SIGHUP can swap the config while the server runs. */
  getConfig(): Readonly<Config>;
  /** `GET /v1/config`, `PATCH /v1/config`: the config file at run time (config-control.ts). */
  configApi: ConfigApi;
  paths: Paths;
  clock: Clock;
  /** Epoch ms when the daemon started. */
  startedAt: number;
  /** How the main socket was obtained, for status. */
  socketActivated: boolean;
  /** The services' sections of `GET /v1/status` (secret store, sources, listeners, cache...). */
  statusSections(): Promise<StatusSections>;
  /** `GET /v1/fetch`, `GET /v1/fetches/:id` and app tarballs. */
  fetchService: FetchService;
  /** `POST /v1/downloads`, `GET/DELETE /v1/downloads/:id`. */
  downloadService: DownloadService;
  /** The token lifecycle (the only holder of the raw token). */
  tokens: TokenService;
  /** Domain events, fanned out to `GET /v1/events`. */
  events: EventBus;
  /** App sources, their refresh and the app index. */
  sources: SourceService;
  /** Scoped client tokens for extra listeners (DESIGN section 8). */
  clientTokens: ClientTokenService;
  /** Redacts every token the daemon knows from answers, relayed headers and events. */
  scrubber: SecretScrubber;
  /**
   * Which extra listener a request came in on: `extraListenerOf` (the socket tag) in the daemon;
   * inject() tests, which have no socket, pass their own.
   */
  listenerOf: (raw: IncomingMessage) => ExtraListenerTag | undefined;
  /** This start's hello key, once it is written to `state/daemon.key` (routes/hello-routes.ts). */
  helloKey: () => Promise<Uint8Array>;
}

/** Token values are short; a few KiB is plenty for any JSON body the API takes. */
export const BODY_LIMIT_BYTES = 64 * 1024;

const ALLOWED_HOST = /^localhost(:\d{1,5})?$/i;

/**
 * Builds the API without listening, so tests use `inject()`. The raw HTTP server is created here
 * (serverFactory) and opened by `listen.ts`, which needs to bind synchronously under a umask and
 * to accept an inherited fd from systemd.
 */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Our onResponse hook logs requests at debug; fastify's own per-request info lines are noise here.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    bodyLimit: BODY_LIMIT_BYTES,
    // One id per request: ours, never a client's (requestIdHeader off), answered in
    // X-Tokenbroker-Request-Id and carried as `requestId` (the LogController's label) by every
    // request.log line and by the services that receive it.
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Requests are local and small; a slow client must not hold a connection forever.
    connectionTimeout: 0,
    requestTimeout: 0,
    keepAliveTimeout: 5_000,
    return503OnClosing: true,
    serverFactory: (handler) => createLocalHttpServer(handler as (req: IncomingMessage, res: ServerResponse) => void),
    // The router's own refusals (a path parameter over maxParamLength, a malformed escape in one)
    // would otherwise bypass the error handler and answer without the envelope.
    frameworkErrors: (error, request, reply) => {
      const refused = new BrokerError('BROKER_BAD_REQUEST', {
        message: error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'A path parameter is too long.' : 'The request path is not valid.',
        hint: 'Path parameters are short names (sources: 1-64 characters of A-Z, a-z, 0-9, ".", "_", "-").',
        details: { reason: error.code },
      });
      void (reply as FastifyReply).header(VERSION_HEADER, VERSION).header(REQUEST_ID_HEADER, request.id).code(refused.status).type('application/json; charset=utf-8').send(refused.toEnvelope());
    },
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header(VERSION_HEADER, VERSION).header(REQUEST_ID_HEADER, request.id);
    refuseBrowserRequests(request);
  });
  // Before any route: it records every route (route table test) and guards extra listeners.
  installListenerAuth(app, { clientTokens: deps.clientTokens, listenerOf: deps.listenerOf });

  installScrubbing(app, deps.scrubber);

  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    const brokerError = toBrokerError(error);
    if (brokerError.code === 'BROKER_INTERNAL') {
      request.log.error({ err: error, method: request.method, url: redactUrl(request.url) }, 'request failed');
    }
    void reply.header(VERSION_HEADER, VERSION).header(REQUEST_ID_HEADER, request.id);
    // Every envelope that carries details.retryAfter also says it the HTTP way.
    const retryAfter = retryAfterOf(brokerError);
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    return reply.code(brokerError.status).type('application/json; charset=utf-8').send(brokerError.toEnvelope());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new BrokerError('BROKER_NOT_FOUND', { message: `No route for ${request.method} ${request.url.split('?')[0]}.` });
    return reply.code(error.status).send(error.toEnvelope());
  });

  await app.register(fastifyWebsocket, { options: { maxPayload: 4096 } });
  registerStatusRoutes(app, deps);
  registerHelloRoutes(app, deps);
  registerTokenRoutes(app, deps);
  registerEventsRoutes(app, deps);
  registerFetchRoutes(app, deps.fetchService, deps.scrubber);
  registerAppRoutes(app, deps.sources, deps.fetchService, deps.scrubber);
  registerDownloadRoutes(app, { downloads: deps.downloadService, getConfig: deps.getConfig, listenerOf: deps.listenerOf });
  registerSourceRoutes(app, deps);
  registerClientTokenRoutes(app, deps);
  registerConfigRoutes(app, deps.configApi);
  return app;
}

/**
 * Every answer the API serializes (JSON bodies, error envelopes, the fetch ledger) passes here:
 * a token in it, whatever path it took from an upstream, becomes `[redacted]`, and a header that
 * carries one is dropped. A token handed in by `PUT /v1/token` is remembered before anything
 * (validation included) can echo it. Streamed fetch bodies are content and bypass this (their
 * relayed headers are filtered in fetch-routes.ts).
 */
function installScrubbing(app: FastifyInstance, scrubber: SecretScrubber): void {
  app.addHook('preValidation', async (request) => {
    const body = request.body as { token?: unknown } | undefined;
    if (typeof body === 'object' && body !== null && typeof body.token === 'string') scrubber.remember(body.token);
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined && scrubber.leaks(Array.isArray(value) ? value.join(', ') : String(value))) reply.removeHeader(name);
    }
    return typeof payload === 'string' ? scrubber.scrub(payload) : payload;
  });
}

/** A local client that has not finished its request headers after this long is cut off. */
export const HEADERS_TIMEOUT_MS = 10_000;

/**
 * The raw HTTP server for the main socket and any extra listener. requestTimeout stays off
 * (downloads can take long); slow-header clients are cut off, checked every second (the daemon
 * always uses HEADERS_TIMEOUT_MS; a test proves the cut-off with a shorter one).
 */
export function createLocalHttpServer(handler: (req: IncomingMessage, res: ServerResponse) => void, headersTimeoutMs = HEADERS_TIMEOUT_MS): Server {
  const server = createServer({ headersTimeout: headersTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: Math.min(1_000, headersTimeoutMs) }, handler);
  server.on('clientError', answerParserError);
  return server;
}

/**
 * Node's HTTP parser refuses some requests before fastify sees them (headers over the limit, a
 * garbage request line). Node's default answer is a bare `400 Bad Request`; every refusal of the
 * API carries the envelope instead (DESIGN section 5), so it is written here by hand.
 */
export function answerParserError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? 431 : timedOut ? 408 : 400;
  const refused = new BrokerError('BROKER_BAD_REQUEST', {
    message: tooLarge ? 'The request headers are too large.' : timedOut ? 'The request headers did not arrive in time.' : 'The request is not valid HTTP/1.1.',
    hint: tooLarge ? 'Local clients send a few short headers; the tokenbroker client library does this for you.' : 'Speak HTTP/1.1 to the socket; the tokenbroker client library does this for you.',
    details: { reason: error.code ?? 'parse_error', status },
  });
  const body = JSON.stringify(refused.toEnvelope());
  const reason = tooLarge ? 'Request Header Fields Too Large' : timedOut ? 'Request Timeout' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${VERSION_HEADER}: ${VERSION}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The raw server fastify built through serverFactory, for `listen.ts`. */
export function rawServer(app: FastifyInstance): Server {
  return app.server as Server;
}

/**
 * Browser defence: a web page can reach a local socket through a forwarding proxy or DNS rebinding,
 * but it cannot hide its Origin, and a rebinding attack carries a foreign Host.
 */
function refuseBrowserRequests(request: FastifyRequest): void {
  // Node keeps only the first of several Host headers; a proxy in between may have used the other.
  if (countRawHeaders(request.raw.rawHeaders, 'host') > 1) {
    throw new BrokerError('BROKER_BAD_REQUEST', { message: 'The request has more than one Host header.', hint: 'Send exactly one "Host: localhost".' });
  }
  if (request.headers.origin !== undefined) {
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: 'Requests with an Origin header are refused.',
      hint: 'Browsers cannot use tokenbroker; call it from a local program without an Origin header.',
    });
  }
  // A browser marks every request it sends; only what the user typed or the same origin is local.
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'none' && site !== 'same-origin') {
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: `Requests from a web page are refused (Sec-Fetch-Site: ${JSON.stringify(String(site).slice(0, 40))}).`,
      hint: 'Browsers cannot use tokenbroker; call it from a local program.',
    });
  }
  const host = request.headers.host;
  if (host === undefined || !ALLOWED_HOST.test(host)) {
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: `Requests must use Host: localhost (got ${host === undefined ? 'none' : JSON.stringify(host.slice(0, 100))}).`,
      hint: 'Local clients send "Host: localhost"; the tokenbroker client library does this for you.',
    });
  }
}

function countRawHeaders(rawHeaders: readonly string[] | undefined, name: string): number {
  // Injected requests (tests' injectWS) may come without rawHeaders.
  if (rawHeaders === undefined) return 0;
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name) count += 1;
  return count;
}

function toBrokerError(error: FastifyError | Error): BrokerError {
  if (isBrokerError(error)) return error;
  const fastifyError = error as FastifyError;
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own client errors: malformed JSON, body too large, wrong content type...
    return new BrokerError('BROKER_BAD_REQUEST', {
      message: clientErrorMessage(fastifyError),
      hint: fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `Bodies are limited to ${BODY_LIMIT_BYTES} bytes.` : 'Send a JSON body with Content-Type: application/json.',
      details: { reason: fastifyError.code ?? 'bad_request' },
    });
  }
  if (status === 503) {
    return new BrokerError('BROKER_INTERNAL', { message: 'The daemon is shutting down.', hint: 'Retry once it has restarted.' });
  }
  return new BrokerError('BROKER_INTERNAL', { cause: error });
}

function clientErrorMessage(error: FastifyError): string {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return `The request body is not valid JSON: ${error.message}`;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'The request body is too large.';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'The request body must be JSON (Content-Type: application/json).';
    default:
      return error.message;
  }
}

/** Query strings can carry signed URLs; logs keep only the path. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?…`;
}
