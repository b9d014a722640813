import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HELLO_NONCE, HELLO_PATH, helloMac } from '../../protocol/hello.js';
import { parseRequestPart } from '../validate.js';

const HelloQuerySchema = z.strictObject({ nonce: z.string().regex(HELLO_NONCE, 'must be 16-128 characters of A-Z, a-z, 0-9, "_" or "-"') });

export interface HelloDeps {
  /**
   * This start's key, resolved once it is in `state/daemon.key`: a client reads the file after the
   * answer, so the answer must never come before the file (socket activation lets clients connect
   * before the daemon has written it).
   */
  helloKey: () => Promise<Uint8Array>;
}

/**
 * `GET /v1/hello?nonce=N` answers `{mac}` = HMAC-SHA256(key, N) (DESIGN section 2). Owner socket
 * only (route table: `owner`): clients of extra listeners cannot read the key and do not ask.
 */
export function registerHelloRoutes(app: FastifyInstance, deps: HelloDeps): void {
  app.get(HELLO_PATH, async (request, reply): Promise<{ mac: string }> => {
    const query = parseRequestPart(HelloQuerySchema, request.query, 'query', 'The client library sends a random nonce of 32 hex digits.');
    void reply.header('cache-control', 'no-store');
    return { mac: helloMac(await deps.helloKey(), query.nonce) };
  });
}
