import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { routesOf } from '../src/daemon/listener-auth.js';
import { ROUTE_ACCESS, routeAccess, routeKey } from '../src/daemon/route-scopes.js';
import { buildServer } from '../src/daemon/server.js';
import { testServerDeps } from './helpers/server-deps.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('route scope table', () => {
  it('every route buildServer registers has an entry (a new route must declare its scope here)', async () => {
    app = await buildServer(testServerDeps());
    await app.ready();
    const routes = routesOf(app);
    // The collection itself works: it saw the routes that exist on every branch.
    const keys = routes.map((r) => routeKey(r.method, r.url));
    expect(keys).toEqual(expect.arrayContaining(['GET /v1/status', 'GET /v1/token', 'PUT /v1/token', 'DELETE /v1/token', 'GET /v1/events', 'POST /v1/client-tokens', 'GET /v1/client-tokens', 'DELETE /v1/client-tokens/:', 'GET /v1/fetch', 'GET /v1/fetches/:']));
    const missing = routes.filter((r) => routeAccess(r.method, r.url) === undefined).map((r) => `${r.method} ${r.url}`);
    expect(missing, 'add these routes to ROUTE_ACCESS in src/daemon/route-scopes.ts').toEqual([]);
  });

  it('covers every route of the design (DESIGN section 5 and 8, plus the app detail route) with the decided scope', () => {
    expect(ROUTE_ACCESS).toEqual({
      'GET /v1/status': 'status:read',
      'GET /v1/token': 'status:read',
      'PUT /v1/token': 'token:write',
      'DELETE /v1/token': 'token:write',
      'GET /v1/events': 'status:read',
      'GET /v1/sources': 'sources:read',
      'POST /v1/sources': 'sources:write',
      'DELETE /v1/sources/:': 'sources:write',
      'POST /v1/sources/refresh': 'sources:write',
      'GET /v1/apps': 'sources:read',
      'GET /v1/apps/:/:': 'sources:read',
      'GET /v1/apps/:/:/tarball': 'fetch',
      'GET /v1/fetch': 'fetch',
      'GET /v1/fetches/:': 'fetch',
      'POST /v1/downloads': 'download',
      'GET /v1/downloads/:': 'download',
      'DELETE /v1/downloads/:': 'download',
      'GET /v1/client-tokens': 'owner',
      'POST /v1/client-tokens': 'owner',
      'DELETE /v1/client-tokens/:': 'owner',
    });
  });

  it('keys ignore parameter names and map HEAD to GET; unknown routes have no entry', () => {
    expect(routeAccess('DELETE', '/v1/sources/:name')).toBe('sources:write');
    expect(routeAccess('GET', '/v1/apps/:src/:app/tarball')).toBe('fetch');
    expect(routeAccess('HEAD', '/v1/status')).toBe('status:read');
    expect(routeAccess('get', '/v1/status/')).toBe('status:read');
    expect(routeAccess('POST', '/v1/status')).toBeUndefined();
    expect(routeAccess('GET', '/v1/sources/:name')).toBeUndefined();
    expect(routeAccess('GET', '/v1/toString')).toBeUndefined();
    expect(routeAccess('GET', '/v1/__proto__')).toBeUndefined();
  });
});
