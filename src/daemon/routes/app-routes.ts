import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AppAssetKind } from '../../broker/app-assets.js';
import { toAppView } from '../../broker/app-views.js';
import { resolveTarball } from '../../broker/app-tarball.js';
import type { FetchService } from '../../broker/fetch-service.js';
import type { SourceService } from '../../broker/source-service.js';
import { AppParamsSchema, AppVersionQuerySchema, type AppDetail } from '../../protocol/sources.js';
import { parseRequestPart } from '../validate.js';
import { VERIFIED_BY_HEADER } from '../../protocol/downloads.js';
import { serveFetch } from './fetch-routes.js';
import type { SecretScrubber } from '../../broker/secret-scrubber.js';

/**
 * `GET /v1/apps/:source/:name?version=` (the app info whole, as in the list, plus that version's
 * tarball: URL, shasum, file name), its icon and release notes as kept at the last refresh
 * (served offline), and `GET /v1/apps/:source/:name/tarball?version=` (the tarball itself,
 * verified against the index's `shasum` through the fetch pipeline and its cache).
 */
export function registerAppRoutes(app: FastifyInstance, sources: SourceService, fetchService: FetchService, scrubber: SecretScrubber): void {
  app.get('/v1/apps/:source/:name', async (request): Promise<AppDetail> => {
    const params = parseRequestPart(AppParamsSchema, request.params, 'params');
    const query = parseRequestPart(AppVersionQuerySchema, request.query, 'query');
    const indexed = sources.app(params.source, params.name);
    return { ...toAppView(indexed.source, indexed), tarball: resolveTarball(indexed, query.version) };
  });

  const serveAsset = (kind: AppAssetKind) => async (request: { params: unknown }, reply: FastifyReply): Promise<Buffer> => {
    const params = parseRequestPart(AppParamsSchema, request.params, 'params');
    const asset = await sources.asset(params.source, params.name, kind);
    // Upstream content: never sniffed, never run as a page.
    void reply.header('content-type', asset.contentType).header('x-content-type-options', 'nosniff').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox");
    return asset.bytes;
  };
  app.get('/v1/apps/:source/:name/icon', serveAsset('icon'));
  app.get('/v1/apps/:source/:name/release-notes', serveAsset('release-notes'));

  app.get('/v1/apps/:source/:name/tarball', { exposeHeadRoute: false }, async (request, reply) => {
    const params = parseRequestPart(AppParamsSchema, request.params, 'params');
    const query = parseRequestPart(AppVersionQuerySchema, request.query, 'query', 'Call GET /v1/apps/<source>/<name>/tarball[?version=<version>].');
    const { tarball, token } = sources.tarball(params.source, params.name, query.version);
    await serveFetch(request, reply, fetchService, {
      url: tarball.tarballUrl,
      token,
      ...(tarball.shasum === undefined ? {} : { sha1: tarball.shasum }),
      // What the daemon verified the stream against (DESIGN section 6): the index's shasum, or
      // nothing; without a shasum the server's X-Checksum-Sha1 is passed on for the client to check.
      extraHeaders: { 'content-disposition': `attachment; filename="${tarball.fileName}"`, 'x-tokenbroker-app-version': tarball.version, [VERIFIED_BY_HEADER]: tarball.shasum === undefined ? 'none' : 'shasum' },
    }, scrubber);
  });
}
