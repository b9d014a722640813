import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { indexDocumentName } from '../../src/broker/source-index.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import type { AppView, SourceAdded, SourceView } from '../../src/protocol/sources.js';
import { StatusSchema } from '../../src/protocol/status.js';
import { formatStatus } from '../../src/cli/commands/status-command.js';
import { OFFICIAL_BASE, publishSource, RESTRICTED_BASE } from '../helpers/app-sources.js';
import { sourcesApp } from '../helpers/server-deps.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory({ tokens: { tok: {} } });

const USER_BASE = '/artifactory/swtools/external/ncd/apps/community';

let closedOrigin: string;
let app: FastifyInstance | undefined;

beforeAll(async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedOrigin = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise((resolve) => probe.close(resolve));
});
beforeEach(() => {
  af.clearFaults();
  publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'] });
  publishSource(af, USER_BASE, { name: 'Release Test', apps: ['community-app'] });
  publishSource(af, `${USER_BASE}/compat`, { name: '3.7 compatible apps', apps: ['compat-app'] });
  publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
  af.clearRequests();
});
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build() {
  const config = ConfigSchema.parse({
    allowInsecureLoopback: true,
    servers: [
      { name: 'nordic', origin: af.origin },
      { name: 'dead', origin: closedOrigin, authenticatedPrefixes: [], publicPrefixes: ['/dead/'] },
    ],
    officialSource: af.url(`${OFFICIAL_BASE}/source.json`),
  });
  const built = await sourcesApp(config, upstream);
  app = built.app;
  const { sources, state, clock } = built.deps;
  // The real token service: `token set --no-verify` and `token remove`.
  const tokens = { set: (token: string) => built.deps.tokens.set(undefined, token, { verify: false }), remove: () => built.deps.tokens.remove() };
  return { app, sources, state, tokens, clock };
}

type Envelope = { error: { code: string; message: string; hint: string; details?: Record<string, unknown> } };

describe('sources API', () => {
  it('lists the official source, adds a user source under an id made from its display name, answers {source, apps}', async () => {
    const { app, clock } = await build();
    const initial = await app.inject({ method: 'GET', url: '/v1/sources' });
    expect(initial.statusCode).toBe(200);
    expect(initial.json()).toEqual([
      expect.objectContaining({ id: 'official', url: af.url(`${OFFICIAL_BASE}/source.json`), official: true, restricted: false, thirdParty: false, state: 'stale', appCount: 0, withdrawnCount: 0, lastRefreshAt: null, lastError: null, problems: [] }),
    ]);

    const added = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/source.json`) } });
    expect(added.statusCode).toBe(201);
    const body = added.json<SourceAdded>();
    expect(body.source).toMatchObject({ id: 'release-test', name: 'Release Test', official: false, restricted: false, thirdParty: false, state: 'ok', appCount: 1, lastError: null, description: 'Release Test apps' });
    expect(body.apps).toEqual([expect.objectContaining({ source: 'release-test', name: 'community-app', withdrawn: false, latestVersion: '1.2.0' })]);
    expect(Object.keys(body.apps[0]?.versions ?? {})).toEqual(['1.0.0', '1.2.0']);

    clock.advance(1000);
    const compatible = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/compat/source.json`) } });
    expect(compatible.json<SourceAdded>().source).toMatchObject({ id: '3.7-compatible-apps', name: '3.7 compatible apps' });

    const listed = await app.inject({ method: 'GET', url: '/v1/sources' });
    expect(listed.json<SourceView[]>().map((s) => [s.id, s.name])).toEqual([['official', 'official'], ['release-test', 'Release Test'], ['3.7-compatible-apps', '3.7 compatible apps']]);

    await app.inject({ method: 'POST', url: '/v1/sources/refresh', payload: {} });
    const apps = await app.inject({ method: 'GET', url: '/v1/apps' });
    expect(apps.json<{ source: string; name: string }[]>().map((a) => `${a.source}/${a.name}`)).toEqual(['official/pc-nrfconnect-ble', 'official/pc-nrfconnect-ppk', 'release-test/community-app', '3.7-compatible-apps/compat-app']);
    // The id or the exact display name.
    for (const ref of ['release-test', 'Release%20Test']) {
      const one = await app.inject({ method: 'GET', url: `/v1/apps?source=${ref}` });
      expect(one.json<AppView[]>().map((a) => `${a.source}/${a.name}`)).toEqual(['release-test/community-app']);
    }
    const detail = await app.inject({ method: 'GET', url: '/v1/apps/release-test/community-app' });
    expect(detail.json<AppView>()).toMatchObject({ source: 'release-test', name: 'community-app', iconUrl: af.url(`${USER_BASE}/community-app.png`), versions: { '1.2.0': { nrfutilCore: '7.13.0' } } });
  });

  it('refuses duplicates and the official source: BROKER_SOURCE_EXISTS, BROKER_SOURCE_OFFICIAL', async () => {
    const { app } = await build();
    expect((await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/source.json`) } })).statusCode).toBe(201);
    const again = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/source.json`) } });
    expect(again.statusCode).toBe(409);
    expect(again.json<Envelope>().error.code).toBe('BROKER_SOURCE_EXISTS');

    // Another URL whose source.json uses the same name (in another case).
    af.setJson(`${USER_BASE}/mirror/source.json`, { name: 'RELEASE TEST', apps: [] });
    const sameName = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/mirror/source.json`) } });
    expect(sameName.statusCode).toBe(409);
    expect(sameName.json<Envelope>().error).toMatchObject({ code: 'BROKER_SOURCE_EXISTS', details: { id: 'release-test', name: 'Release Test' } });
    // The same source.json by another spelling of its URL.
    const spelled = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/source.json#again`) } });
    expect(spelled.json<Envelope>().error.code).toBe('BROKER_SOURCE_EXISTS');

    const official = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${OFFICIAL_BASE}/source.json`) } });
    expect(official.statusCode).toBe(409);
    expect(official.json<Envelope>().error.code).toBe('BROKER_SOURCE_OFFICIAL');

    af.setJson(`${USER_BASE}/impostor/source.json`, { name: 'Official', apps: [] });
    const impostor = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/impostor/source.json`) } });
    expect(impostor.json<Envelope>().error.code).toBe('BROKER_SOURCE_OFFICIAL');
  });

  it('an invalid source.json is a 422 naming the field; nothing is added', async () => {
    const { app, state } = await build();
    af.setJson(`${USER_BASE}/bad/source.json`, { name: 'bad', apps: ['https://x', 5] });
    const res = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/bad/source.json`) } });
    expect(res.statusCode).toBe(422);
    const error = res.json<Envelope>().error;
    expect(error.code).toBe('BROKER_SOURCE_INVALID');
    expect(error.details).toMatchObject({ field: 'apps[1]' });
    expect(error.message).toMatch(/"apps\[1\]" has the wrong type/);
    af.setFault(`${USER_BASE}/bad/source.json`, { kind: 'malformedJson' });
    const malformed = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/bad/source.json`) } });
    expect(malformed.json<Envelope>().error.message).toMatch(/not valid JSON/);
    expect((await app.inject({ method: 'GET', url: '/v1/sources' })).json<SourceView[]>()).toHaveLength(1);
    expect(state.documents.has('sources.json')).toBe(false);
  });

  it.each([
    ['outside every prefix', () => af.url('/other/source.json'), 403, 'BROKER_URL_NOT_ALLOWED'],
    ['a file: URL', () => 'file:///etc/passwd', 403, 'BROKER_URL_NOT_ALLOWED'],
    ['a foreign origin over plain http', () => 'http://example.com/source.json', 403, 'BROKER_URL_NOT_ALLOWED'],
    ['a server that does not answer', () => `${closedOrigin}/dead/source.json`, 502, 'BROKER_UPSTREAM_UNREACHABLE'],
    ['a missing source.json', () => af.url(`${USER_BASE}/missing/source.json`), 404, 'BROKER_UPSTREAM_NOT_FOUND'],
  ])('adding %s fails with the right code', async (_name, url, status, code) => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: url() } });
    expect(res.statusCode).toBe(status);
    expect(res.json<Envelope>().error.code).toBe(code);
  });

  it('a restricted URL needs a usable token: BROKER_TOKEN_MISSING without any request, then it is added', async () => {
    const { app, tokens } = await build();
    const url = af.url(`${RESTRICTED_BASE}/source.json`);
    const refused = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url } });
    expect(refused.statusCode).toBe(409);
    expect(refused.json<Envelope>().error.code).toBe('BROKER_TOKEN_MISSING');
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    await tokens.set('tok');
    const added = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url } });
    expect(added.statusCode).toBe(201);
    expect(added.json<SourceAdded>().source).toMatchObject({ id: 'restricted', restricted: true, state: 'ok', appCount: 1 });
    expect(added.body).not.toContain('tok"');
  });

  it('malformed bodies and names are 400s naming the field', async () => {
    const { app } = await build();
    const noUrl = await app.inject({ method: 'POST', url: '/v1/sources', payload: {} });
    expect(noUrl.statusCode).toBe(400);
    expect(noUrl.json<Envelope>().error.message).toContain('body.url');
    const extra = await app.inject({ method: 'POST', url: '/v1/sources/refresh', payload: { nmae: 'x' } });
    expect(extra.json<Envelope>().error.message).toContain('nmae');
    for (const name of ['a%00b', 'a%0Ab']) {
      const res = await app.inject({ method: 'DELETE', url: `/v1/sources/${name}` });
      expect(res.statusCode).toBe(400);
      expect(res.json<Envelope>().error.message).toContain('params.id');
    }
    // Ids and display names are only looked up, never used as paths: unknown ones are 404s.
    for (const name of ['..%2F..%2Fetc', '.hidden', 'a%20b', 'x%2Fy']) {
      expect((await app.inject({ method: 'DELETE', url: `/v1/sources/${name}` })).json<Envelope>().error.code).toBe('BROKER_NOT_FOUND');
    }
    // The router's own refusals come in the envelope too.
    for (const url of [`/v1/sources/${'a'.repeat(300)}`, '/v1/sources/%zz']) {
      const res = await app.inject({ method: 'DELETE', url });
      expect(res.statusCode).toBe(400);
      expect(res.json<Envelope>().error.code).toBe('BROKER_BAD_REQUEST');
    }
    // A dot-dot segment is resolved away before routing: it never reaches a route at all.
    expect((await app.inject({ method: 'DELETE', url: '/v1/sources/%2E%2E' })).statusCode).toBe(404);
    const badQuery = await app.inject({ method: 'GET', url: '/v1/apps?source=%0A' });
    expect(badQuery.statusCode).toBe(400);
  });

  it('removes user sources (index and all), never the official one', async () => {
    const { app, state } = await build();
    await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${USER_BASE}/source.json`) } });
    expect(state.documents.has(indexDocumentName('release-test'))).toBe(true);

    const official = await app.inject({ method: 'DELETE', url: '/v1/sources/official' });
    expect(official.statusCode).toBe(409);
    expect(official.json<Envelope>().error.code).toBe('BROKER_SOURCE_OFFICIAL');
    const unknown = await app.inject({ method: 'DELETE', url: '/v1/sources/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json<Envelope>().error.code).toBe('BROKER_NOT_FOUND');

    const removed = await app.inject({ method: 'DELETE', url: '/v1/sources/Release%20Test' });
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toEqual({ id: 'release-test', name: 'Release Test', removed: true });
    expect(state.documents.has(indexDocumentName('release-test'))).toBe(false);
    expect([...state.documents.keys()].filter((name) => name.startsWith('assets/'))).toEqual([]);
    expect(JSON.parse(state.documents.get('sources.json') ?? '{}')).toEqual({ version: 2, sources: [] });
    expect((await app.inject({ method: 'GET', url: '/v1/apps?source=release-test' })).statusCode).toBe(404);
  });

  it('refresh answers per source; status carries the source summary', async () => {
    const { app, tokens, clock } = await build();
    await tokens.set('tok');
    await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${RESTRICTED_BASE}/source.json`) } });
    await tokens.remove();
    af.setFault(`${OFFICIAL_BASE}/source.json`, { kind: 'status', status: 503 });
    const res = await app.inject({ method: 'POST', url: '/v1/sources/refresh' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual([
      expect.objectContaining({ id: 'official', outcome: 'failed', state: 'failing', lastError: expect.objectContaining({ code: 'BROKER_UPSTREAM_ERROR', status: 503 }) }),
      expect.objectContaining({ id: 'restricted', outcome: 'needs-token', state: 'needs-token', appCount: 1 }),
    ]);
    const one = await app.inject({ method: 'POST', url: '/v1/sources/refresh', payload: { id: 'nope' } });
    expect(one.statusCode).toBe(404);

    af.clearFaults();
    await tokens.set('tok');
    await app.inject({ method: 'POST', url: '/v1/sources/refresh', payload: { id: 'official' } });
    const status = StatusSchema.parse((await app.inject({ method: 'GET', url: '/v1/status' })).json());
    expect(status.sources).toEqual({
      count: 2,
      lastRefreshAt: new Date(clock.now()).toISOString(),
      nextRefreshAt: null,
      failing: 0,
      failingSources: [],
      needsToken: ['restricted'],
      items: [
        { id: 'official', name: 'official', state: 'ok' },
        { id: 'restricted', name: 'restricted', state: 'needs-token' },
      ],
    });
    // Human `status`: the summary, then each source, the one needing action before the healthy one.
    const printed = formatStatus(status);
    const summary = printed.findIndex((line) => line.startsWith('sources: 2 sources, 0 failing, last refresh '));
    expect(summary).toBeGreaterThan(-1);
    expect(printed.slice(summary + 1, summary + 3)).toEqual(['  restricted  needs-token', '  official  ok']);
  });

  it('human status lists a failing source first', async () => {
    const { app, tokens } = await build();
    await tokens.set('tok');
    await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${RESTRICTED_BASE}/source.json`) } });
    af.setFault(`${OFFICIAL_BASE}/source.json`, { kind: 'status', status: 503 });
    await app.inject({ method: 'POST', url: '/v1/sources/refresh' });
    const printed = formatStatus(StatusSchema.parse((await app.inject({ method: 'GET', url: '/v1/status' })).json()));
    const summary = printed.findIndex((line) => line.startsWith('sources: 2 sources, 1 failing'));
    expect(summary).toBeGreaterThan(-1);
    expect(printed.slice(summary + 1, summary + 3)).toEqual(['  official  failing', '  restricted  ok']);
    af.clearFaults();
  });
});
