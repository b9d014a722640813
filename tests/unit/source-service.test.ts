import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { silentLog } from '../../src/broker/log.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import type { Upstream } from '../../src/broker/ports.js';
import { SourceService } from '../../src/broker/source-service.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { indexDocumentName } from '../../src/broker/source-index.js';
import { ConfigSchema, type ConfigInput } from '../../src/protocol/config-schema.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { appInfoDocument, ICON_BYTES, listApps, OFFICIAL_BASE, publishSource, releaseNotes, RESTRICTED_BASE, type PublishedSource } from '../helpers/app-sources.js';
import { TestTokenAccess } from '../helpers/test-token-access.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';
import { offlineUpstream } from '../helpers/server-deps.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory({ tokens: { tok: {} } });

const HOUR = 60 * 60_000;

let official: PublishedSource;
const services: SourceService[] = [];

beforeEach(() => {
  af.clearFaults();
  af.setForbidden(/.*/, false);
  official = publishSource(af, OFFICIAL_BASE, { name: 'Official apps', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk', 'pc-nrfconnect-dtm'] });
  af.clearRequests();
});
afterEach(async () => {
  for (const service of services.splice(0)) {
    service.stop();
    await service.idle();
  }
});

interface Built {
  service: SourceService;
  clock: FakeClock;
  state: MemoryStateStore;
  tokens: TestTokenAccess;
  events: BrokerEvent[];
  bus: EventBus;
  setRandom(value: number): void;
}

function build(options: { config?: ConfigInput; state?: MemoryStateStore; tokens?: TestTokenAccess; upstream?: Upstream; clock?: FakeClock } = {}): Built {
  const config = ConfigSchema.parse({
    allowInsecureLoopback: true,
    servers: [{ name: 'nordic', origin: af.origin }],
    officialSource: official.sourceUrl,
    refresh: { intervalMinutes: 60, jitterPercent: 10, concurrency: 4 },
    ...options.config,
  });
  const clock = options.clock ?? new FakeClock(Date.now());
  const state = options.state ?? new MemoryStateStore();
  const tokens = options.tokens ?? new TestTokenAccess();
  const bus = new EventBus(clock);
  const events: BrokerEvent[] = [];
  bus.subscribe((event) => events.push(event));
  const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: true });
  let random = 0.5;
  const exchange = new UpstreamExchange({ policy: () => policy, upstream: options.upstream ?? upstream, tokens, clock, userAgent: 'tokenbroker' });
  const service = new SourceService({ config: () => config, policy: () => policy, tokens, exchange, state, clock, events: bus, log: silentLog, random: () => random });
  services.push(service);
  return { service, clock, state, tokens, events, bus, setRandom: (value) => (random = value) };
}

/** Moves the fake clock and waits for the refreshes its timers started. */
async function advance(built: Built, ms: number): Promise<void> {
  built.clock.advance(ms);
  await built.service.idle();
}

async function started(options: Parameters<typeof build>[0] = {}): Promise<Built> {
  const built = build(options);
  await built.service.load();
  built.service.start();
  await advance(built, 0);
  return built;
}

function restrictedSeed(url: string): MemoryStateStore {
  const state = new MemoryStateStore();
  state.documents.set('sources.json', JSON.stringify({ version: 1, sources: [{ name: 'restricted', url, addedAt: 1 }] }));
  return state;
}

describe('source refresh', () => {
  it('refreshes the official source at start: app infos whole (every version, every field), id official, display name from source.json', async () => {
    const { service, clock, events } = await started();
    const apps = service.apps();
    expect(apps.map((app) => [app.name, app.withdrawn])).toEqual([
      ['pc-nrfconnect-ble', false],
      ['pc-nrfconnect-dtm', false],
      ['pc-nrfconnect-ppk', false],
    ]);
    const published = appInfoDocument(af, OFFICIAL_BASE, 'pc-nrfconnect-ble') as { versions: Record<string, Record<string, unknown>> };
    // Whole, fields the contract does not name included.
    const version = (v: string): Record<string, unknown> => published.versions[v] ?? {};
    expect(apps[0]).toEqual({
      source: 'official',
      withdrawn: false,
      name: 'pc-nrfconnect-ble',
      displayName: 'Display pc-nrfconnect-ble',
      description: 'The pc-nrfconnect-ble app',
      homepage: 'https://example.com/app',
      iconUrl: af.url(`${OFFICIAL_BASE}/pc-nrfconnect-ble.png`),
      releaseNotesUrl: af.url(`${OFFICIAL_BASE}/pc-nrfconnect-ble-Changelog.md`),
      latestVersion: '1.2.0',
      versions: { '1.0.0': version('1.0.0'), '1.2.0': version('1.2.0') },
      someFutureField: { kept: true },
    });
    expect(apps[0]?.versions['1.2.0']).toMatchObject({ publishTimestamp: '2025-06-01T10:00:00Z', nrfutilModules: { device: ['2.7.16'] }, nrfutilCore: '7.13.0', shasum: expect.stringMatching(/^[0-9a-f]{40}$/) });
    const view = service.get('official');
    expect(view).toMatchObject({ id: 'official', name: 'Official apps', official: true, restricted: false, thirdParty: false, state: 'ok', appCount: 3, withdrawnCount: 0, lastError: null, problems: [], lastRefreshAt: new Date(clock.now()).toISOString() });
    expect(service.get('Official apps').id).toBe('official');
    expect(events.find((event) => event.type === 'sources.refreshed')).toMatchObject({ sources: [{ id: 'official', outcome: 'updated', appCount: 3 }] });
  });

  it('an app that leaves source.json is withdrawn (last app info kept, withdrawnAt) until listed again; withdrawn.json is never requested', async () => {
    const built = await started();
    const listed = ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk', 'pc-nrfconnect-dtm'];
    listApps(af, official, 'Official apps', ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk']);
    af.removeFile(official.appInfoPaths.get('pc-nrfconnect-dtm') as string);
    const [result] = await built.service.refresh('official');
    expect(result).toMatchObject({ outcome: 'updated', appCount: 2, withdrawnCount: 1, state: 'ok' });
    const dtm = built.service.apps().find((app) => app.name === 'pc-nrfconnect-dtm');
    expect(dtm).toMatchObject({ withdrawn: true, withdrawnAt: new Date(built.clock.now()).toISOString(), latestVersion: '1.2.0', displayName: 'Display pc-nrfconnect-dtm' });
    const withdrawnAt = dtm?.withdrawnAt;
    built.clock.advance(60_000);
    await built.service.refresh('official');
    expect(built.service.app('official', 'pc-nrfconnect-dtm')).toMatchObject({ withdrawn: true });
    expect(built.service.apps().find((app) => app.name === 'pc-nrfconnect-dtm')?.withdrawnAt).toBe(withdrawnAt);

    publishSource(af, OFFICIAL_BASE, { name: 'Official apps', apps: listed });
    await built.service.refresh('official');
    expect(built.service.apps().find((app) => app.name === 'pc-nrfconnect-dtm')).toMatchObject({ withdrawn: false });
    expect(built.service.apps().find((app) => app.name === 'pc-nrfconnect-dtm')).not.toHaveProperty('withdrawnAt');
    expect(built.service.get('official')).toMatchObject({ appCount: 3, withdrawnCount: 0 });
    expect(af.requests.filter((r) => r.path.includes('withdrawn'))).toEqual([]);
  });

  it('a version without shasum is listed; an app whose URL is not <name>.json is left out and reported by its URL', async () => {
    official = publishSource(af, OFFICIAL_BASE, { name: 'Official apps', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'], withoutShasum: ['1.0.0'] });
    af.setJson(official.appInfoPaths.get('pc-nrfconnect-ppk') as string, appInfoDocument(af, OFFICIAL_BASE, 'pc-nrfconnect-other'));
    const built = await started();
    const ble = built.service.app('official', 'pc-nrfconnect-ble');
    expect(ble.info.versions['1.0.0']).not.toHaveProperty('shasum');
    expect(ble.info.versions['1.2.0']?.shasum).toMatch(/^[0-9a-f]{40}$/);
    expect(built.service.apps().map((app) => app.name)).toEqual(['pc-nrfconnect-ble']);
    expect(built.service.get('official').problems).toEqual([
      expect.objectContaining({ code: 'BROKER_SOURCE_INVALID', field: 'name', url: af.url(official.appInfoPaths.get('pc-nrfconnect-ppk') as string), message: expect.stringMatching(/pc-nrfconnect-other.*does not match the URL/) }),
    ]);
  });

  it('icons and release notes are fetched once per app info change and served from the state store', async () => {
    const built = await started();
    const icon = await built.service.asset('official', 'pc-nrfconnect-ble', 'icon');
    expect(icon).toEqual({ contentType: 'image/png', bytes: ICON_BYTES });
    const notes = await built.service.asset('official', 'pc-nrfconnect-ble', 'release-notes');
    expect(notes.bytes.toString()).toBe(releaseNotes('pc-nrfconnect-ble'));
    expect(notes.contentType).toMatch(/^text\/markdown/);
    af.clearRequests();
    await built.service.refresh('official');
    expect(af.requests.filter((r) => r.path.endsWith('.png') || r.path.endsWith('.md'))).toEqual([]);
    af.setJson(official.appInfoPaths.get('pc-nrfconnect-ble') as string, { ...appInfoDocument(af, OFFICIAL_BASE, 'pc-nrfconnect-ble'), description: 'changed' });
    af.setFile(`${OFFICIAL_BASE}/pc-nrfconnect-ble-Changelog.md`, 'new notes');
    await built.service.refresh('official');
    expect(af.requests.filter((r) => r.path.endsWith('.png') || r.path.endsWith('.md')).map((r) => r.path).sort()).toEqual([`${OFFICIAL_BASE}/pc-nrfconnect-ble-Changelog.md`, `${OFFICIAL_BASE}/pc-nrfconnect-ble.png`]);
    expect((await built.service.asset('official', 'pc-nrfconnect-ble', 'release-notes')).bytes.toString()).toBe('new notes');
  });

  it('token removed: a restricted source is needs-token in the very next view, without a refresh', async () => {
    const restricted = publishSource(af, RESTRICTED_BASE, { name: 'Restricted apps', apps: ['secret-app'] });
    const tokens = new TestTokenAccess();
    tokens.set('tok');
    const built = await started({ state: restrictedSeed(restricted.sourceUrl), tokens });
    expect(built.service.get('restricted')).toMatchObject({ state: 'ok', restricted: true });
    tokens.token = undefined;
    expect(built.service.get('restricted').state).toBe('needs-token');
    expect(built.service.statusSection().sources.needsToken).toEqual(['restricted']);
    expect(built.service.get('official').state).toBe('ok');
  });

  it('the next scheduled refresh sends If-None-Match with each ETag byte for byte and gets 304s', async () => {
    const built = await started();
    const firstAt = built.clock.now();
    af.clearRequests();
    // random 0.5 = no jitter: exactly one interval later.
    await advance(built, HOUR - 1);
    expect(af.requests).toHaveLength(0);
    await advance(built, 1);
    const paths = [official.sourcePath, ...official.appInfoPaths.values()];
    expect(af.requests.map((r) => r.path).sort()).toEqual([...paths].sort());
    for (const request of af.requests) {
      const { sha1 } = await af.digestOf(request.path);
      expect(request.headers['if-none-match']).toBe(sha1);
      expect(request.status).toBe(304);
    }
    const view = built.service.get('official');
    expect(view.state).toBe('ok');
    expect(view.lastRefreshAt).toBe(new Date(firstAt + HOUR).toISOString());
    expect(built.events.filter((event) => event.type === 'sources.refreshed').at(-1)).toMatchObject({ sources: [{ id: 'official', outcome: 'unchanged' }] });
  });

  it('jitter moves the next refresh within ± jitterPercent of the interval', async () => {
    const built = await started();
    built.setRandom(0);
    await built.service.refresh('official');
    expect(Date.parse(built.service.get('official').nextRefreshAt ?? '')).toBe(built.clock.now() + 0.9 * HOUR);
    built.setRandom(1);
    await built.service.refresh('official');
    expect(Date.parse(built.service.get('official').nextRefreshAt ?? '')).toBe(built.clock.now() + 1.1 * HOUR);
  });

  it('a restricted source is needs-token with no upstream request until a token is usable, then refreshes', async () => {
    const restricted = publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
    af.clearRequests();
    const built = await started({ state: restrictedSeed(restricted.sourceUrl) });
    expect(built.service.get('restricted')).toMatchObject({ state: 'needs-token', restricted: true, appCount: 0 });
    expect(built.service.get('restricted').lastError).toMatchObject({ code: 'BROKER_TOKEN_MISSING' });
    expect(built.events.find((event) => event.type === 'source.failed')).toMatchObject({ source: 'restricted', state: 'needs-token' });
    // Several intervals pass: still not a single request for it.
    await advance(built, 5 * HOUR);
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    expect(built.service.get('restricted').state).toBe('needs-token');

    built.tokens.set('tok');
    built.bus.emit('token.set', { server: 'nordic', state: 'valid' });
    await advance(built, 0);
    const requests = af.requestsTo(RESTRICTED_BASE);
    expect(requests.map((r) => r.path).sort()).toEqual([restricted.sourcePath, `${RESTRICTED_BASE}/secret-app.json`, `${RESTRICTED_BASE}/secret-app.png`, `${RESTRICTED_BASE}/secret-app-Changelog.md`].sort());
    for (const request of requests) expect(request.headers.authorization).toBe('Bearer tok');
    expect(af.requestsTo(OFFICIAL_BASE).every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(built.service.get('restricted')).toMatchObject({ state: 'ok', appCount: 1, lastError: null });
    expect(built.service.apps('restricted').map((app) => app.name)).toEqual(['secret-app']);

    // The second refresh is conditional and answered 304 (icons and release notes are kept).
    af.clearRequests();
    const [result] = await built.service.refresh('restricted');
    expect(result?.outcome).toBe('unchanged');
    const sourceRequest = af.requests.find((r) => r.path === restricted.sourcePath);
    expect(sourceRequest?.headers['if-none-match']).toBe((await af.digestOf(restricted.sourcePath)).sha1);
    expect(sourceRequest?.status).toBe(304);
    expect(af.requests.find((r) => r.path.endsWith('secret-app.json'))?.status).toBe(304);
  });

  it('after a 401 the token is reported rejected and the source stops: needs-token, no retry loop', async () => {
    const restricted = publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
    const tokens = new TestTokenAccess();
    tokens.set('tok');
    const built = await started({ state: restrictedSeed(restricted.sourceUrl), tokens });
    expect(built.service.get('restricted').state).toBe('ok');
    af.revokeToken('tok');
    try {
      af.clearRequests();
      const [result] = await built.service.refresh('restricted');
      expect(result?.outcome).toBe('needs-token');
      expect(tokens.rejections).toEqual([{ server: 'nordic', message: 'Bad credentials' }]);
      expect(af.requestsTo(RESTRICTED_BASE)).toHaveLength(1);
      expect(built.service.get('restricted')).toMatchObject({ state: 'needs-token', appCount: 1, lastError: { code: 'BROKER_TOKEN_INVALID' } });
      await advance(built, 10 * HOUR);
      expect(af.requestsTo(RESTRICTED_BASE)).toHaveLength(1);
      // The last good index is still served.
      expect(built.service.apps('restricted').map((app) => app.name)).toEqual(['secret-app']);
    } finally {
      af.addToken('tok');
    }
  });

  it('a malformed source.json keeps the last good index and is tried again at the normal interval; a 503 backs off 1 s, 2 s, 4 s ... up to 5 min', async () => {
    const built = await started();
    built.setRandom(1); // full jitter at its ceiling: the spacing is exact
    af.setFault(official.sourcePath, { kind: 'malformedJson' });
    const [result] = await built.service.refresh('official');
    expect(result?.outcome).toBe('failed');
    const view = built.service.get('official');
    expect(view.state).toBe('failing');
    expect(view.appCount).toBe(3);
    expect(view.lastError).toMatchObject({ code: 'BROKER_SOURCE_INVALID', url: official.sourceUrl });
    expect(view.lastError?.message).toMatch(/source\.json is not valid JSON/);
    expect(built.events.filter((event) => event.type === 'source.failed').at(-1)).toMatchObject({ source: 'official', error: { code: 'BROKER_SOURCE_INVALID' } });
    // It will not fix itself in minutes (DESIGN section 6): the normal interval, not the backoff.
    expect(Date.parse(view.nextRefreshAt ?? '')).toBe(built.clock.now() + 1.1 * HOUR);

    af.clearFaults();
    af.setFault(official.sourcePath, { kind: 'status', status: 503 });
    await built.service.refresh('official');
    const expected = [2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map((s) => s * 1000);
    for (const delay of expected) {
      af.clearRequests();
      expect(Date.parse(built.service.get('official').nextRefreshAt ?? '')).toBe(built.clock.now() + delay);
      await advance(built, delay - 1);
      expect(af.requests).toHaveLength(0);
      await advance(built, 1);
      expect(af.requestsTo(official.sourcePath)).toHaveLength(1);
      expect(built.service.apps().length).toBe(3);
    }
    af.clearFaults();
    await advance(built, 300_000);
    expect(built.service.get('official')).toMatchObject({ state: 'ok', lastError: null });
    expect(Date.parse(built.service.get('official').nextRefreshAt ?? '')).toBe(built.clock.now() + 1.1 * HOUR);
  });

  it('an outage repeating the same problem saves the index once, not on every attempt', async () => {
    const built = await started();
    const writes: string[] = [];
    const write = built.state.write.bind(built.state);
    built.state.write = async (name, value) => {
      writes.push(name);
      await write(name, value);
    };
    af.setFault(official.sourcePath, { kind: 'status', status: 503 });
    for (let i = 0; i < 4; i++) await built.service.refresh('official');
    expect(writes).toEqual([indexDocumentName('official')]);
    af.clearFaults();
    await built.service.refresh('official');
    expect(writes).toHaveLength(2);
    expect(built.service.get('official').state).toBe('ok');
  });

  it('a source.json of the wrong shape is refused naming the field; the last good copy stays', async () => {
    const built = await started();
    af.setJson(official.sourcePath, { name: 'official', apps: 'everything' });
    await built.service.refresh('official');
    const view = built.service.get('official');
    expect(view.lastError).toMatchObject({ code: 'BROKER_SOURCE_INVALID', field: 'apps' });
    expect(view.lastError?.message).toMatch(/"apps" has the wrong type/);
    expect(view.appCount).toBe(3);
  });

  it('429 with Retry-After in seconds is honoured over a shorter backoff', async () => {
    const built = await started();
    built.setRandom(1);
    af.setFault(official.sourcePath, { kind: 'status', status: 429, retryAfter: 120 });
    await built.service.refresh('official');
    const view = built.service.get('official');
    expect(view.lastError).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', status: 429 });
    expect(Date.parse(view.nextRefreshAt ?? '')).toBe(built.clock.now() + 120_000);
    af.clearRequests();
    await advance(built, 119_999);
    expect(af.requests).toHaveLength(0);
    await advance(built, 1);
    expect(af.requestsTo(official.sourcePath)).toHaveLength(1);
    expect(built.service.apps()).toHaveLength(3);
  });

  it('429 with Retry-After as an HTTP date is honoured too', async () => {
    const built = await started();
    built.setRandom(1);
    const retryAt = Math.ceil((built.clock.now() + 90_000) / 1000) * 1000;
    af.setFault(official.sourcePath, { kind: 'status', status: 429, retryAfter: new Date(retryAt).toUTCString() });
    await built.service.refresh('official');
    // Retry-After is whole seconds everywhere (as in details.retryAfter): rounded up from now.
    expect(Date.parse(built.service.get('official').nextRefreshAt ?? '')).toBe(built.clock.now() + Math.ceil((retryAt - built.clock.now()) / 1000) * 1000);
  });

  it('500s on one app info: the other apps refresh, the broken one keeps its last good copy', async () => {
    const built = await started();
    const blePath = official.appInfoPaths.get('pc-nrfconnect-ble') as string;
    const ppkPath = official.appInfoPaths.get('pc-nrfconnect-ppk') as string;
    af.setFault(blePath, { kind: 'status', status: 500 });
    af.setJson(ppkPath, { ...appInfoDocument(af, OFFICIAL_BASE, 'pc-nrfconnect-ppk'), displayName: 'Power Profiler (new)' });
    const [result] = await built.service.refresh('official');
    expect(result?.outcome).toBe('failed');
    const apps = built.service.apps();
    expect(apps.map((app) => app.name)).toEqual(['pc-nrfconnect-ble', 'pc-nrfconnect-dtm', 'pc-nrfconnect-ppk']);
    expect(apps.find((app) => app.name === 'pc-nrfconnect-ppk')?.displayName).toBe('Power Profiler (new)');
    expect(built.service.get('official').lastError).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', status: 500, url: af.url(blePath) });
    expect(built.service.get('official').errorCount).toBe(1);
  });

  it('a malformed app info is refused naming its field path; a new broken app is not listed, the rest are', async () => {
    const built = await started();
    const blePath = official.appInfoPaths.get('pc-nrfconnect-ble') as string;
    const good = appInfoDocument(af, OFFICIAL_BASE, 'pc-nrfconnect-ble');
    af.setJson(blePath, { ...good, versions: { ...(good.versions as object), '1.0.0': { shasum: 'not-a-sha1', tarballUrl: 'x' } } });
    af.setJson(`${OFFICIAL_BASE}/broken-new.json`, { name: 'broken-new' });
    af.setJson(official.sourcePath, { name: 'official', apps: [...[...official.appInfoPaths.values()].slice(0, 3).map((p) => af.url(p)), af.url(`${OFFICIAL_BASE}/broken-new.json`)] });
    await built.service.refresh('official');
    const view = built.service.get('official');
    expect(view.state).toBe('failing');
    expect(view.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'BROKER_SOURCE_INVALID', url: af.url(blePath), field: 'versions.1.0.0.shasum' }),
        expect.objectContaining({ code: 'BROKER_SOURCE_INVALID', url: af.url(`${OFFICIAL_BASE}/broken-new.json`), field: 'displayName' }),
      ]),
    );
    expect(built.service.apps().map((app) => app.name)).toEqual(['pc-nrfconnect-ble', 'pc-nrfconnect-dtm', 'pc-nrfconnect-ppk']);
    expect(built.service.app('official', 'pc-nrfconnect-ble').info.versions['1.0.0']?.shasum).toMatch(/^[0-9a-f]{40}$/);
  });

  it('an oversized app info is refused while streaming and the last good copy kept', async () => {
    const built = await started();
    const blePath = official.appInfoPaths.get('pc-nrfconnect-ble') as string;
    af.setFile(blePath, { size: 3 * 1024 * 1024, seed: 7 }, { contentType: 'application/json' });
    await built.service.refresh('official');
    const problem = built.service.get('official').lastError;
    expect(problem).toMatchObject({ code: 'BROKER_SOURCE_INVALID', url: af.url(blePath) });
    expect(problem?.message).toMatch(/larger than 1 MiB/);
    expect(built.service.apps()).toHaveLength(3);
  });

  it('requests across all documents never exceed refresh.concurrency', async () => {
    const many = Array.from({ length: 12 }, (_, i) => `app-${i}`);
    official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: many });
    af.setFault(/\/app-\d+\.json$/, { kind: 'delayHeaders', ms: 20 });
    let inFlight = 0;
    let peak = 0;
    const counting: Upstream = {
      request: async (request) => {
        inFlight += 1;
        peak = Math.max(peak, inFlight);
        try {
          const response = await upstream.request(request);
          response.body.once('close', () => (inFlight -= 1));
          return response;
        } catch (err) {
          inFlight -= 1;
          throw err;
        }
      },
    };
    const built = await started({ upstream: counting, config: { refresh: { intervalMinutes: 60, jitterPercent: 10, concurrency: 3 } } });
    expect(built.service.apps()).toHaveLength(12);
    expect(peak).toBe(3);
  });

  it('stop() cancels every timer', async () => {
    const built = await started();
    expect(built.clock.pendingTimers()).toBeGreaterThan(0);
    built.service.stop();
    expect(built.clock.pendingTimers()).toBe(0);
    expect(built.service.get('official').nextRefreshAt).toBeNull();
  });

  it('stop() aborts a refresh waiting on the upstream and keeps the saved index as it was', async () => {
    const built = await started();
    const saved = built.state.documents.get(indexDocumentName('official'));
    af.setFault(official.sourcePath, { kind: 'hang' });
    const arrived = af.nextRequest(official.sourcePath);
    const pending = built.service.refresh('official');
    await arrived;
    built.service.stop();
    const [result] = await pending;
    expect(result?.outcome).toBe('failed');
    expect(built.state.documents.get(indexDocumentName('official'))).toBe(saved);
    expect(built.service.get('official')).toMatchObject({ state: 'ok', appCount: 3, lastError: null });
  });

  it('the index survives a restart: served offline, then refreshed with the stored ETags', async () => {
    const first = await started();
    first.service.stop();
    const state = first.state;
    expect(state.documents.has(indexDocumentName('official'))).toBe(true);

    const offline = build({ state, upstream: offlineUpstream });
    await offline.service.load();
    expect(offline.service.apps()).toHaveLength(3);
    expect(offline.service.get('official').lastRefreshAt).toBe(first.service.get('official').lastRefreshAt);
    const [failed] = await offline.service.refresh('official');
    expect(failed).toMatchObject({ outcome: 'failed', state: 'failing', lastError: { code: 'BROKER_UPSTREAM_UNREACHABLE' } });
    expect(offline.service.apps()).toHaveLength(3);

    const online = build({ state });
    await online.service.load();
    af.clearRequests();
    const [result] = await online.service.refresh('official');
    expect(result?.outcome).toBe('unchanged');
    expect(af.requests.filter((r) => r.status === 304)).toHaveLength(4);
  });
});
