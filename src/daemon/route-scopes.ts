import type { ClientScope } from '../protocol/client-tokens.js';

/**
 * What a route needs on an extra listener: a client token scope, or `owner` (only the owner's own
 * socket, whatever the token). The owner's socket needs nothing: its file permissions guard it.
 */
export type RouteAccess = ClientScope | 'owner';

/**
 * THE table: every route of the socket API (DESIGN section 5) and the scope it needs on an extra
 * listener. Keys are `METHOD /url` as registered with fastify; parameter names do not matter
 * (`/v1/sources/:name` and `/v1/sources/:id` are the same key). A route missing here is refused on
 * extra listeners (deny by default), and tests/route-scopes.test.ts fails for every route that
 * buildServer registers without an entry — so a new route cannot ship without a decision.
 *
 * Decisions where the design was silent:
 * - `GET /v1/token` is `status:read`: it is token metadata (state, ID, description, expiry), the
 *   same facts `GET /v1/status` already shows per server, never the token.
 * - `GET /v1/events` is `status:read`: the events are the push form of status (token state
 *   changes, refresh results, shutdown), no more.
 * - `GET /v1/apps` is `sources:read` (it is the content of the source indexes); downloading a
 *   tarball is `fetch`, like any other download.
 * - Daemon-written downloads (`/v1/downloads`) need `download`, and on top of the scope the
 *   target must lie under one of the listener's `downloadDirs` (checked by the download route).
 * - Managing client tokens is `owner` only: a client token must never mint or revoke client tokens.
 * - `GET`/`PATCH /v1/config` are `owner` only (DESIGN section 3): config may hold proxy
 *   credentials, and it decides where the token is sent.
 */
export const ROUTE_ACCESS: Readonly<Record<string, RouteAccess>> = {
  'GET /v1/status': 'status:read',
  // The hello key is the owner's: clients of extra listeners cannot read it and do not ask.
  'GET /v1/hello': 'owner',
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
  'GET /v1/apps/:/:/icon': 'sources:read',
  'GET /v1/apps/:/:/release-notes': 'sources:read',
  'GET /v1/apps/:/:/tarball': 'fetch',
  'GET /v1/fetch': 'fetch',
  'GET /v1/fetches/:': 'fetch',
  'POST /v1/downloads': 'download',
  'GET /v1/downloads/:': 'download',
  'DELETE /v1/downloads/:': 'download',
  'GET /v1/client-tokens': 'owner',
  'POST /v1/client-tokens': 'owner',
  'DELETE /v1/client-tokens/:': 'owner',
  'GET /v1/config': 'owner',
  'PATCH /v1/config': 'owner',
};

/**
 * Routes that a second scope opens too, for a narrower view: a `download`-only token may open the
 * event stream and receives only its own downloads' events (events-routes.ts filters; DESIGN
 * section 5).
 */
export const ALSO_OPEN_TO: Readonly<Record<string, ClientScope>> = {
  'GET /v1/events': 'download',
};

/** The second scope that opens a route, if any. */
export function routeAlsoOpenTo(method: string, url: string): ClientScope | undefined {
  const key = routeKey(method, url);
  return Object.hasOwn(ALSO_OPEN_TO, key) ? ALSO_OPEN_TO[key] : undefined;
}

/** The table key of a route: HEAD shares its GET route's entry, parameter names are dropped. */
export function routeKey(method: string, url: string): string {
  const verb = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
  const path = url.replace(/:[^/]+/g, ':').replace(/\/+$/, '') || '/';
  return `${verb} ${path}`;
}

/** The access a route needs, or undefined when the table has no entry (refused on extra listeners). */
export function routeAccess(method: string, url: string): RouteAccess | undefined {
  const key = routeKey(method, url);
  return Object.hasOwn(ROUTE_ACCESS, key) ? ROUTE_ACCESS[key] : undefined;
}
