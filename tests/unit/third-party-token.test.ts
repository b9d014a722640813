import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { saveAsset } from '../../src/broker/app-assets.js';
import type { SourceAdded } from '../../src/protocol/sources.js';
import { ICON_BYTES, OFFICIAL_BASE, publishSource, RESTRICTED_BASE, tarballBytes } from '../helpers/app-sources.js';
import { useFakeArtifactory, useOtherFakeArtifactory } from '../helpers/fake-upstream.js';
import { sourcesApp } from '../helpers/server-deps.js';

/**
 * Issue 20, "the token": a third party's index never makes the daemon use the user's token
 * (DESIGN section 6). A third-party source (an origin that is no configured server) lists app
 * infos, icons, release notes and tarballs on the configured server: the public ones are fetched
 * without the token, the ones that would need it are refused before anything is sent (a problem
 * on that app), also behind a redirect, and a `sources:read` client cannot read restricted bytes
 * through the icon route, not even from a copy kept by an older version.
 */

const TOKEN = 'tbk-third-party-token-0123456789';
const PUBLIC_BASE = '/artifactory/swtools/external/ncd/apps/public-bits';

const { af, upstream } = await useFakeArtifactory({ tokens: { [TOKEN]: {} } });
const tp = await useOtherFakeArtifactory();
let app: FastifyInstance | undefined;

beforeEach(() => {
  publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble'] });
  // The restricted app's documents and files exist on the configured server (token required).
  publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
  publishSource(af, PUBLIC_BASE, { name: 'public bits', apps: ['open-app'] });
});
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** The third party's source.json lists its own app info whose URLs point at the configured server. */
function publishThirdParty(urls: { icon: string; notes: string; tarball: string }, extraApps: string[] = []): string {
  tp.setJson('/tp/lure.json', {
    name: 'lure',
    displayName: 'Lure',
    description: 'points at the configured server',
    iconUrl: urls.icon,
    releaseNotesUrl: urls.notes,
    latestVersion: '1.0.0',
    versions: { '1.0.0': { tarballUrl: urls.tarball } },
  });
  tp.setJson('/tp/source.json', { name: 'Third party', apps: [tp.url('/tp/lure.json'), ...extraApps] });
  return tp.url('/tp/source.json');
}

/** The daemon's own wiring (assembleDaemon, through the inject harness) over the real upstream. */
async function build() {
  const config = { allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }], officialSource: af.url(`${OFFICIAL_BASE}/source.json`) };
  const built = await sourcesApp(config, upstream, TOKEN);
  app = built.app;
  return { app, sources: built.deps.sources, state: built.deps.state };
}

async function addThirdParty(server: FastifyInstance, url: string): Promise<SourceAdded> {
  const added = await server.inject({ method: 'POST', url: '/v1/sources', payload: { url } });
  expect(added.statusCode, added.body).toBe(201);
  return added.json<SourceAdded>();
}

describe('a third-party index never makes the daemon use the token', () => {
  it('restricted icon, release notes and tarball on the configured server: refused, nothing sent; a problem on the app', async () => {
    const { app } = await build();
    const url = publishThirdParty({ icon: af.url(`${RESTRICTED_BASE}/secret-app.png`), notes: af.url(`${RESTRICTED_BASE}/secret-app-Changelog.md`), tarball: af.url(`${RESTRICTED_BASE}/secret-app-1.0.0.tgz`) });
    af.clearRequests();
    const added = await addThirdParty(app, url);
    expect(added.source).toMatchObject({ id: 'third-party', thirdParty: true, restricted: false });
    // Not a single request to a restricted path of the configured server, with or without the token.
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    expect(af.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);

    // A sources:read client reads no restricted bytes through the icon or release-notes routes.
    for (const kind of ['icon', 'release-notes']) {
      const asset = await app.inject({ method: 'GET', url: `/v1/apps/third-party/lure/${kind}` });
      expect(asset.statusCode, kind).toBe(403);
      expect(asset.json()).toMatchObject({ error: { code: 'BROKER_URL_NOT_ALLOWED', details: { reason: 'third-party-needs-token', server: 'nordic' } } });
      expect(asset.rawPayload.includes(ICON_BYTES)).toBe(false);
    }
    // Nor the tarball (route and daemon-written download alike): refused before anything is sent.
    const tarball = await app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/tarball' });
    expect(tarball.statusCode).toBe(403);
    expect(tarball.json()).toMatchObject({ error: { code: 'BROKER_URL_NOT_ALLOWED', details: { reason: 'third-party-needs-token' } } });
    const download = await app.inject({ method: 'POST', url: '/v1/downloads', payload: { source: 'third-party', app: 'lure', path: '/tmp/tb-third-party-never-written.tgz' } });
    expect(download.statusCode).toBe(403);
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
  });

  it('a restricted app info listed by a third party is a problem on that app, never requested', async () => {
    const { app, sources } = await build();
    const url = publishThirdParty({ icon: tp.url('/tp/lure.png'), notes: tp.url('/tp/lure.md'), tarball: tp.url('/tp/lure.tgz') }, [af.url(`${RESTRICTED_BASE}/secret-app.json`)]);
    tp.setFile('/tp/lure.png', ICON_BYTES);
    tp.setFile('/tp/lure.md', '# notes');
    af.clearRequests();
    await addThirdParty(app, url);
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    const view = sources.get('third-party');
    expect(view.problems).toEqual([expect.objectContaining({ code: 'BROKER_URL_NOT_ALLOWED', url: af.url(`${RESTRICTED_BASE}/secret-app.json`) })]);
    expect(sources.apps('third-party').map((a) => a.name)).toEqual(['lure']);
  });

  it('public URLs on the configured server are fetched without the token', async () => {
    const { app } = await build();
    const url = publishThirdParty({ icon: af.url(`${PUBLIC_BASE}/open-app.png`), notes: af.url(`${PUBLIC_BASE}/open-app-Changelog.md`), tarball: af.url(`${PUBLIC_BASE}/open-app-1.0.0.tgz`) });
    af.clearRequests();
    await addThirdParty(app, url);
    const icon = await app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/icon' });
    expect(icon.statusCode).toBe(200);
    expect(icon.rawPayload.equals(ICON_BYTES)).toBe(true);
    const tarball = await app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/tarball' });
    expect(tarball.statusCode).toBe(200);
    expect(tarball.rawPayload.equals(tarballBytes('open-app', '1.0.0'))).toBe(true);
    expect(af.requestsTo(PUBLIC_BASE).length).toBeGreaterThanOrEqual(3);
    expect(af.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
  });

  it('a public URL that redirects to a restricted one on the same server: refused at the redirect, the token never sent', async () => {
    const { app } = await build();
    af.setRedirect(`${PUBLIC_BASE}/hop.png`, af.url(`${RESTRICTED_BASE}/secret-app.png`));
    af.setRedirect(`${PUBLIC_BASE}/hop.tgz`, af.url(`${RESTRICTED_BASE}/secret-app-1.0.0.tgz`));
    const url = publishThirdParty({ icon: af.url(`${PUBLIC_BASE}/hop.png`), notes: af.url(`${PUBLIC_BASE}/open-app-Changelog.md`), tarball: af.url(`${PUBLIC_BASE}/hop.tgz`) });
    af.clearRequests();
    await addThirdParty(app, url);
    const tarball = await app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/tarball' });
    expect(tarball.statusCode).toBe(403);
    expect(tarball.json()).toMatchObject({ error: { code: 'BROKER_URL_NOT_ALLOWED', details: { reason: 'third-party-needs-token' } } });
    expect((await app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/icon' })).statusCode).not.toBe(200);
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    expect(af.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);
  });

  it('an icon kept by an older version from a restricted URL is not served', async () => {
    const first = await build();
    const { state } = first;
    const url = publishThirdParty({ icon: af.url(`${RESTRICTED_BASE}/secret-app.png`), notes: af.url(`${PUBLIC_BASE}/open-app-Changelog.md`), tarball: tp.url('/tp/lure.tgz') });
    await addThirdParty(first.app, url);
    // What a daemon before this fix kept: the restricted icon's bytes.
    await saveAsset(state, 'third-party', 'lure', 'icon', af.url(`${RESTRICTED_BASE}/secret-app.png`), { contentType: 'image/png', bytes: ICON_BYTES });
    const icon = await first.app.inject({ method: 'GET', url: '/v1/apps/third-party/lure/icon' });
    expect(icon.statusCode).toBe(403);
    expect(icon.rawPayload.includes(ICON_BYTES)).toBe(false);
  });

  it('the official source and a user source on the server still use the token for restricted URLs', async () => {
    const { app } = await build();
    const added = await app.inject({ method: 'POST', url: '/v1/sources', payload: { url: af.url(`${RESTRICTED_BASE}/source.json`) } });
    expect(added.statusCode, added.body).toBe(201);
    const icon = await app.inject({ method: 'GET', url: '/v1/apps/restricted/secret-app/icon' });
    expect(icon.statusCode).toBe(200);
    expect(af.requestsTo(RESTRICTED_BASE).some((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });
});
