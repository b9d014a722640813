import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { clientTokenPrincipal, OWNER, type DownloadPrincipal, type DownloadService } from '../../broker/download-service.js';
import type { Config } from '../../protocol/config-schema.js';
import { DownloadIdParamsSchema, DownloadRequestSchema, type DownloadOutcome, type DownloadProgressView } from '../../protocol/downloads.js';
import { BrokerError } from '../../protocol/errors.js';
import { clientTokenOf, extraListenerOf, type ExtraListenerTag } from '../listener-auth.js';
import { parseRequestPart } from '../validate.js';

export interface DownloadRouteDeps {
  downloads: DownloadService;
  getConfig(): Readonly<Config>;
  listenerOf?: ((raw: IncomingMessage) => ExtraListenerTag | undefined) | undefined;
}

/**
 * `POST /v1/downloads` (answers when the file is in place, or with the envelope of why not),
 * `GET /v1/downloads/:id` (progress) and `DELETE /v1/downloads/:id` (cancel; the `.part` is kept).
 * On an extra listener the scope check already ran (route-scopes.ts); here the target must also
 * lie under one of that listener's `downloadDirs`, and a download is visible (progress, cancel)
 * to the owner's socket and to the client token that started it only.
 */
export function registerDownloadRoutes(app: FastifyInstance, deps: DownloadRouteDeps): void {
  const listenerOf = deps.listenerOf ?? extraListenerOf;

  app.post('/v1/downloads', async (request, reply): Promise<DownloadOutcome> => {
    const body = parseRequestPart(DownloadRequestSchema, request.body, 'body', 'POST {"url": "<absolute URL>" | "source": S, "app": A, "version"?: V, "path": "/absolute/file", "sha1"?, "sha256"?}.');
    const listener = listenerOf(request.raw);
    const allowedDirs = listener === undefined ? undefined : (deps.getConfig().listeners.find((l) => l.path === listener.path)?.downloadDirs ?? []);
    const controller = new AbortController();
    // The RESPONSE's close: the client going away cancels the download (its `.part` is kept).
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort();
    });
    return deps.downloads.download(body, { principal: principalOf(request.raw, listener), allowedDirs, signal: controller.signal });
  });

  app.get('/v1/downloads/:id', { exposeHeadRoute: false }, async (request): Promise<DownloadProgressView> => {
    const { id } = parseRequestPart(DownloadIdParamsSchema, request.params, 'params');
    return deps.downloads.get(id, principalOf(request.raw, listenerOf(request.raw))) ?? notFound(id);
  });

  app.delete('/v1/downloads/:id', async (request): Promise<DownloadProgressView> => {
    const { id } = parseRequestPart(DownloadIdParamsSchema, request.params, 'params');
    return deps.downloads.cancel(id, principalOf(request.raw, listenerOf(request.raw))) ?? notFound(id);
  });
}

/**
 * Who asks: the owner's socket, or the client token the request was authorized with (a request
 * on an extra listener always has one: the auth hook refused it otherwise).
 */
export function principalOf(raw: IncomingMessage, listener: ExtraListenerTag | undefined): DownloadPrincipal {
  const grant = clientTokenOf(raw);
  if (grant !== undefined) return clientTokenPrincipal(grant.id);
  if (listener !== undefined) throw new BrokerError('BROKER_UNAUTHORIZED');
  return OWNER;
}

/** Unknown, and a download another caller started: the same answer (ids are not confirmed to others). */
function notFound(id: string): never {
  throw new BrokerError('BROKER_NOT_FOUND', { message: `No recent download has the id ${id}.`, hint: 'Only the last few hundred downloads are remembered, and only until the daemon restarts.' });
}
