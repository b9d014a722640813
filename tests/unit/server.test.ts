import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildServer, BODY_LIMIT_BYTES } from '../../src/daemon/server.js';
import { StatusSchema } from '../../src/protocol/status.js';
import { VERSION } from '../../src/protocol/version.js';
import { testServerDeps } from '../helpers/server-deps.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build() {
  const deps = testServerDeps();
  app = await buildServer(deps);
  return { app, deps };
}

function expectEnvelope(body: string, code: string): { message: string; hint: string } {
  const parsed = JSON.parse(body) as { error: { code: string; message: string; hint: string } };
  expect(parsed.error.code).toBe(code);
  expect(parsed.error.message.length).toBeGreaterThan(0);
  expect(parsed.error.hint.length).toBeGreaterThan(0);
  return parsed.error;
}

describe('API conventions', () => {
  it('GET /v1/status answers version, pid, uptime, socket and config path', async () => {
    const { app, deps } = await build();
    deps.clock.advance(65_000);
    const res = await app.inject({ method: 'GET', url: '/v1/status' });
    expect(res.statusCode).toBe(200);
    const status = StatusSchema.parse(res.json());
    expect(status).toMatchObject({ version: VERSION, pid: process.pid, uptimeSeconds: 65, socket: { path: '/tmp/tb-test/run/broker.sock', activated: false }, config: { path: '/tmp/tb-test/config.json' } });
    expect(res.headers['x-tokenbroker-version']).toBe(VERSION);
  });

  it('every response carries its own request id, the one its log lines carry; a client-supplied id is ignored', async () => {
    const { app, deps } = await build();
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const ok = await app.inject({ method: 'GET', url: '/v1/status', headers: { 'x-tokenbroker-request-id': 'chosen-by-client' } });
    const missing = await app.inject({ method: 'GET', url: '/v1/nope' });
    const refused = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin: 'https://evil.example' } });
    const ids = [ok, missing, refused].map((res) => String(res.headers['x-tokenbroker-request-id']));
    for (const id of ids) expect(id).toMatch(uuid);
    expect(new Set(ids).size).toBe(3);
    const requestLines = deps
      .logText()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; requestId?: string; reqId?: string })
      .filter((line) => line.msg === 'request');
    // One id per request, under one name: no second id (fastify's `reqId`) beside it.
    expect(requestLines.map((line) => line.requestId)).toEqual(ids);
    expect(requestLines.every((line) => line.reqId === undefined)).toBe(true);
  });

  it('an unknown route is a 404 envelope', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/v1/nope' });
    expect(res.statusCode).toBe(404);
    expectEnvelope(res.body, 'BROKER_NOT_FOUND');
    expect(res.headers['x-tokenbroker-version']).toBe(VERSION);
  });

  it('a malformed JSON body is a 400 envelope', async () => {
    const { app } = await build();
    app.post('/v1/echo-test', async (req) => req.body);
    const res = await app.inject({ method: 'POST', url: '/v1/echo-test', headers: { 'content-type': 'application/json' }, payload: '{"token": ' });
    expect(res.statusCode).toBe(400);
    expect(expectEnvelope(res.body, 'BROKER_BAD_REQUEST').message).toMatch(/not valid JSON/);
  });

  it('a body over the limit is refused with an envelope', async () => {
    const { app } = await build();
    app.post('/v1/echo-test', async (req) => req.body);
    const res = await app.inject({ method: 'POST', url: '/v1/echo-test', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ token: 'x'.repeat(BODY_LIMIT_BYTES) }) });
    expect(res.statusCode).toBe(400);
    expect(expectEnvelope(res.body, 'BROKER_BAD_REQUEST').message).toMatch(/too large/);
  });

  it('a request with an Origin header is refused', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin: 'https://evil.example' } });
    expect(res.statusCode).toBe(403);
    expectEnvelope(res.body, 'BROKER_FORBIDDEN');
  });

  it.each(['evil.example', 'localhost.evil.example', '127.0.0.1', 'localhost:80@evil'])('Host %s is refused', async (host) => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { host } });
    expect(res.statusCode).toBe(403);
    expectEnvelope(res.body, 'BROKER_FORBIDDEN');
  });

  it.each(['localhost', 'localhost:80', 'LOCALHOST:1234'])('Host %s is accepted', async (host) => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { host } });
    expect(res.statusCode).toBe(200);
  });

  it('an unexpected failure is a 500 envelope that leaks nothing of the exception', async () => {
    const { app, deps } = await build();
    app.get('/v1/boom-test', async () => {
      throw new Error('secret internals /home/ada/.token');
    });
    const res = await app.inject({ method: 'GET', url: '/v1/boom-test' });
    expect(res.statusCode).toBe(500);
    expect(expectEnvelope(res.body, 'BROKER_INTERNAL')).toBeTruthy();
    expect(res.body).not.toContain('secret internals');
    expect(deps.logText()).toContain('request failed');
  });
});
