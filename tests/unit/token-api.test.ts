import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/daemon/server.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { testServerDeps } from '../helpers/server-deps.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory();

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build() {
  const deps = testServerDeps({ config: { allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }] }, upstream, clock: new FakeClock(Date.now()) });
  await deps.tokens.start();
  app = await buildServer(deps);
  return { app, deps };
}

const canary = `tbk-canary-${Math.random().toString(36).slice(2)}`;

describe('token API', () => {
  it.each([
    ['empty', '', /must not be empty/],
    ['inner whitespace', `${canary} x`, /whitespace/],
    ['a newline inside', `${canary}\nx`, /whitespace/],
    ['control characters', `${canary}\u0007`, /control/],
    ['over 8 KiB', `${canary}${'a'.repeat(8 * 1024)}`, /longer than 8192/],
  ])('a token with %s is a 400 with a hint that does not echo it', async (_name, token, message) => {
    const { app, deps } = await build();
    const res = await app.inject({ method: 'PUT', url: '/v1/token', payload: { token } });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ error: { code: string; message: string; hint: string } }>();
    expect(body.error.code).toBe('BROKER_BAD_REQUEST');
    expect(body.error.message).toMatch(message);
    expect(body.error.hint.length).toBeGreaterThan(10);
    expect(res.body).not.toContain(canary);
    expect(deps.logText()).not.toContain(canary);
    expect(af.requests.filter((r) => JSON.stringify(r.headers).includes(canary))).toEqual([]);
  });

  it('unknown body keys and a non-boolean verify are refused, naming the field', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'PUT', url: '/v1/token', payload: { token: 'abc', verify: 'yes' } });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ error: { message: string } }>().error.message).toContain('body.verify');
    const extra = await app.inject({ method: 'PUT', url: '/v1/token', payload: { token: 'abc', tokne: 1 } });
    expect(extra.json<{ error: { message: string } }>().error.message).toContain('tokne');
  });

  it('PUT validates and stores; GET shows metadata and never the token; DELETE lists consequences', async () => {
    const { app, deps } = await build();
    // Just under 40 days by the daemon's own clock (not Date.now(), which runs on while the test is
    // set up): daysLeft is 39 however long that takes.
    af.addToken(canary, { token_id: 'tid-42', description: 'my laptop', expiry: Math.floor(deps.clock.now() / 1000) + 40 * 86400 - 1 });
    const put = await app.inject({ method: 'PUT', url: '/v1/token', payload: { token: canary } });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ server: 'nordic', state: 'valid', tokenId: 'tid-42', description: 'my laptop', daysLeft: 39 });
    const get = await app.inject({ method: 'GET', url: '/v1/token?server=nordic' });
    expect(get.json()).toMatchObject({ state: 'valid', tokenId: 'tid-42' });
    const status = await app.inject({ method: 'GET', url: '/v1/status' });
    expect(status.json()).toMatchObject({ tokens: [{ server: 'nordic', state: 'valid', tokenId: 'tid-42' }] });
    const del = await app.inject({ method: 'DELETE', url: '/v1/token' });
    expect(del.json()).toMatchObject({ server: 'nordic', removed: true });
    expect(del.json<{ consequences: string[] }>().consequences.length).toBeGreaterThanOrEqual(3);
    for (const res of [put, get, status, del]) expect(res.body).not.toContain(canary);
    expect(deps.logText()).not.toContain(canary);
  });

  it('an invalid token is a 409 BROKER_TOKEN_INVALID and nothing is stored', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'PUT', url: '/v1/token', payload: { token: `${canary}-wrong` } });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ error: { code: 'BROKER_TOKEN_INVALID' } });
    expect(res.body).not.toContain(canary);
    expect((await app.inject({ method: 'GET', url: '/v1/token' })).json()).toMatchObject({ state: 'absent' });
  });

  it('GET /v1/events streams events as JSON over a WebSocket', async () => {
    const { app, deps } = await build();
    await app.ready();
    const ws = await app.injectWS('/v1/events', { headers: { host: 'localhost' } });
    const received: unknown[] = [];
    const got = new Promise<void>((resolve) =>
      ws.on('message', (data: Buffer) => {
        received.push(JSON.parse(data.toString()));
        if (received.length === 2) resolve();
      }),
    );
    af.addToken(`${canary}-ws`, { token_id: 'tid-ws' });
    await deps.tokens.set(undefined, `${canary}-ws`, { verify: true });
    await deps.tokens.remove();
    await got;
    ws.terminate();
    expect(received).toMatchObject([
      { type: 'token.set', server: 'nordic', tokenId: 'tid-ws' },
      { type: 'token.removed', server: 'nordic' },
    ]);
    expect(JSON.stringify(received)).not.toContain(canary);
  });

  it('a browser WebSocket (with Origin) is refused', async () => {
    const { app } = await build();
    await app.ready();
    await expect(app.injectWS('/v1/events', { headers: { host: 'localhost', origin: 'https://evil.example' } })).rejects.toThrow(/403/);
  });

  it('GET /v1/events without an upgrade is an envelope explaining it', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/v1/events' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'BROKER_BAD_REQUEST' } });
  });
});
