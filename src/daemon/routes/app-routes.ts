import type { FastifyInstance } from 'fastify';
import { resolveTarball } from '../../broker/app-tarball.js';
import type { FetchService } from '../../broker/fetch-service.js';
import type { SourceService } from '../../broker/source-service.js';
import { AppParamsSchema, AppVersionQuerySchema, type AppDetail } from '../../protocol/sources.js';
import { parseRequestPart } from '../validate.js';
import { VERIFIED_BY_HEADER } from '../../protocol/downloads.js';
import { serveFetch } from './fetch-routes.js';

/**
 * `GET /v1/apps/:source/:name?version=` (the app and that version's tarball: URL, shasum, file
 * name) and `GET /v1/apps/:source/:name/tarball?version=` (the tarball itself, verified against
 * the index's `shasum` through the fetch pipeline and its cache).
 */
export function registerAppRoutes(app: FastifyInstance, sources: SourceService, fetchService: FetchService | undefined): void {
  app.get('/v1/apps/:source/:name', async (request): Promise<AppDetail> => {
    const params = parseRequestPart(AppParamsSchema, request.params, 'params');
    const query = parseRequestPart(AppVersionQuerySchema, request.query, 'query');
    const indexed = sources.app(params.source, params.name);
    const view = sources.apps(indexed.source).find((a) => a.name === indexed.info.name);
    const tarball = resolveTarball(indexed, query.version);
    return { ...(view ?? { source: indexed.source, name: indexed.info.name, displayName: indexed.info.displayName, description: indexed.info.description, latestVersion: indexed.info.latestVersion, versions: Object.keys(indexed.info.versions), withdrawn: indexed.withdrawn }), tarball };
  });

  if (fetchService === undefined) return;
  app.get('/v1/apps/:source/:name/tarball', { exposeHeadRoute: false }, async (request, reply) => {
    const params = parseRequestPart(AppParamsSchema, request.params, 'params');
    const query = parseRequestPart(AppVersionQuerySchema, request.query, 'query', 'Call GET /v1/apps/<source>/<name>/tarball[?version=<version>].');
    const tarball = resolveTarball(sources.app(params.source, params.name), query.version);
    await serveFetch(request, reply, fetchService, {
      url: tarball.tarballUrl,
      sha1: tarball.shasum,
      // What the daemon verified the stream against (DESIGN section 6): the index's shasum, or
      // nothing; without a shasum the server's X-Checksum-Sha1 is passed on for the client to check.
      extraHeaders: { 'content-disposition': `attachment; filename="${tarball.fileName}"`, 'x-tokenbroker-app-version': tarball.version, [VERIFIED_BY_HEADER]: tarball.shasum === undefined ? 'none' : 'shasum' },
    });
  });
}
