import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource } from '../helpers/app-sources.js';
import { makeTempHome, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/**
 * A state directory written by tokenbroker 0.1 (tests/fixtures/state-0.1: sources by name, indexes
 * under the lower-cased name, index version 1 with a withdrawn.json list) starts cleanly: the
 * stored indexes are served under ids, and the next refresh rebuilds them in the new form.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/state-0.1/', import.meta.url));
const BETA_BASE = '/artifactory/swtools/external/ncd/apps/beta';

async function copyFixture(af: FakeArtifactory, stateDir: string): Promise<void> {
  for (const name of ['sources.json', 'indexes/official.json', 'indexes/nordic-beta.json']) {
    const target = path.join(stateDir, name);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, (await readFile(path.join(FIXTURE, name), 'utf8')).replaceAll('@ORIGIN@', af.origin), { mode: 0o600 });
  }
  await chmod(stateDir, 0o700);
}

describe('state from tokenbroker 0.1', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;

  beforeAll(async () => {
    af = await startFakeArtifactory();
    const official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'] });
    publishSource(af, BETA_BASE, { name: 'nordic-beta', apps: ['pc-nrfconnect-beta'] });
    // Everything fails at first: what the daemon serves comes from the 0.1 files.
    af.setFault(/.*/, { kind: 'status', status: 503 });
    const home = await makeTempHome('tb-01-');
    await copyFixture(af, path.join(home, 'state'));
    daemon = await startTestDaemon({ home, config: { allowInsecureLoopback: true, secretStore: 'memory', logLevel: 'warn', servers: [{ name: 'nordic', origin: af.origin }], officialSource: official.sourceUrl } });
  });
  afterAll(async () => {
    await daemon?.cleanup();
    await af?.close();
  });

  it('starts and serves the 0.1 indexes under ids, without an error', async () => {
    const sources = await daemon.client.sources();
    expect(sources.map((source) => [source.id, source.name])).toEqual([['official', 'official'], ['nordic-beta', 'nordic-beta']]);
    const apps = await daemon.client.apps();
    // The 0.1 withdrawn.json list is not carried over; an app the index has but source.json does not list is withdrawn.
    expect(apps.map((app) => `${app.source}/${app.name}:${app.withdrawn}`)).toEqual([
      'official/pc-nrfconnect-ble:false',
      'official/pc-nrfconnect-old:true',
      'official/pc-nrfconnect-ppk:false',
      'nordic-beta/pc-nrfconnect-beta:false',
    ]);
    expect(apps[0]?.versions['1.2.0']?.shasum).toMatch(/^[0-9a-f]{40}$/);
    expect(daemon.output()).not.toMatch(/"level":(50|60)/);
    const list = JSON.parse(await readFile(path.join(daemon.home, 'state', 'sources.json'), 'utf8')) as unknown;
    expect(list).toEqual({ version: 2, sources: [{ id: 'nordic-beta', name: 'nordic-beta', url: af.url(`${BETA_BASE}/source.json`), addedAt: 1735725000000 }] });
  });

  it('the next good refresh rebuilds the indexes in the new form', async () => {
    af.clearFaults();
    const results = await daemon.client.refreshSources();
    expect(results.map((result) => [result.id, result.state])).toEqual([['official', 'ok'], ['nordic-beta', 'ok']]);
    const stored = JSON.parse(await readFile(path.join(daemon.home, 'state', 'indexes', 'nordic-beta.json'), 'utf8')) as { version: number };
    expect(stored.version).toBe(2);
    expect((await readdir(path.join(daemon.home, 'state', 'indexes'))).sort()).toEqual(['nordic-beta.json', 'official.json']);
  });
});
