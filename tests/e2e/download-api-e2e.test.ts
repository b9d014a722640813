/**
 * Documents shaped exactly as nRF Connect for Desktop publishes them today: every URL inside
 * source.json and the app infos is Artifactory's UI download API. Through the real daemon and a
 * fake that serves both URL forms: the apps load, the token goes only where the canonical path
 * needs it, every request carries the User-Agent, a tarball is saved under its canonical name,
 * and one 429 reads the same through a fetch, a source add and a refresh.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { appsListed, OFFICIAL_BASE, RESTRICTED_BASE } from '../helpers/app-sources.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

const TOKEN = 'e2e-download-api-token';
const VERSION = '4.2.1';

function tarball(app: string): Buffer {
  return Buffer.from(`tarball of ${app} ${VERSION}\n`.repeat(40));
}

/** Publishes source.json and app infos whose every URL is the download-API form; returns the source URL (long form). */
function publishLongForm(af: FakeArtifactory, base: string, name: string, apps: readonly string[]): string {
  for (const app of apps) {
    af.setFile(`${base}/${app}-${VERSION}.tgz`, tarball(app));
    af.setFile(`${base}/${app}.svg`, '<svg xmlns="http://www.w3.org/2000/svg"/>', { contentType: 'image/svg+xml' });
    af.setFile(`${base}/${app}-Changelog.md`, `## ${VERSION}\n- first\n`, { contentType: 'text/markdown' });
    af.setJson(`${base}/${app}.json`, {
      name: app,
      displayName: app,
      description: `The ${app} app`,
      iconUrl: af.downloadUrl(`${base}/${app}.svg`),
      releaseNotesUrl: af.downloadUrl(`${base}/${app}-Changelog.md`),
      latestVersion: VERSION,
      versions: { [VERSION]: { tarballUrl: af.downloadUrl(`${base}/${app}-${VERSION}.tgz`), shasum: createHash('sha1').update(tarball(app)).digest('hex') } },
    });
  }
  af.setJson(`${base}/source.json`, { name, apps: apps.map((app) => af.downloadUrl(`${base}/${app}.json`)) });
  return af.downloadUrl(`${base}/source.json`);
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error?: { code: string; details?: Record<string, unknown> } } & Record<string, unknown>;
}

/** One request over the daemon's socket, headers included (the client library hides them). */
function raw(daemon: TestDaemon, method: string, pathAndQuery: string, body?: unknown): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: daemon.socketPath, method, path: pathAndQuery, headers: { host: 'localhost', 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text === '' ? {} : (JSON.parse(text) as RawAnswer['json']) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('download-API documents through the real daemon', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  let officialUrl: string;
  const officialApps = ['pc-nrfconnect-ppk', 'pc-nrfconnect-ble'];

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { [TOKEN]: { token_id: 'tid-e2e' } } });
    officialUrl = publishLongForm(af, OFFICIAL_BASE, 'official', officialApps);
    publishLongForm(af, RESTRICTED_BASE, 'restricted-apps', ['secret-app']);
    daemon = await startTestDaemon({
      config: { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin, requestForm: 'download-api' }], officialSource: officialUrl },
    });
  });
  afterAll(async () => {
    await daemon?.cleanup();
    await af?.close();
  });

  it('loads the official source; public documents go without the token', async () => {
    await appsListed(daemon.client, officialApps.length, 'official');
    const apps = await daemon.client.apps({ source: 'official' });
    expect(apps.map((app) => app.name).sort()).toEqual([...officialApps].sort());
    const official = af.requests.filter((r) => r.artifactPath?.startsWith(OFFICIAL_BASE));
    expect(official.length).toBeGreaterThanOrEqual(1 + officialApps.length);
    expect(official.every((r) => r.form === 'download-api' && !r.authorization && r.status === 200)).toBe(true);
  });

  it('a restricted source added by its download-API URL gets the token, only there', async () => {
    await daemon.client.setToken(TOKEN, { verify: true });
    let mark = af.requests.length;
    const added = await daemon.client.addSource(af.downloadUrl(`${RESTRICTED_BASE}/source.json`));
    expect(added.source).toMatchObject({ id: 'restricted-apps', name: 'restricted-apps', restricted: true });
    expect(added.apps.map((app) => app.name)).toEqual(['secret-app']);
    const restricted = af.requests.slice(mark).filter((r) => r.artifactPath?.startsWith(RESTRICTED_BASE));
    expect(restricted.length).toBeGreaterThanOrEqual(2);
    expect(restricted.every((r) => r.form === 'download-api' && r.authorization && r.status === 200)).toBe(true);
    // A refresh of everything: public documents still never carry it.
    mark = af.requests.length;
    await daemon.client.refreshSources();
    const refreshed = af.requests.slice(mark);
    expect(refreshed.filter((r) => r.artifactPath?.startsWith(OFFICIAL_BASE)).every((r) => !r.authorization)).toBe(true);
    expect(refreshed.filter((r) => r.artifactPath?.startsWith(RESTRICTED_BASE)).every((r) => r.authorization)).toBe(true);
    expect(refreshed.length).toBeGreaterThanOrEqual(2);
  });

  it('apps download saves a download-API tarball under its canonical file name', async () => {
    const dir = await makeTempHome('tb-dl-');
    const result = await runCli(['apps', 'download', 'official/pc-nrfconnect-ppk', '-o', dir], { env: daemon.env });
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    const saved = await readFile(path.join(dir, `pc-nrfconnect-ppk-${VERSION}.tgz`));
    expect(saved.equals(tarball('pc-nrfconnect-ppk'))).toBe(true);
    expect(af.requestsFor(`${OFFICIAL_BASE}/pc-nrfconnect-ppk-${VERSION}.tgz`).some((r) => r.form === 'download-api' && !r.authorization)).toBe(true);
  });

  it('the same 429 reads the same through a fetch, a source add and a refresh', async () => {
    const limited = { kind: 'status', status: 429, retryAfter: 7 } as const;
    // A fetch.
    af.setFault(`${OFFICIAL_BASE}/pc-nrfconnect-ble-${VERSION}.tgz`, limited, { times: 1 });
    const fetched = await raw(daemon, 'GET', `/v1/fetch?url=${encodeURIComponent(af.downloadUrl(`${OFFICIAL_BASE}/pc-nrfconnect-ble-${VERSION}.tgz`))}`);
    // A source add.
    const moreSource = `${OFFICIAL_BASE.replace(/\/official$/, '')}/more/source.json`;
    af.setJson(moreSource, { name: 'more', apps: [] });
    af.setFault(moreSource, limited, { times: 1 });
    const add = await raw(daemon, 'POST', '/v1/sources', { url: af.downloadUrl(moreSource) });
    // A refresh.
    af.setFault(`${OFFICIAL_BASE}/source.json`, limited, { times: 1 });
    await daemon.client.refreshSources({ id: 'official' });
    const official = (await daemon.client.sources()).find((source) => source.name === 'official');

    for (const answer of [fetched, add]) {
      expect(answer.status).toBe(502);
      expect(answer.json.error).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { status: 429, retryAfter: 7 } });
      expect(answer.headers['retry-after']).toBe('7');
    }
    expect(official?.lastError).toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', status: 429, retryAfter: 7 });
    // Problems and errors name the canonical URL, never `.../ui/api/v1/download`.
    expect(official?.lastError?.url).toBe(af.url(`${OFFICIAL_BASE}/source.json`));
    expect(JSON.stringify([fetched.json, add.json])).not.toContain('/ui/api/v1/download');
  });

  it('every upstream request carried the User-Agent (token check, documents, tarballs, fetches)', () => {
    expect(af.requests.some((r) => r.path.startsWith('/access/api/v1/tokens/me'))).toBe(true);
    expect(af.requests.length).toBeGreaterThan(8);
    const agents = new Set(af.requests.map((r) => r.headers['user-agent']));
    expect([...agents].every((agent) => typeof agent === 'string' && /^tokenbroker\/\d/.test(agent))).toBe(true);
  });
});
