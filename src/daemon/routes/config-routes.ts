import type { FastifyInstance } from 'fastify';
import { MERGE_PATCH_CONTENT_TYPE, type ConfigView } from '../../protocol/config-api.js';
import type { ConfigApi } from '../config-control.js';

/**
 * `GET /v1/config` (the file's content, the effective config, ETag) and `PATCH /v1/config` (a JSON
 * merge patch with If-Match). Owner socket only (route-scopes.ts): config may hold proxy credentials.
 */
export function registerConfigRoutes(app: FastifyInstance, config: ConfigApi): void {
  // Encapsulated: the merge-patch media type is parsed (as JSON, with the same prototype-poisoning
  // refusal) only on these routes.
  void app.register(async (scope) => {
    scope.addContentTypeParser(MERGE_PATCH_CONTENT_TYPE, { parseAs: 'string' }, scope.getDefaultJsonParser('error', 'error'));

    scope.get('/v1/config', async (_request, reply): Promise<ConfigView> => {
      const view = await config.view();
      void reply.header('etag', view.etag).header('cache-control', 'no-store');
      return view;
    });

    scope.patch('/v1/config', async (request, reply): Promise<ConfigView> => {
      const ifMatch = request.headers['if-match'];
      const view = await config.patch(Array.isArray(ifMatch) ? ifMatch.join(', ') : ifMatch, request.body);
      void reply.header('etag', view.etag).header('cache-control', 'no-store');
      return view;
    });
  });
}
