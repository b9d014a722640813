import type { FastifyInstance } from 'fastify';
import {
  AddSourceBodySchema,
  AppsQuerySchema,
  RefreshSourcesBodySchema,
  SourceParamsSchema,
  type AppView,
  type SourceRefreshResult,
  type SourceRemoved,
  type SourceView,
} from '../../protocol/sources.js';
import type { ServerDeps } from '../server.js';
import { parseRequestPart } from '../validate.js';

const ADD_HINT = 'Send {"url": "<URL of a source.json>"} as JSON; the CLI does this with `tokenbroker sources add URL`.';
const REFRESH_HINT = 'Send {} to refresh every source, or {"name": "<source>"} for one.';

/** App sources and the app index (DESIGN sections 5 and 6). */
export function registerSourceRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.get('/v1/sources', async (): Promise<SourceView[]> => deps.sources.list());

  app.post('/v1/sources', async (request, reply): Promise<SourceView> => {
    const body = parseRequestPart(AddSourceBodySchema, request.body, 'body', ADD_HINT);
    const view = await deps.sources.add(body.url);
    void reply.code(201);
    return view;
  });

  app.delete('/v1/sources/:name', async (request): Promise<SourceRemoved> => {
    const params = parseRequestPart(SourceParamsSchema, request.params, 'params', 'Source names are 1-64 characters of A-Z, a-z, 0-9, ".", "_", "-".');
    return deps.sources.remove(params.name);
  });

  app.post('/v1/sources/refresh', async (request): Promise<SourceRefreshResult[]> => {
    const body = parseRequestPart(RefreshSourcesBodySchema, request.body, 'body', REFRESH_HINT);
    return deps.sources.refresh(body.name);
  });

  app.get('/v1/apps', async (request): Promise<AppView[]> => {
    const query = parseRequestPart(AppsQuerySchema, request.query, 'query');
    return deps.sources.apps(query.source);
  });
}
