import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ClientTokenService, type ClientTokenGrant } from '../broker/client-tokens.js';
import { BrokerError } from '../protocol/errors.js';
import { routeAccess, routeAlsoOpenTo } from './route-scopes.js';

/** Marks a connection that arrived on an extra listener (set in extra-listeners.ts). */
const EXTRA_LISTENER = Symbol('tokenbroker.extraListener');

/** Which extra listener a connection came in on. Connections without a tag are the owner's socket. */
export interface ExtraListenerTag {
  path: string;
}

type TaggedSocket = Socket & { [EXTRA_LISTENER]?: ExtraListenerTag };

export function tagExtraListener(socket: Socket, tag: ExtraListenerTag): void {
  (socket as TaggedSocket)[EXTRA_LISTENER] = tag;
}

/** The client token a request on an extra listener was authorized with (set by the auth hook). */
const grants = new WeakMap<IncomingMessage, ClientTokenGrant>();

/** The verified client token of a request on an extra listener; undefined on the owner's socket. */
export function clientTokenOf(raw: IncomingMessage): ClientTokenGrant | undefined {
  return grants.get(raw);
}

/** The extra listener a request arrived on, or undefined for the owner's socket. */
export function extraListenerOf(raw: IncomingMessage): ExtraListenerTag | undefined {
  return (raw.socket as TaggedSocket | undefined)?.[EXTRA_LISTENER];
}

export interface ListenerAuthDeps {
  clientTokens: ClientTokenService;
  /** Which extra listener a request came in on: extraListenerOf (the socket tag) in the daemon. */
  listenerOf: (raw: IncomingMessage) => ExtraListenerTag | undefined;
}

/** A route as fastify registered it, for the route-table test and the start-up check. */
export interface RegisteredRoute {
  method: string;
  url: string;
}

const registeredRoutes = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route registered on `app` (and its child plugins) since installListenerAuth. */
export function routesOf(app: FastifyInstance): readonly RegisteredRoute[] {
  return registeredRoutes.get(app) ?? [];
}

/**
 * Guards extra listeners. Must be installed before any route is registered.
 * - Owner's socket: nothing to check (its 0600 mode and 0700 directory guard it), and an
 *   Authorization header from a local client is simply ignored.
 * - Extra listener: `Authorization: Bearer tbk_...` must be a live client token (else
 *   BROKER_UNAUTHORIZED, one message whatever was wrong), and the route must be in the route table
 *   with a scope the token has (else BROKER_FORBIDDEN). Client-token management is owner-only.
 */
export function installListenerAuth(app: FastifyInstance, deps: ListenerAuthDeps): void {
  const routes: RegisteredRoute[] = [];
  registeredRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) routes.push({ method, url: route.url });
  });
  const listenerOf = deps.listenerOf;
  app.addHook('onRequest', async (request, reply) => {
    const listener = listenerOf(request.raw);
    if (listener !== undefined) authorizeOnExtraListener(request, reply, deps.clientTokens);
    // Checked (extra listener) or meaningless (owner's socket): no handler or log line needs it,
    // and nothing can pass a client's Authorization on upstream by mistake (DESIGN section 4).
    delete request.headers.authorization;
    delete request.raw.headers.authorization;
  });
}

function authorizeOnExtraListener(request: FastifyRequest, reply: FastifyReply, clientTokens: ClientTokenService): void {
  const grant = clientTokens.authenticate(request.headers.authorization);
  if (grant === undefined) {
    void reply.header('www-authenticate', 'Bearer realm="tokenbroker"');
    throw new BrokerError('BROKER_UNAUTHORIZED');
  }
  grants.set(request.raw, grant);
  const url = request.routeOptions.url;
  // No such route: with a valid token, the normal 404 envelope follows.
  if (url === undefined) return;
  const access = routeAccess(request.method, url);
  if (access === 'owner') {
    const clientTokens = url.startsWith('/v1/client-tokens');
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: clientTokens ? 'Client tokens can only be managed on the owner\'s socket.' : `${request.method} ${url} is only available on the owner's socket.`,
      hint: clientTokens ? 'Run `tokenbroker client-token ...` as the user who runs the daemon, on its own socket.' : 'Use the owner\'s socket for this request (config may hold proxy credentials).',
      details: { reason: 'owner-only' },
    });
  }
  if (access === undefined) {
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: `${request.method} ${url} is not available on a shared listener.`,
      hint: 'Use the owner\'s socket for this request.',
    });
  }
  const also = routeAlsoOpenTo(request.method, url);
  if (!ClientTokenService.allows(grant, access) && (also === undefined || !ClientTokenService.allows(grant, also))) {
    throw new BrokerError('BROKER_FORBIDDEN', {
      message: `This client token does not have the "${access}" scope that ${request.method} ${url} needs.`,
      hint: `Create a token that has it: \`tokenbroker client-token create --scope ${access} --description ...\` (or --scope user for every scope).`,
      details: { requiredScope: access },
    });
  }
}
