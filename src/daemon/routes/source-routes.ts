import type { FastifyInstance } from 'fastify';
import {
  AddSourceBodySchema,
  AppsQuerySchema,
  RefreshSourcesBodySchema,
  SourceParamsSchema,
  type AppView,
  type SourceAdded,
  type SourceRefreshResult,
  type SourceRemoved,
  type SourceView,
} from '../../protocol/sources.js';
import type { ServerDeps } from '../server.js';
import { parseRequestPart } from '../validate.js';

const ADD_HINT = 'Send {"url": "<URL of a source.json>"} as JSON; the CLI does this with `tokenbroker sources add URL`.';
const REFRESH_HINT = 'Send {} to refresh every source, or {"id": "<source id>"} for one.';

/** App sources and the app index (DESIGN sections 5 and 6). */
export function registerSourceRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.get('/v1/sources', async (): Promise<SourceView[]> => deps.sources.list());

  app.post('/v1/sources', async (request, reply): Promise<SourceAdded> => {
    const body = parseRequestPart(AddSourceBodySchema, request.body, 'body', ADD_HINT);
    const added = await deps.sources.add(body.url);
    void reply.code(201);
    return added;
  });

  app.delete('/v1/sources/:id', async (request): Promise<SourceRemoved> => {
    const params = parseRequestPart(SourceParamsSchema, request.params, 'params', 'Name the source by its id (`tokenbroker sources list`) or its exact display name.');
    return deps.sources.remove(params.id);
  });

  app.post('/v1/sources/refresh', async (request): Promise<SourceRefreshResult[]> => {
    const body = parseRequestPart(RefreshSourcesBodySchema, request.body, 'body', REFRESH_HINT);
    return deps.sources.refresh(body.id);
  });

  app.get('/v1/apps', async (request): Promise<AppView[]> => {
    const query = parseRequestPart(AppsQuerySchema, request.query, 'query');
    return deps.sources.apps(query.source);
  });
}
