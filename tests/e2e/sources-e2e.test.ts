import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { IO } from '../../src/cli/io.js';
import type { AppView, SourceAdded, SourceView } from '../../src/protocol/sources.js';
import { startFakeArtifactory, type FakeArtifactory, type RecordedRequest } from '../fixtures/fake-artifactory.js';
import { ICON_BYTES, listApps, OFFICIAL_BASE, publishSource, releaseNotes, RESTRICTED_BASE, tarballBytes, type PublishedSource } from '../helpers/app-sources.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { tempFilesIn, writeUnderWay } from '../helpers/mid-write.js';
import { waitFor } from '../helpers/wait-for.js';

/** Sources and apps through the real daemon, its real token service and the real CLI. */

function configFor(af: FakeArtifactory, official: PublishedSource): Record<string, unknown> {
  return { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl };
}

/** In-process CLI IO that claims to be a terminal. */
function terminalIO(): IO & { out: () => string } {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { stdout, stderr: new PassThrough(), stdin: new PassThrough(), stdoutIsTTY: true, stderrIsTTY: true, stdinIsTTY: false, env: {}, out: () => out };
}

/** Requests for anything under an artifact folder, in either URL form (the download API names it in its query). */
function requestsUnder(af: FakeArtifactory, base: string): RecordedRequest[] {
  return af.requests.filter((r) => r.artifactPath?.startsWith(`${base}/`) === true);
}

/** A regular expression matching `text` literally (URLs carry `?`, `.` and `&`). */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function sourceNamed(daemon: TestDaemon, id: string): Promise<SourceView | undefined> {
  return (await daemon.client.sources()).find((source) => source.id === id);
}

/** A raw GET on the daemon's socket (icons and release notes are not JSON). */
async function socketGet(daemon: TestDaemon, path: string): Promise<{ status: number; type: string | undefined; body: Buffer }> {
  const client = new Client('http://localhost', { socketPath: daemon.socketPath });
  try {
    const res = await client.request({ method: 'GET', path, headers: { host: 'localhost' } });
    const body = Buffer.from(await res.body.arrayBuffer());
    const type = res.headers['content-type'];
    return { status: res.statusCode, type: typeof type === 'string' ? type : undefined, body };
  } finally {
    await client.close();
  }
}

const APPS = ['pc-nrfconnect-ble', 'pc-nrfconnect-dtm', 'pc-nrfconnect-ppk'];

describe('sources and apps end to end', () => {
  let af: FakeArtifactory;
  /** Another origin: no configured server, so a source there is third-party. */
  let thirdParty: FakeArtifactory;
  let daemon: TestDaemon;
  let official: PublishedSource;
  let restricted: PublishedSource;
  let out: string;

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { tok: { token_id: 'tid-1' } } });
    thirdParty = await startFakeArtifactory();
    official = publishSource(af, OFFICIAL_BASE, { name: 'Official nRF Connect apps', apps: APPS, withoutShasum: ['1.0.0'], form: 'download-api' });
    restricted = publishSource(af, RESTRICTED_BASE, { name: 'Restricted apps', apps: ['secret-app'], form: 'download-api' });
    daemon = await startTestDaemon({ config: configFor(af, official) });
    out = await makeTempHome('tb-src-');
  });
  afterAll(async () => {
    await daemon?.cleanup();
    // The last test stops it already.
    await af?.close().catch(() => undefined);
    await thirdParty?.close();
    await rm(out, { recursive: true, force: true });
  });

  const cli = (args: string[]) => runCli(args, { env: daemon.env });

  it('the official source with a display name: 3 apps with every per-version field; apps list prints JSON when stdout is not a terminal', async () => {
    await waitFor('the first refresh', async () => ((await sourceNamed(daemon, 'official'))?.lastRefreshAt ? true : undefined));
    const list = await cli(['sources', 'list']);
    expect(list.code).toBe(0);
    // Piped: a tab-separated table, every value whole (DESIGN section 7).
    expect(list.stdout).toMatch(/^ID\tNAME\tSTATE\tAPPS\tLAST REFRESH\tURL$/m);
    expect(list.stdout).toMatch(new RegExp(`^official \\*\\tOfficial nRF Connect apps\\tok\\t3\\t\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ\\t${literal(af.downloadUrl(official.sourcePath))}$`, 'm'));

    const apps = await cli(['apps', 'list', '--json']);
    expect(apps.code).toBe(0);
    const parsed = JSON.parse(apps.stdout) as AppView[];
    expect(parsed.map((app) => [app.name, app.withdrawn])).toEqual(APPS.map((name) => [name, false]));
    for (const app of parsed) {
      expect(Object.keys(app.versions)).toEqual(['1.0.0', '1.2.0']);
      expect(app.versions['1.2.0']).toEqual({
        // App infos keep their URLs as published: the download-API form.
        tarballUrl: official.urlOf(`${OFFICIAL_BASE}/${app.name}-1.2.0.tgz`),
        shasum: expect.stringMatching(/^[0-9a-f]{40}$/),
        publishTimestamp: '2025-06-01T10:00:00Z',
        nrfutilModules: { device: ['2.7.16'] },
        nrfutilCore: '7.13.0',
        // Fields the contract does not name pass through, per version and at the top level.
        someFutureField: 'kept',
      });
      // shasum is optional, as in the real AppVersion: listed all the same.
      expect(app.versions['1.0.0']).not.toHaveProperty('shasum');
      expect(app).toHaveProperty('someFutureField', { kept: true });
    }
    const io = terminalIO();
    expect(await main(['--socket', daemon.socketPath, 'apps', 'list', '--source', 'Official nRF Connect apps'], { io })).toBe(0);
    expect(io.out().split('\n')).toEqual([
      'SOURCE    NAME               LATEST  DISPLAY NAME',
      'official  pc-nrfconnect-ble  1.2.0   Display pc-nrfconnect-ble',
      'official  pc-nrfconnect-dtm  1.2.0   Display pc-nrfconnect-dtm',
      'official  pc-nrfconnect-ppk  1.2.0   Display pc-nrfconnect-ppk',
      '',
      '3 apps',
      '',
    ]);
    const unknown = await cli(['apps', 'list', '--source', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no source "nope"/);
  });

  it('a version without shasum is downloadable; a wrong index shasum still exits 6', async () => {
    const result = await runCli(['apps', 'download', 'official/pc-nrfconnect-ble@1.0.0', '-o', out], { env: daemon.env });
    expect(result.code).toBe(0);
    expect((await readFile(path.join(out, 'pc-nrfconnect-ble-1.0.0.tgz'))).equals(tarballBytes('pc-nrfconnect-ble', '1.0.0'))).toBe(true);
    af.setFile(`${OFFICIAL_BASE}/pc-nrfconnect-ppk-1.2.0.tgz`, Buffer.from('tampered tarball'));
    try {
      const bad = await runCli(['apps', 'download', 'official/pc-nrfconnect-ppk', '-o', out], { env: daemon.env });
      expect(bad.code).toBe(6);
      expect(await readdir(out)).toEqual(['pc-nrfconnect-ble-1.0.0.tgz']);
    } finally {
      af.setFile(`${OFFICIAL_BASE}/pc-nrfconnect-ppk-1.2.0.tgz`, tarballBytes('pc-nrfconnect-ppk', '1.2.0'));
    }
  });

  it('withdrawn as the launcher computes it: off source.json -> still listed, withdrawn; back -> not; no withdrawn.json requested', async () => {
    listApps(af, official, 'Official nRF Connect apps', ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk']);
    expect((await cli(['sources', 'refresh', 'official'])).code).toBe(0);
    const apps = await daemon.client.apps({ source: 'official' });
    expect(apps.map((app) => [app.name, app.withdrawn])).toEqual([['pc-nrfconnect-ble', false], ['pc-nrfconnect-dtm', true], ['pc-nrfconnect-ppk', false]]);
    expect(apps[1]?.withdrawnAt).toMatch(/^\d{4}-/);
    expect(apps[1]?.versions['1.2.0']?.tarballUrl).toBe(official.urlOf(`${OFFICIAL_BASE}/pc-nrfconnect-dtm-1.2.0.tgz`));
    expect(await sourceNamed(daemon, 'official')).toMatchObject({ appCount: 2, withdrawnCount: 1, state: 'ok' });
    listApps(af, official, 'Official nRF Connect apps', APPS);
    expect((await cli(['sources', 'refresh', 'official'])).code).toBe(0);
    expect((await daemon.client.apps({ source: 'official' })).map((app) => app.withdrawn)).toEqual([false, false, false]);
    expect(af.requests.filter((r) => r.path.includes('withdrawn'))).toEqual([]);
  });

  it('add "Release Test" and "3.7 compatible apps": ids from the names, {source, apps}; the same name again is BROKER_SOURCE_EXISTS', async () => {
    const release = publishSource(af, '/artifactory/swtools/external/ncd/apps/release-test', { name: 'Release Test', apps: ['pc-nrfconnect-rt'], form: 'download-api' });
    const added = await cli(['sources', 'add', release.sourceUrl, '--json']);
    expect(added.code).toBe(0);
    const body = JSON.parse(added.stdout) as SourceAdded;
    expect(body.source).toMatchObject({ id: 'release-test', name: 'Release Test', state: 'ok', appCount: 1, thirdParty: false, restricted: false });
    expect(body.apps.map((app) => `${app.source}/${app.name}`)).toEqual(['release-test/pc-nrfconnect-rt']);
    const compatible = publishSource(af, '/artifactory/swtools/external/ncd/apps/compat', { name: '3.7 compatible apps', apps: ['pc-nrfconnect-old'], form: 'download-api' });
    const text = await cli(['sources', 'add', compatible.sourceUrl]);
    expect(text.stdout).toContain('Added source "3.7 compatible apps" as 3.7-compatible-apps (1 app, ok).');
    expect(text.stdout).toContain('  pc-nrfconnect-old 1.2.0  Display pc-nrfconnect-old');
    const again = publishSource(af, '/artifactory/swtools/external/ncd/apps/again', { name: 'release test', apps: [] });
    const exists = await cli(['sources', 'add', again.sourceUrl]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toContain('(BROKER_SOURCE_EXISTS)');
    // The same source.json in the artifact form is the same canonical URL: refused before any request.
    af.clearRequests();
    const sameUrl = await cli(['sources', 'add', af.url(release.sourcePath)]);
    expect(sameUrl.code).toBe(1);
    expect(sameUrl.stderr).toContain(`${af.url(release.sourcePath)} is already added as "Release Test" (id release-test).`);
    expect(sameUrl.stderr).toContain('(BROKER_SOURCE_EXISTS)');
    const officialAgain = await cli(['sources', 'add', af.url(official.sourcePath)]);
    expect(officialAgain.code).toBe(1);
    expect(officialAgain.stderr).toContain('(BROKER_SOURCE_OFFICIAL)');
    expect(af.requests).toEqual([]);
    const removed = await cli(['sources', 'remove', '3.7 compatible apps']);
    expect(removed.stdout).toContain('Removed source "3.7 compatible apps" (3.7-compatible-apps).');
  });

  it('a third-party source: added, public (never the token), only the URLs its index lists are fetched on its origin', async () => {
    await daemon.client.setToken('tok');
    const published = publishSource(thirdParty, '/pub/apps', { name: 'Third party', apps: ['tp-app'] });
    thirdParty.setFile('/pub/apps/unlisted.bin', Buffer.from('not listed anywhere'));
    const added = await daemon.client.addSource(published.sourceUrl);
    expect(added.source).toMatchObject({ id: 'third-party', thirdParty: true, restricted: false, state: 'ok', appCount: 1 });
    const download = await runCli(['apps', 'download', 'third-party/tp-app', '-o', out], { env: daemon.env });
    expect(download.code).toBe(0);
    expect((await readFile(path.join(out, 'tp-app-1.2.0.tgz'))).equals(tarballBytes('tp-app', '1.2.0'))).toBe(true);
    expect(thirdParty.requestsTo('/pub/apps/tp-app-1.2.0.tgz').length).toBeGreaterThan(0);
    expect(thirdParty.requests.length).toBeGreaterThan(3);
    expect(thirdParty.requests.filter((r) => r.headers.authorization !== undefined)).toEqual([]);

    const unlisted = await cli(['fetch', thirdParty.url('/pub/apps/unlisted.bin'), '-o', path.join(out, 'unlisted.bin')]);
    expect(unlisted.code).toBe(1);
    expect(unlisted.stderr).toContain('(BROKER_URL_NOT_ALLOWED)');
    expect(thirdParty.requestsTo('/pub/apps/unlisted.bin')).toEqual([]);
    expect((await cli(['sources', 'remove', 'third-party'])).code).toBe(0);
    // Once removed, nothing of it is fetchable any more.
    const after = await cli(['fetch', thirdParty.url('/pub/apps/tp-app-1.2.0.tgz'), '-o', path.join(out, 'after.tgz')]);
    expect(after.stderr).toContain('(BROKER_URL_NOT_ALLOWED)');
  });

  it('a restricted source: refused without a token (exit 4, no request), added with one, needs-token the moment the token goes, refreshed when it is set again', async () => {
    await daemon.client.removeToken();
    af.clearRequests();
    const refused = await cli(['sources', 'add', restricted.sourceUrl]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/No identity token is set/);
    expect(refused.stderr).toContain('(BROKER_TOKEN_MISSING)');
    expect(requestsUnder(af, RESTRICTED_BASE)).toEqual([]);

    await daemon.client.setToken('tok');
    const added = await cli(['sources', 'add', restricted.sourceUrl]);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Added source "Restricted apps" as restricted-apps (1 app, ok, restricted).');
    expect(requestsUnder(af, RESTRICTED_BASE).length).toBeGreaterThan(1);
    expect(requestsUnder(af, RESTRICTED_BASE).every((r) => r.headers.authorization === 'Bearer tok')).toBe(true);
    // With a token set, public documents still go without it.
    af.clearRequests();
    await daemon.client.refreshSources({ id: 'official' });
    expect(requestsUnder(af, OFFICIAL_BASE).length).toBeGreaterThan(0);
    expect(requestsUnder(af, OFFICIAL_BASE).filter((r) => r.headers.authorization !== undefined)).toEqual([]);

    const removal = await cli(['token', 'remove', '--yes']);
    expect(removal.code).toBe(0);
    // The very next list, no refresh in between.
    const list = await cli(['sources', 'list']);
    expect(list.stdout).toMatch(/^restricted-apps\s+Restricted apps\s+needs-token\s+1\s/m);
    expect((await daemon.client.status()).sources).toMatchObject({ needsToken: ['restricted-apps'] });
    expect((await cli(['status'])).stdout).toContain('  needs a token: restricted-apps (set one with `tokenbroker token set`)');
    af.clearRequests();
    const refresh = await cli(['sources', 'refresh', 'restricted-apps']);
    expect(refresh.code).toBe(4);
    expect(refresh.stdout).toContain('restricted-apps: needs a token (1 app from the last good index)');
    expect(requestsUnder(af, RESTRICTED_BASE)).toEqual([]);

    // Setting the token again refreshes it by itself, conditionally.
    await daemon.client.setToken('tok');
    const view = await waitFor('the refresh after token set', async () => {
      const source = await sourceNamed(daemon, 'restricted-apps');
      return source?.state === 'ok' ? source : undefined;
    });
    expect(view.lastError).toBeNull();
    const sourceRequest = af.requestsFor(restricted.sourcePath).at(-1);
    expect(sourceRequest?.headers['if-none-match']).toBe((await af.digestOf(restricted.sourcePath)).sha1);
    expect(sourceRequest?.status).toBe(304);
  });

  it('a malformed source.json and 500s: the error shows in `sources list`, the last good index stays served', async () => {
    af.setFault(official.sourcePath, { kind: 'malformedJson' });
    const refresh = await cli(['sources', 'refresh', 'official']);
    expect(refresh.code).toBe(1);
    expect(refresh.stdout).toContain('official: failed (3 apps from the last good index)');
    const list = await cli(['sources', 'list']);
    expect(list.stdout).toMatch(/^official \*\s+Official nRF Connect apps\s+failing\s+3\s/m);
    expect(list.stdout).toMatch(/! .*source\.json: source\.json is not valid JSON\b.*\(BROKER_SOURCE_INVALID\)/);
    expect(list.stdout).toMatch(/Next attempt: .* The last good index \(\d{4}-\d{2}-\d{2} \d{2}:\d{2}Z\) is still served\./);

    af.clearFaults();
    af.setFault(official.sourcePath, { kind: 'status', status: 500 });
    const failed = await cli(['sources', 'refresh', '--json']);
    expect(failed.code).toBe(5);
    const results = JSON.parse(failed.stdout) as { id: string; outcome: string; lastError: { status?: number } | null }[];
    expect(results.find((r) => r.id === 'official')).toMatchObject({ outcome: 'failed', lastError: { status: 500 } });
    expect((await daemon.client.apps({ source: 'official' })).length).toBe(3);
    const status = await daemon.client.status();
    expect(status.sources).toMatchObject({ failing: 1, failingSources: ['official'] });

    af.clearFaults();
    const healed = await cli(['sources', 'refresh']);
    expect(healed.code, healed.stdout + healed.stderr).toBe(0);
  });

  it('sources remove: the official source is refused, a user source goes (by id or display name)', async () => {
    const refusal = await cli(['sources', 'remove', 'official']);
    expect(refusal.code).toBe(1);
    expect(refusal.stderr).toContain('(BROKER_SOURCE_OFFICIAL)');
    const removed = await cli(['sources', 'remove', 'Restricted apps']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain('Removed source "Restricted apps" (restricted-apps).');
    expect((await daemon.client.sources()).map((s) => s.id)).toEqual(['official', 'release-test']);
    const usage = await cli(['sources', 'remove']);
    expect(usage.code).toBe(2);
  });

  it('icons and release notes are served from the copies kept at refresh, with the upstream stopped', async () => {
    await af.close();
    const icon = await socketGet(daemon, '/v1/apps/official/pc-nrfconnect-ble/icon');
    expect(icon.status).toBe(200);
    expect(icon.type).toBe('image/png');
    expect(icon.body.equals(ICON_BYTES)).toBe(true);
    const notes = await socketGet(daemon, '/v1/apps/official/pc-nrfconnect-ble/release-notes');
    expect(notes.status).toBe(200);
    expect(notes.type).toMatch(/^text\/markdown/);
    expect(notes.body.toString()).toBe(releaseNotes('pc-nrfconnect-ble'));
    const missing = await socketGet(daemon, '/v1/apps/official/no-such-app/icon');
    expect(missing.status).toBe(404);
    // The client library's way.
    expect(await daemon.client.appAsset('Official nRF Connect apps', 'pc-nrfconnect-ppk', 'icon')).toEqual({ contentType: 'image/png', bytes: ICON_BYTES });
    await expect(daemon.client.appAsset('official', 'no-such-app', 'release-notes')).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND' });
  });
});

/** How many apps with an app info the stored index holds; undefined while there is none. */
async function storedInfoCount(indexFile: string): Promise<number | undefined> {
  const text = await readFile(indexFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const stored = JSON.parse(text) as { apps: Record<string, { info?: unknown }> };
  return Object.values(stored.apps).filter((entry) => entry.info !== undefined).length;
}

describe('index persistence', () => {
  it('a daemon killed with SIGKILL while writing its index restarts with a valid index', async () => {
    const af = await startFakeArtifactory();
    const home = await makeTempHome();
    const versions = Array.from({ length: 30 }, (_, i) => `1.${i}.0`);
    const apps = Array.from({ length: 300 }, (_, i) => `app-${String(i).padStart(3, '0')}`);
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps, versions });
    const indexFile = path.join(home, 'state', 'indexes', 'official.json');
    try {
      // Kill the moment an index write is under way; count only kills proven to have landed
      // mid-write (the temp file outlived the daemon), until there are two of them.
      let midWrite = 0;
      for (let round = 0; round < 8 && midWrite < 2; round++) {
        const daemon = await startTestDaemon({ home, config: configFor(af, official) });
        await waitFor('a complete index', async () => ((await sourceNamed(daemon, 'official'))?.appCount === 300 ? true : undefined), { timeoutMs: 20_000 });
        // The daemon serves a refreshed index before its write lands: wait for one on disk, so the
        // kill below can only interrupt a rewrite, never the first write of all (no index to keep).
        await waitFor('a complete index on disk', async () => ((await storedInfoCount(indexFile)) === 300 ? true : undefined), { timeoutMs: 20_000 });
        const leftovers = new Set(await tempFilesIn(path.dirname(indexFile)));
        // Refreshes rewrite the ~1.5 MB index back to back.
        const hammer = (async () => {
          for (;;) await daemon.client.refreshSources();
        })().catch(() => undefined);
        await writeUnderWay(path.dirname(indexFile), leftovers);
        daemon.process.kill('SIGKILL');
        await new Promise((resolve) => daemon.process.once('exit', resolve));
        await hammer;
        await daemon.client.close();
        if ((await tempFilesIn(path.dirname(indexFile))).some((name) => !leftovers.has(name))) midWrite++;
        expect(await storedInfoCount(indexFile)).toBe(300);
      }
      expect(midWrite).toBe(2);
      // The last start: upstream fails everything, so what is served comes from disk.
      af.setFault(/.*/, { kind: 'status', status: 500 });
      const daemon = await startTestDaemon({ home, config: configFor(af, official) });
      try {
        const view = await waitFor('the failed start refresh', async () => {
          const source = await sourceNamed(daemon, 'official');
          return source?.state === 'failing' ? source : undefined;
        });
        expect(view.appCount).toBe(300);
        const listed = await daemon.client.apps();
        expect(listed).toHaveLength(300);
        expect(listed[299]).toMatchObject({ name: 'app-299', latestVersion: '1.29.0' });
        // Interrupted writes leave temp files, never a torn index; the next daemon removes them.
        await waitFor('stale temp files removed', async () => ((await readdir(path.dirname(indexFile))).length === 1 ? true : undefined));
        expect(await readdir(path.dirname(indexFile))).toEqual(['official.json']);
      } finally {
        await daemon.cleanup();
      }
    } finally {
      await af.close();
      await rm(home, { recursive: true, force: true });
    }
  }, 120_000);
});
