import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { silentLog } from '../../src/broker/log.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { APP_INFO_EXTRA_FIELDS_MAX_BYTES } from '../../src/broker/source-documents.js';
import { SourceService } from '../../src/broker/source-service.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { BACKOFF_MAX_MS } from '../../src/broker/refresh-scheduler.js';
import { buildServer } from '../../src/daemon/server.js';
import { createUndiciUpstream, type UndiciUpstream } from '../../src/node/undici-upstream.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import type { AppDetail, AppView } from '../../src/protocol/sources.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource, type PublishedSource } from '../helpers/app-sources.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';
import { testServerDeps } from '../helpers/server-deps.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';

/**
 * Issue 21, "documents as the launcher reads them" (DESIGN section 6): app infos shaped like the
 * ones pc-nrfconnect-shared's publishing writes (and the launcher shows) are kept, fields the
 * contract does not name pass through the API, and a gone or invalid source.json is tried again
 * at the normal interval while timeouts, 429 and 5xx back off.
 */

const HOUR = 60 * 60_000;

let af: FakeArtifactory;
let upstream: UndiciUpstream;
let official: PublishedSource;
let app: FastifyInstance | undefined;
const services: SourceService[] = [];

beforeAll(async () => {
  af = await startFakeArtifactory();
  upstream = createUndiciUpstream({ timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 }, proxy: null, caFile: null, env: {} });
});
afterAll(async () => {
  await upstream.close();
  await af.close();
});
beforeEach(() => {
  af.clearFaults();
  official = publishSource(af, OFFICIAL_BASE, { name: 'Official apps', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'], form: 'download-api' });
  af.clearRequests();
});
afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const service of services.splice(0)) {
    service.stop();
    await service.idle();
  }
});

async function build(): Promise<{ sources: SourceService; clock: FakeClock; app: FastifyInstance }> {
  const config = ConfigSchema.parse({
    allowInsecureLoopback: true,
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: official.sourceUrl,
    refresh: { intervalMinutes: 60, jitterPercent: 10, concurrency: 4 },
  });
  const clock = new FakeClock(Date.now());
  const tokens = new TestTokenAccess('tok');
  const events = new EventBus(clock);
  const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: true });
  const exchange = new UpstreamExchange({ policy: () => policy, upstream, tokens, clock, userAgent: 'tokenbroker' });
  // random 0.5: the jitter is zero, so "the normal interval" is exactly one hour.
  const sources = new SourceService({ config: () => config, policy: () => policy, tokens, exchange, state: new MemoryStateStore(), clock, events, log: silentLog, random: () => 0.5 });
  services.push(sources);
  await sources.load();
  sources.start();
  clock.advance(0);
  await sources.idle();
  app = await buildServer(testServerDeps({ config, clock, events, sources }));
  return { sources, clock, app };
}

/** An app info as the publishing script writes it when package.json has no homepage: no such key. */
function publishedAppInfo(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const url = (file: string): string => official.urlOf(`${OFFICIAL_BASE}/${file}`);
  return {
    name,
    displayName: `Display ${name}`,
    iconUrl: url(`${name}.svg`),
    releaseNotesUrl: url(`${name}-Changelog.md`),
    latestVersion: '2.0.0',
    versions: {
      '1.0.0': { tarballUrl: url(`${name}-1.0.0.tgz`), publishTimestamp: '2024-01-01T00:00:00.000Z', shasum: 'a'.repeat(40) },
      '1.1.0': { tarballUrl: url(`${name}-1.1.0.tgz`), publishTimestamp: '2024-02-01T00:00:00.000Z' },
    },
    ...extra,
  };
}

function publishOfficial(apps: Record<string, Record<string, unknown>>): void {
  for (const [name, info] of Object.entries(apps)) af.setJson(`${OFFICIAL_BASE}/${name}.json`, info);
  af.setJson(official.sourcePath, { name: 'Official apps', apps: Object.keys(apps).map((name) => official.urlOf(`${OFFICIAL_BASE}/${name}.json`)) });
}

describe('app infos as the launcher reads them', () => {
  it('keeps apps with homepage null, no description, or a latestVersion missing from versions; notes the last without failing the source', async () => {
    publishOfficial({
      'app-null-homepage': { ...publishedAppInfo('app-null-homepage'), homepage: null, description: 'd', latestVersion: '1.1.0' },
      'app-no-description': { ...publishedAppInfo('app-no-description'), latestVersion: '1.1.0' },
      'app-latest-unlisted': publishedAppInfo('app-latest-unlisted'),
    });
    const { sources } = await build();
    const list = await app!.inject({ method: 'GET', url: '/v1/apps' });
    expect(list.statusCode).toBe(200);
    const apps = list.json<AppView[]>();
    expect(apps.map((a) => a.name)).toEqual(['app-latest-unlisted', 'app-no-description', 'app-null-homepage']);
    expect(apps.find((a) => a.name === 'app-null-homepage')).toMatchObject({ homepage: null, description: 'd' });
    expect(apps.find((a) => a.name === 'app-no-description')).not.toHaveProperty('description');

    const view = sources.get('official');
    expect(view).toMatchObject({ state: 'ok', appCount: 3, errorCount: 0, lastError: null });
    expect(view.problems).toEqual([
      // Named by canonical URL, as every problem is.
      expect.objectContaining({ note: true, field: 'latestVersion', url: af.url(`${OFFICIAL_BASE}/app-latest-unlisted.json`) }),
    ]);
    expect(view.problems[0]?.message).toMatch(/latestVersion "2.0.0" is not in "versions" \(known: 1.0.0, 1.1.0\)/);

    // "The latest" of such an app cannot be downloaded: refused, with the versions it does list.
    const latest = await app!.inject({ method: 'GET', url: '/v1/apps/official/app-latest-unlisted' });
    expect(latest.statusCode).toBe(404);
    expect(latest.json()).toMatchObject({ error: { code: 'BROKER_NOT_FOUND', message: expect.stringMatching(/known versions: 1.0.0, 1.1.0/) as string, details: { versions: ['1.0.0', '1.1.0'] } } });
    const tarball = await app!.inject({ method: 'GET', url: '/v1/apps/official/app-latest-unlisted/tarball' });
    expect(tarball.json()).toMatchObject({ error: { code: 'BROKER_NOT_FOUND', details: { versions: ['1.0.0', '1.1.0'] } } });
    // A version it lists is fine.
    const named = await app!.inject({ method: 'GET', url: '/v1/apps/official/app-latest-unlisted?version=1.1.0' });
    expect(named.statusCode).toBe(200);
    expect(named.json<AppDetail>().tarball).toMatchObject({ version: '1.1.0', fileName: 'app-latest-unlisted-1.1.0.tgz' });
  });

  it('passes fields the contract does not name through, top level and per version, never over source/withdrawn/withdrawnAt', async () => {
    publishOfficial({
      'app-future': {
        ...publishedAppInfo('app-future', { latestVersion: '1.1.0', description: 'd' }),
        supportedDevices: ['PCA10056'],
        source: 'evil',
        withdrawn: true,
        withdrawnAt: '2000-01-01T00:00:00.000Z',
        nrfConnectForDesktop: { html: 'dist/index.html' },
        versions: {
          '1.1.0': { tarballUrl: official.urlOf(`${OFFICIAL_BASE}/app-future-1.1.0.tgz`), shasum: 'b'.repeat(40), signature: { alg: 'ed25519', value: 'abc' } },
        },
      },
    });
    await build();
    const [listed] = (await app!.inject({ method: 'GET', url: '/v1/apps' })).json<AppView[]>();
    expect(listed).toMatchObject({ name: 'app-future', source: 'official', withdrawn: false, supportedDevices: ['PCA10056'], nrfConnectForDesktop: { html: 'dist/index.html' } });
    expect(listed).not.toHaveProperty('withdrawnAt');
    expect(listed?.versions['1.1.0']).toEqual({ tarballUrl: official.urlOf(`${OFFICIAL_BASE}/app-future-1.1.0.tgz`), shasum: 'b'.repeat(40), signature: { alg: 'ed25519', value: 'abc' } });
    const one = (await app!.inject({ method: 'GET', url: '/v1/apps/official/app-future' })).json<AppDetail>();
    expect(one).toMatchObject({ source: 'official', withdrawn: false, supportedDevices: ['PCA10056'], versions: { '1.1.0': { signature: { alg: 'ed25519', value: 'abc' } } } });
    expect(one).not.toHaveProperty('withdrawnAt');
  });

  it(`keeps unnamed fields up to ${APP_INFO_EXTRA_FIELDS_MAX_BYTES} bytes per app info; over it they are left out, the named fields kept, and a note says so`, async () => {
    publishOfficial({
      'app-big': { ...publishedAppInfo('app-big', { latestVersion: '1.1.0' }), blob: 'x'.repeat(APP_INFO_EXTRA_FIELDS_MAX_BYTES) },
      'app-small': { ...publishedAppInfo('app-small', { latestVersion: '1.1.0' }), blob: 'x'.repeat(APP_INFO_EXTRA_FIELDS_MAX_BYTES - 100) },
    });
    const { sources, clock } = await build();
    const apps = (await app!.inject({ method: 'GET', url: '/v1/apps' })).json<AppView[]>();
    expect(apps.find((a) => a.name === 'app-small')).toHaveProperty('blob');
    const big = apps.find((a) => a.name === 'app-big');
    expect(big).toMatchObject({ name: 'app-big', latestVersion: '1.1.0', displayName: 'Display app-big' });
    expect(big).not.toHaveProperty('blob');
    const notes = (): string[] => sources.get('official').problems.map((p) => p.message);
    expect(notes()).toEqual([expect.stringMatching(/over the 65536-byte cap; they were left out/)]);
    expect(sources.get('official').state).toBe('ok');
    // A 304 next time repeats the note (it is about the copy kept).
    clock.advance(HOUR);
    await sources.idle();
    expect(notes()).toEqual([expect.stringMatching(/over the 65536-byte cap/)]);
  });
});

describe('gone or invalid documents are retried at the normal interval, not on the backoff schedule', () => {
  const cases: [string, () => void, 'interval' | 'backoff'][] = [
    ['source.json gone (404)', () => af.removeFile(official.sourcePath), 'interval'],
    ['source.json gone (410)', () => af.setFault(official.sourcePath, { kind: 'status', status: 410 }), 'interval'],
    ['source.json not JSON', () => af.setFile(official.sourcePath, 'not json', { contentType: 'application/json' }), 'interval'],
    ['source.json of the wrong shape', () => af.setJson(official.sourcePath, { name: 'Official apps', apps: 'all' }), 'interval'],
    ['source.json 503', () => af.setFault(official.sourcePath, { kind: 'status', status: 503 }), 'backoff'],
    ['source.json 429 without Retry-After', () => af.setFault(official.sourcePath, { kind: 'status', status: 429 }), 'backoff'],
  ];
  it.each(cases)('%s', async (_name, breakIt, expected) => {
    const { sources, clock } = await build();
    expect(sources.get('official').state).toBe('ok');
    breakIt();
    clock.advance(HOUR);
    await sources.idle();
    const view = sources.get('official');
    expect(view.state).toBe('failing');
    const wait = Date.parse(view.nextRefreshAt ?? '') - clock.now();
    if (expected === 'interval') expect(wait).toBe(HOUR);
    else expect(wait).toBeLessThanOrEqual(BACKOFF_MAX_MS);
    // Three more attempts' worth of backoff time costs a gone source nothing.
    af.clearRequests();
    clock.advance(3 * BACKOFF_MAX_MS);
    await sources.idle();
    const requests = af.requestsFor(`${OFFICIAL_BASE}/source.json`).length;
    if (expected === 'interval') expect(requests).toBe(0);
    else expect(requests).toBeGreaterThan(0);
  });
});
