import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { appsListed, OFFICIAL_BASE, publishSource, RESTRICTED_BASE, tarballBytes } from '../helpers/app-sources.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/** App tarballs: `GET /v1/apps/:source/:name[/tarball]` and `apps download`, verified by shasum. */
describe('app downloads', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  let out: string;

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { 'tok-apps': { token_id: 'tid-apps' } } });
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-bad'] });
    publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
    // The bytes on the server no longer match the shasum in the index.
    af.setFile(`${OFFICIAL_BASE}/pc-nrfconnect-bad-1.2.0.tgz`, Buffer.from('tampered tarball'));
    daemon = await startTestDaemon({ config: { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl } });
    out = await makeTempHome('tb-apps-');
    await appsListed(daemon.client, 2);
  });
  afterAll(async () => {
    await daemon.cleanup();
    await af.close();
    await rm(out, { recursive: true, force: true });
  });

  it('GET /v1/apps/:source/:name names the tarball, its shasum and file name', async () => {
    const detail = await daemon.client.app('official', 'pc-nrfconnect-ble');
    expect(detail.tarball).toMatchObject({ version: '1.2.0', fileName: 'pc-nrfconnect-ble-1.2.0.tgz', tarballUrl: af.url(`${OFFICIAL_BASE}/pc-nrfconnect-ble-1.2.0.tgz`) });
    expect(detail.tarball.shasum).toMatch(/^[0-9a-f]{40}$/);
    expect((await daemon.client.app('official', 'pc-nrfconnect-ble', { version: '1.0.0' })).tarball.fileName).toBe('pc-nrfconnect-ble-1.0.0.tgz');
    await expect(daemon.client.app('official', 'pc-nrfconnect-ble', { version: '9.9.9' })).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND', hint: expect.stringContaining('1.0.0') as string });
    await expect(daemon.client.app('official', 'no-such-app')).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND' });
  });

  it('GET /v1/apps/:source/:name/tarball streams the verified tarball with its file name', async () => {
    const client = new Client('http://localhost', { socketPath: daemon.socketPath });
    try {
      const res = await client.request({ method: 'GET', path: '/v1/apps/official/pc-nrfconnect-ble/tarball?version=1.0.0', headers: { host: 'localhost' } });
      const body = Buffer.from(await res.body.arrayBuffer());
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-disposition']).toBe('attachment; filename="pc-nrfconnect-ble-1.0.0.tgz"');
      expect(res.headers['x-tokenbroker-verified-by']).toBe('shasum');
      expect(body.equals(tarballBytes('pc-nrfconnect-ble', '1.0.0'))).toBe(true);
      const bad = await client.request({ method: 'GET', path: '/v1/apps/official/pc-nrfconnect-bad/tarball', headers: { host: 'localhost' } });
      // The upstream's own X-Checksum-Sha1 already disagrees with the index: refused before any byte.
      expect(bad.statusCode).toBe(502);
      expect(JSON.parse(await bad.body.text())).toMatchObject({ error: { code: 'BROKER_CHECKSUM_MISMATCH' } });
    } finally {
      await client.close();
    }
  });

  it('apps download saves SOURCE/NAME@VERSION under the tarball file name', async () => {
    const result = await runCli(['apps', 'download', 'official/pc-nrfconnect-ble@1.0.0', '-o', out], { env: daemon.env });
    expect(result.code).toBe(0);
    const file = path.join(out, 'pc-nrfconnect-ble-1.0.0.tgz');
    expect(result.stdout.trim()).toBe(file);
    expect((await readFile(file)).equals(tarballBytes('pc-nrfconnect-ble', '1.0.0'))).toBe(true);
    const latest = await runCli(['apps', 'download', 'official/pc-nrfconnect-ble', '-o', out], { env: daemon.env });
    expect(latest.code).toBe(0);
    expect(await readdir(out)).toContain('pc-nrfconnect-ble-1.2.0.tgz');
  });

  it('POST /v1/downloads {source, app, version} writes the tarball, verified by the index shasum', async () => {
    const dest = path.join(out, 'by-app.tgz');
    const outcome = await daemon.client.postDownload({ source: 'official', app: 'pc-nrfconnect-ble', version: '1.0.0', path: dest });
    expect(outcome).toMatchObject({ path: dest, verifiedBy: 'shasum', resumed: false, bytes: tarballBytes('pc-nrfconnect-ble', '1.0.0').length });
    expect((await readFile(dest)).equals(tarballBytes('pc-nrfconnect-ble', '1.0.0'))).toBe(true);
    await rm(dest);
    await expect(daemon.client.postDownload({ source: 'official', app: 'pc-nrfconnect-ble', version: '9.9.9', path: dest })).rejects.toMatchObject({ code: 'BROKER_NOT_FOUND' });
  });

  it('apps download of a tarball whose bytes do not match shasum exits 6 and leaves nothing behind', async () => {
    const before = await readdir(out);
    const result = await runCli(['apps', 'download', 'official/pc-nrfconnect-bad', '-o', out], { env: daemon.env });
    expect(result.code).toBe(6);
    expect(result.stderr).toMatch(/checksum/i);
    expect(await readdir(out)).toEqual(before);
  });

  it('a restricted app needs the token: downloads with it, exits 4 once it is removed; bad specs exit 2', async () => {
    await daemon.client.setToken('tok-apps');
    await daemon.client.addSource(af.url(`${RESTRICTED_BASE}/source.json`));
    const withToken = await runCli(['apps', 'download', 'restricted/secret-app', '-o', out], { env: daemon.env });
    expect(withToken.code).toBe(0);
    expect(af.requestsTo(`${RESTRICTED_BASE}/secret-app-1.2.0.tgz`).at(-1)?.headers.authorization).toBe('Bearer tok-apps');
    await daemon.client.removeToken();
    const restricted = await runCli(['apps', 'download', 'restricted/secret-app@1.0.0', '-o', out], { env: daemon.env });
    expect(restricted.code).toBe(4);
    expect(restricted.stderr).toMatch(/token set/);
    for (const spec of ['no-slash', '../etc/passwd', 'official/a/b', 'official/app@']) {
      const bad = await runCli(['apps', 'download', spec, '-o', out], { env: daemon.env });
      expect(bad.code, spec).toBe(2);
    }
  });
});
