import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ALSO_OPEN_TO, ROUTE_ACCESS } from '../../src/daemon/route-scopes.js';
import { buildServer } from '../../src/daemon/server.js';
import { CLIENT_SCOPES, type ClientScope, type CreatedClientToken } from '../../src/protocol/client-tokens.js';
import { ERRORS } from '../../src/protocol/errors.js';
import { testServerDeps, type TestServerDeps } from '../helpers/server-deps.js';

/**
 * inject() has no real socket, so these tests mark "arrived on an extra listener" with a header
 * that only this test's listenerOf reads. The real tagging is tested with real sockets in
 * tests/extra-listener.test.ts.
 */
const EXTRA = { 'x-test-listener': 'extra' };
const listenerOf = (raw: IncomingMessage) => (raw.headers['x-test-listener'] === 'extra' ? { path: '/test/shared.sock' } : undefined);

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build(): Promise<{ app: FastifyInstance; deps: TestServerDeps }> {
  const deps = testServerDeps({ listenerOf });
  app = await buildServer(deps);
  return { app, deps };
}

async function createToken(a: FastifyInstance, body: Record<string, unknown>): Promise<CreatedClientToken> {
  const res = await a.inject({ method: 'POST', url: '/v1/client-tokens', payload: body });
  expect(res.statusCode).toBe(201);
  return res.json<CreatedClientToken>();
}

function envelope(body: string): { code: string; message: string; hint: string; details?: Record<string, unknown> } {
  return (JSON.parse(body) as { error: { code: string; message: string; hint: string; details?: Record<string, unknown> } }).error;
}

describe('client token API on the owner socket', () => {
  it('creates (201, token once, no-store), lists without the token, revokes', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/v1/client-tokens', payload: { description: 'ci-runner', scope: ['status:read'], expiresInDays: 30 } });
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const created = res.json<CreatedClientToken>();
    expect(Object.keys(created).sort()).toEqual(['description', 'expiresAt', 'id', 'issuedAt', 'scope', 'subject', 'token'].sort());
    expect(created.subject).toBe('ada (ci-runner)');

    const list = await app.inject({ method: 'GET', url: '/v1/client-tokens' });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(created.token);
    expect(list.json()).toEqual([{ id: created.id, description: 'ci-runner', subject: 'ada (ci-runner)', issuedAt: created.issuedAt, expiresAt: created.expiresAt, scope: ['status:read'], lastUsedAt: null }]);

    const revoked = await app.inject({ method: 'DELETE', url: `/v1/client-tokens/${created.id}` });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toEqual({ id: created.id, revoked: true });
    expect((await app.inject({ method: 'GET', url: '/v1/client-tokens' })).json()).toEqual([]);
  });

  it.each(['00000000-0000-4000-8000-000000000000', 'not-a-uuid'])('revoking unknown ID %s is a 404 BROKER_NOT_FOUND envelope', async (id) => {
    const { app } = await build();
    const res = await app.inject({ method: 'DELETE', url: `/v1/client-tokens/${id}` });
    expect(res.statusCode).toBe(404);
    expect(envelope(res.body).code).toBe('BROKER_NOT_FOUND');
  });

  it.each([
    [{ scope: 'user' }, 'body.description'],
    [{ description: '', scope: 'user' }, 'body.description'],
    [{ description: 'x'.repeat(201), scope: 'user' }, 'body.description'],
    [{ description: 'a\nb', scope: 'user' }, 'body.description'],
    [{ description: 'x', scope: ['root'] }, 'body.scope'],
    [{ description: 'x', scope: [] }, 'body.scope'],
    [{ description: 'x' }, 'body.scope'],
    [{ description: 'x', scope: 'user', expiresInDays: 0 }, 'body.expiresInDays'],
    [{ description: 'x', scope: 'user', expiresInDays: 3651 }, 'body.expiresInDays'],
    [{ description: 'x', scope: 'user', expiresInDays: '30' }, 'body.expiresInDays'],
    [{ description: 'x', scope: 'user', token: 'tbk_chosen' }, 'body'],
  ])('%j is a 400 naming %s', async (body, field) => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/v1/client-tokens', payload: body });
    expect(res.statusCode).toBe(400);
    const error = envelope(res.body);
    expect(error.code).toBe('BROKER_BAD_REQUEST');
    expect(String(error.details?.field)).toContain(field);
    expect(error.hint).toMatch(/description/);
  });

  it('ignores Authorization from local clients on the owner socket (even a bogus one); no handler ever sees it', async () => {
    const { app } = await build();
    app.get('/v1/echo-authorization', async (request) => ({ authorization: request.headers.authorization ?? null, raw: request.raw.headers.authorization ?? null }));
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { authorization: 'Bearer tbk_nonsense' } });
    expect(res.statusCode).toBe(200);
    const echoed = await app.inject({ method: 'GET', url: '/v1/echo-authorization', headers: { authorization: 'Bearer secret-from-client' } });
    expect(echoed.json()).toEqual({ authorization: null, raw: null });
  });
});

describe('extra listener', () => {
  /** A URL for a table key: parameters filled in, queries that make handlers run far enough. */
  function requestFor(key: string): InjectOptions {
    const [method, pattern] = key.split(' ') as [InjectOptions['method'], string];
    return { method, url: pattern.replace(/:/g, 'x') };
  }

  /** Registers a stub for every table route that no engineer has built yet on this branch. */
  function stubMissingRoutes(a: FastifyInstance): void {
    for (const key of Object.keys(ROUTE_ACCESS)) {
      const [method, pattern] = key.split(' ') as [string, string];
      let n = 0;
      const url = pattern.replace(/:/g, () => `:p${n++}`);
      if (!a.hasRoute({ method: method as 'GET', url })) a.route({ method: method as 'GET', url, handler: async () => ({ stub: true }) });
    }
  }

  it('a token reaches exactly the routes its scope allows; client-token management is owner-only for every scope', async () => {
    const { app } = await build();
    stubMissingRoutes(app);
    const scopes: (ClientScope | 'user')[] = [...CLIENT_SCOPES, 'user'];
    const tokens = new Map<string, string>();
    for (const scope of scopes) tokens.set(scope, (await createToken(app, { description: `only ${scope}`, scope: scope === 'user' ? 'user' : [scope] })).token);

    const outcomes: string[] = [];
    for (const scope of scopes) {
      for (const [key, needed] of Object.entries(ROUTE_ACCESS)) {
        const res = await app.inject({ ...requestFor(key), headers: { ...EXTRA, authorization: `Bearer ${tokens.get(scope)}` } });
        const code = res.statusCode >= 400 ? envelope(res.body).code : 'ok';
        const refused = code === 'BROKER_FORBIDDEN' || code === 'BROKER_UNAUTHORIZED';
        const shouldPass = needed !== 'owner' && (scope === 'user' || scope === needed || ALSO_OPEN_TO[key] === scope);
        if (refused === shouldPass) outcomes.push(`${scope} -> ${key}: got ${res.statusCode} ${code}`);
        if (refused) {
          expect(res.statusCode).toBe(403);
          if (needed !== 'owner') expect(envelope(res.body).details).toEqual({ requiredScope: needed });
        }
      }
    }
    expect(outcomes).toEqual([]);
  });

  it('the forbidden answer names the scope that is needed', async () => {
    const { app } = await build();
    const token = (await createToken(app, { description: 'fetch only', scope: ['fetch'] })).token;
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { ...EXTRA, authorization: `Bearer ${token}` } });
    expect(res.statusCode).toBe(403);
    expect(envelope(res.body)).toMatchObject({ code: 'BROKER_FORBIDDEN', details: { requiredScope: 'status:read' } });
    expect(envelope(res.body).message).toContain('"status:read"');
  });

  it('missing, malformed, wrong, revoked and expired tokens get the identical 401 answer', async () => {
    const { app, deps } = await build();
    const revoked = await createToken(app, { description: 'revoked', scope: 'user' });
    const expiring = await createToken(app, { description: 'expiring', scope: 'user', expiresInDays: 1 });
    const good = await createToken(app, { description: 'good', scope: 'user', expiresInDays: 30 });
    const statusWith = (authorization?: string) => app.inject({ method: 'GET', url: '/v1/status', headers: { ...EXTRA, ...(authorization === undefined ? {} : { authorization }) } });

    // Both work before: what follows is caused by revoking and by time passing.
    expect((await statusWith(`Bearer ${revoked.token}`)).statusCode).toBe(200);
    expect((await statusWith(`Bearer ${expiring.token}`)).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: `/v1/client-tokens/${revoked.id}` })).statusCode).toBe(200);
    deps.clock.advance(86_400_000);

    const answers = [
      await statusWith(undefined),
      await statusWith('Bearer'),
      await statusWith('Token abc'),
      await statusWith(`Bearer ${good.token.slice(0, -2)}`),
      await statusWith(`Bearer tbk_${'x'.repeat(43)}`),
      await statusWith(`Bearer ${revoked.token}`),
      await statusWith(`Bearer ${expiring.token}`),
    ];
    for (const res of answers) {
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="tokenbroker"');
      expect(res.body).toBe(answers[0]?.body);
    }
    expect(envelope(answers[0]?.body ?? '')).toEqual({ code: 'BROKER_UNAUTHORIZED', message: ERRORS.BROKER_UNAUTHORIZED.message, hint: ERRORS.BROKER_UNAUTHORIZED.hint });
    expect((await statusWith(`Bearer ${good.token}`)).statusCode).toBe(200);
  });

  it('unknown paths ask for a token first (no route discovery without one), then 404', async () => {
    const { app } = await build();
    const token = (await createToken(app, { description: 'x', scope: ['fetch'] })).token;
    expect((await app.inject({ method: 'GET', url: '/v1/nope', headers: EXTRA })).statusCode).toBe(401);
    const res = await app.inject({ method: 'GET', url: '/v1/nope', headers: { ...EXTRA, authorization: `Bearer ${token}` } });
    expect(res.statusCode).toBe(404);
    expect(envelope(res.body).code).toBe('BROKER_NOT_FOUND');
  });

  it('a route missing from the table is refused on extra listeners (deny by default), served on the owner socket', async () => {
    const { app } = await build();
    app.get('/v1/not-in-table', async () => ({ ok: true }));
    const token = (await createToken(app, { description: 'x', scope: 'user' })).token;
    const extra = await app.inject({ method: 'GET', url: '/v1/not-in-table', headers: { ...EXTRA, authorization: `Bearer ${token}` } });
    expect(extra.statusCode).toBe(403);
    expect(envelope(extra.body).message).toMatch(/not available on a shared listener/);
    expect((await app.inject({ method: 'GET', url: '/v1/not-in-table' })).statusCode).toBe(200);
  });

  it('the token value never reaches the log, the list or the state, and lastUsedAt shows use', async () => {
    const { app, deps } = await build();
    const created = await createToken(app, { description: 'ci', scope: 'user' });
    await app.inject({ method: 'GET', url: '/v1/status', headers: { ...EXTRA, authorization: `Bearer ${created.token}` } });
    await app.inject({ method: 'PUT', url: '/v1/token', headers: { ...EXTRA, authorization: `Bearer ${created.token}` }, payload: { token: 'not json' } });
    await app.inject({ method: 'GET', url: '/v1/status', headers: { ...EXTRA, authorization: `Bearer ${created.token}x` } });
    const list = await app.inject({ method: 'GET', url: '/v1/client-tokens' });
    expect(list.json<{ lastUsedAt: string | null }[]>()[0]?.lastUsedAt).toBe(new Date(deps.clock.now()).toISOString());
    await deps.clientTokens.stop();
    const secret = created.token.slice(4);
    expect(deps.logText()).toContain('client token created');
    expect(deps.logText()).not.toContain(secret);
    expect(list.body).not.toContain(secret);
    for (const text of deps.state.documents.values()) expect(text).not.toContain(secret);
  });
});
