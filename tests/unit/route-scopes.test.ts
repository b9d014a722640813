import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { routesOf } from '../../src/daemon/listener-auth.js';
import { ROUTE_ACCESS, routeAccess, routeKey } from '../../src/daemon/route-scopes.js';
import { buildServer } from '../../src/daemon/server.js';
import { testServerDeps } from '../helpers/server-deps.js';

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

  it('the table has no entry without a registered route, and the scopes follow the design', async () => {
    app = await buildServer(testServerDeps());
    await app.ready();
    // Derived from what the server registers, not a copy of the table: a stale entry (a route that
    // was renamed or removed) shows up here, a new route in the test above.
    const registered = new Set(routesOf(app).map((r) => routeKey(r.method, r.url)));
    expect(Object.keys(ROUTE_ACCESS).filter((key) => !registered.has(key))).toEqual([]);
    const byScope = (access: string): string[] => [...registered].filter((key) => ROUTE_ACCESS[key] === access).sort();
    // The decisions that matter for safety: only the owner manages client tokens, reads or changes
    // the config (it may hold proxy credentials) and answers hello; only token:write touches the
    // token; reading never needs more than a read scope.
    expect(byScope('owner')).toEqual(['DELETE /v1/client-tokens/:', 'GET /v1/client-tokens', 'GET /v1/config', 'GET /v1/hello', 'PATCH /v1/config', 'POST /v1/client-tokens']);
    expect(byScope('token:write')).toEqual(['DELETE /v1/token', 'PUT /v1/token']);
    for (const key of registered) {
      if (key.startsWith('GET ') && ROUTE_ACCESS[key] !== 'owner') expect(ROUTE_ACCESS[key], key).toMatch(/:read$|^fetch$|^download$/);
      if (!key.startsWith('GET ')) expect(ROUTE_ACCESS[key], key).not.toMatch(/:read$/);
    }
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
