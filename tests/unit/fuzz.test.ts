import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/node/config-file.js';
import { buildServer } from '../../src/daemon/server.js';
import { ERRORS, isErrorCode } from '../../src/protocol/errors.js';
import { recordFigure } from '../helpers/figures.js';
import { testServerDeps } from '../helpers/server-deps.js';

/**
 * Property-based fuzzing over every route's path, query and body, and over the config file:
 * never a crash, never BROKER_INTERNAL, always the envelope. `npm run fuzz` raises the run count
 * (FUZZ_RUNS) to tens of thousands; the default keeps CI to a few thousand cases.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const TIMEOUT = Math.max(60_000, RUNS * 60);

/** Every route of the contract (DESIGN section 5 and 8), with placeholders for parameters. */
const ROUTES: [string, string][] = [
  ['GET', '/v1/status'],
  ['GET', '/v1/token'],
  ['PUT', '/v1/token'],
  ['DELETE', '/v1/token'],
  ['GET', '/v1/sources'],
  ['POST', '/v1/sources'],
  ['DELETE', '/v1/sources/:name'],
  ['POST', '/v1/sources/refresh'],
  ['GET', '/v1/apps'],
  ['GET', '/v1/apps/:source/:name/tarball'],
  ['GET', '/v1/fetch'],
  ['GET', '/v1/fetches/:id'],
  ['GET', '/v1/events'],
  ['GET', '/v1/client-tokens'],
  ['POST', '/v1/client-tokens'],
  ['DELETE', '/v1/client-tokens/:id'],
];

const QUERY_KEYS = ['server', 'url', 'sha1', 'sha256', 'source', 'version', 'name', 'x', 'url[]', '__proto__', 'constructor'];
const BODY_KEYS = ['token', 'server', 'verify', 'url', 'name', 'description', 'scope', 'expiresInDays', '__proto__', 'constructor', 'prototype'];

const segment = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('..', '%2e%2e', '%2F', 'official', 'nordic', '.', '', 'a'.repeat(300), '\u0000', '%00', '😀'),
);
const queryValue = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.constantFrom('https://files.nordicsemi.com/artifactory/swtools/external/x', 'http://127.0.0.1:1/artifactory/x', 'file:///etc/passwd', 'a'.repeat(3000), 'deadbeef'),
);
const query = fc.dictionary(fc.constantFrom(...QUERY_KEYS), queryValue, { maxKeys: 4 });
const body = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.dictionary(fc.constantFrom(...BODY_KEYS), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.constantFrom('{', '{"token":', 'null', '[]', '"x"', '{"token":"a b"}'),
);
const request = fc.record({
  route: fc.constantFrom(...ROUTES),
  method: fc.oneof(fc.constant(undefined), fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS')),
  params: fc.array(segment, { minLength: 3, maxLength: 3 }),
  query,
  body,
  contentType: fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', undefined),
});

function toPath(template: string, params: string[]): string {
  let i = 0;
  return template.replace(/:[a-z]+/g, () => encodeURIComponent(params[i++] ?? 'x'));
}

function expectEnvelope(status: number, text: string): void {
  expect(status).toBeGreaterThanOrEqual(400);
  const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; hint?: unknown } };
  expect(parsed.error).toBeDefined();
  expect(isErrorCode(parsed.error?.code)).toBe(true);
  expect(parsed.error?.code).not.toBe('BROKER_INTERNAL');
  expect(typeof parsed.error?.message).toBe('string');
  expect(typeof parsed.error?.hint).toBe('string');
  expect(ERRORS[parsed.error?.code as keyof typeof ERRORS].status).toBe(status);
}

describe('fuzzing', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    const deps = testServerDeps({ config: { secretStore: 'memory' } });
    await deps.tokens.start();
    app = await buildServer(deps);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it(
    'every route answers any path, query and body with success or an envelope, never BROKER_INTERNAL',
    async () => {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const method = r.method ?? r.route[0];
          const search = new URLSearchParams(r.query).toString();
          const url = `${toPath(r.route[1], r.params)}${search ? `?${search}` : ''}`;
          const res = await app.inject({
            method: method as 'GET',
            url,
            headers: { host: 'localhost', ...(r.contentType === undefined ? {} : { 'content-type': r.contentType }) },
            ...(r.body === undefined || method === 'GET' || method === 'HEAD' ? {} : { payload: r.body }),
          });
          if (res.statusCode < 400 || method === 'HEAD') return;
          expectEnvelope(res.statusCode, res.body);
        }),
        { numRuns: RUNS },
      );
      recordFigure('fuzz: API requests (random route, method, path, query, body)', RUNS, 'cases, 0 crashes, 0 BROKER_INTERNAL');
    },
    TIMEOUT,
  );

  it(
    'any config document is accepted (frozen) or refused with one ConfigError line',
    () => {
      const configKeys = ['servers', 'officialSource', 'refresh', 'secretStore', 'proxy', 'caFile', 'expiryWarningDays', 'allowInsecureLoopback', 'listeners', 'shutdownGraceSeconds', 'logLevel', 'timeouts', 'unknown'];
      const serverLike = fc.dictionary(fc.constantFrom('name', 'origin', 'tokenInfoPath', 'pingPath', 'authenticatedPrefixes', 'publicPrefixes', 'bogus'), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('https://a.example', 'http://127.0.0.1:8080', '/artifactory/', ['/x/'], 'nordic')));
      const config = fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.dictionary(fc.constantFrom(...configKeys), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.array(serverLike, { maxLength: 3 })), { maxKeys: 6 }),
      );
      fc.assert(
        fc.property(config, (json) => {
          try {
            const parsed = parseConfig(json, '/tmp/fuzz/config.json');
            expect(Object.isFrozen(parsed)).toBe(true);
            expect(parsed.servers.length).toBeGreaterThan(0);
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
            const message = (err as Error).message;
            expect(message.startsWith('config /tmp/fuzz/config.json: ')).toBe(true);
            expect(message).not.toContain('\n');
          }
        }),
        { numRuns: RUNS * 5 },
      );
      recordFigure('fuzz: config documents', RUNS * 5, 'cases, all accepted or one-line ConfigError');
    },
    TIMEOUT,
  );
});
