import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { DownloadService } from '../../broker/download-service.js';
import type { Config } from '../../protocol/config-schema.js';
import { DownloadIdParamsSchema, DownloadRequestSchema, type DownloadOutcome, type DownloadProgressView } from '../../protocol/downloads.js';
import { BrokerError } from '../../protocol/errors.js';
import { extraListenerOf, type ExtraListenerTag } from '../listener-auth.js';
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
 * lie under one of that listener's `downloadDirs`.
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
    return deps.downloads.download(body, { allowedDirs, signal: controller.signal });
  });

  app.get('/v1/downloads/:id', { exposeHeadRoute: false }, async (request): Promise<DownloadProgressView> => {
    const { id } = parseRequestPart(DownloadIdParamsSchema, request.params, 'params');
    return deps.downloads.get(id) ?? notFound(id);
  });

  app.delete('/v1/downloads/:id', async (request): Promise<DownloadProgressView> => {
    const { id } = parseRequestPart(DownloadIdParamsSchema, request.params, 'params');
    return deps.downloads.cancel(id) ?? notFound(id);
  });
}

function notFound(id: string): never {
  throw new BrokerError('BROKER_NOT_FOUND', { message: `No recent download has the id ${id}.`, hint: 'Only the last few hundred downloads are remembered, and only until the daemon restarts.' });
}
