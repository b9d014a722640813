import type { FastifyInstance } from 'fastify';
import { ClientTokenParamsSchema, CreateClientTokenBodySchema, type ClientTokenView, type CreatedClientToken, type RevokedClientToken } from '../../protocol/client-tokens.js';
import type { ServerDeps } from '../server.js';
import { parseRequestPart } from '../validate.js';

const CREATE_HINT =
  'Send {"description": "what it is for", "scope": "user" | ["status:read", "sources:read", "sources:write", "fetch", "token:write"], "expiresInDays"?: 1-3650}; the CLI does this with `tokenbroker client-token create`.';

/**
 * Scoped client tokens (DESIGN section 8). Owner-only: the route table marks these `owner`, so an
 * extra listener refuses them whatever the token's scope.
 */
export function registerClientTokenRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.post('/v1/client-tokens', async (request, reply): Promise<CreatedClientToken> => {
    const body = parseRequestPart(CreateClientTokenBodySchema, request.body, 'body', CREATE_HINT);
    const created = await deps.clientTokens.create(body);
    // The only response that ever carries a client token: keep it out of any cache.
    void reply.code(201).header('cache-control', 'no-store');
    return created;
  });

  app.get('/v1/client-tokens', async (): Promise<ClientTokenView[]> => deps.clientTokens.list());

  app.delete('/v1/client-tokens/:id', async (request): Promise<RevokedClientToken> => {
    const params = parseRequestPart(ClientTokenParamsSchema, request.params, 'params');
    return deps.clientTokens.revoke(params.id);
  });
}
