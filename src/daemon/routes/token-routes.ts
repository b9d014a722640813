import type { FastifyInstance } from 'fastify';
import { PutTokenBodySchema, ServerQuerySchema, type TokenRemoved, type TokenView } from '../../protocol/token.js';
import type { ServerDeps } from '../server.js';
import { parseRequestPart } from '../validate.js';

const TOKEN_HINT = 'Send {"token": "<identity token>", "server"?: "<name>", "verify"?: true} as JSON; the CLI does this with `tokenbroker token set`.';

/** Token metadata, set/replace and remove. No route ever returns the token itself. */
export function registerTokenRoutes(app: FastifyInstance, deps: ServerDeps): void {
  app.get('/v1/token', async (request): Promise<TokenView> => {
    const query = parseRequestPart(ServerQuerySchema, request.query, 'query');
    return deps.tokens.view(query.server);
  });

  app.put('/v1/token', async (request): Promise<TokenView> => {
    const body = parseRequestPart(PutTokenBodySchema, request.body, 'body', TOKEN_HINT);
    return deps.tokens.set(body.server, body.token, { verify: body.verify });
  });

  app.delete('/v1/token', async (request): Promise<TokenRemoved> => {
    const query = parseRequestPart(ServerQuerySchema, request.query, 'query');
    return deps.tokens.remove(query.server);
  });
}
