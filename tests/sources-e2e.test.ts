import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import type { IO } from '../src/cli/io.js';
import type { AppView, SourceView } from '../src/protocol/sources.js';
import { startFakeArtifactory, type FakeArtifactory } from './fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource, RESTRICTED_BASE, type PublishedSource } from './helpers/app-sources.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from './helpers/test-daemon.js';
import { tempFilesIn, writeUnderWay } from './helpers/mid-write.js';

/** Sources and apps through the real daemon, its real token service and the real CLI. */

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

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

async function sourceNamed(daemon: TestDaemon, name: string): Promise<SourceView | undefined> {
  return (await daemon.client.sources()).find((source) => source.name === name);
}

describe('sources and apps end to end', () => {
  let af: FakeArtifactory;
  let daemon: TestDaemon;
  let official: PublishedSource;
  let restricted: PublishedSource;

  beforeAll(async () => {
    af = await startFakeArtifactory({ tokens: { tok: { token_id: 'tid-1' } } });
    official = publishSource(af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble', 'pc-nrfconnect-ppk'], withdrawn: ['pc-nrfconnect-old'] });
    restricted = publishSource(af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
    daemon = await startTestDaemon({ config: configFor(af, official) });
  });
  afterAll(async () => {
    await daemon?.cleanup();
    await af?.close();
  });

  const cli = (args: string[]) => runCli(args, { env: daemon.env });

  it('refreshes the official source at start; apps list prints JSON when stdout is not a terminal', async () => {
    await until('the first refresh', async () => ((await sourceNamed(daemon, 'official'))?.lastRefreshAt ? true : undefined));
    const list = await cli(['sources', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+STATE\s+APPS\s+LAST REFRESH\s+URL$/m);
    expect(list.stdout).toMatch(new RegExp(`^official \\*\\s+ok\\s+3\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\dZ\\s+${official.sourceUrl.replace(/[.]/g, '\\.')}$`, 'm'));

    const apps = await cli(['apps', 'list']);
    expect(apps.code).toBe(0);
    const parsed = JSON.parse(apps.stdout) as AppView[];
    expect(parsed.map((app) => [app.name, app.withdrawn])).toEqual([
      ['pc-nrfconnect-ble', false],
      ['pc-nrfconnect-old', true],
      ['pc-nrfconnect-ppk', false],
    ]);
    expect(parsed[0]).toMatchObject({ source: 'official', latestVersion: '1.2.0', versions: ['1.2.0', '1.0.0'] });
    const io = terminalIO();
    expect(await main(['--socket', daemon.socketPath, 'apps', 'list', '--source', 'official'], { io })).toBe(0);
    expect(io.out().split('\n')).toEqual([
      'SOURCE    NAME               LATEST  DISPLAY NAME',
      'official  pc-nrfconnect-ble  1.2.0   Display pc-nrfconnect-ble',
      'official  pc-nrfconnect-old  1.2.0   Display pc-nrfconnect-old (withdrawn)',
      'official  pc-nrfconnect-ppk  1.2.0   Display pc-nrfconnect-ppk',
      '',
      '3 apps',
      '',
    ]);
    const unknown = await cli(['apps', 'list', '--source', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no source named "nope"/);
  });

  it('a restricted source: refused without a token (exit 4, no request), added with one, needs-token once it is removed, refreshed when it is set again', async () => {
    af.clearRequests();
    const refused = await cli(['sources', 'add', restricted.sourceUrl]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/No identity token is set/);
    expect(refused.stderr).toContain('(BROKER_TOKEN_MISSING)');
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);

    await daemon.client.setToken('tok');
    const added = await cli(['sources', 'add', restricted.sourceUrl]);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Added source "restricted" (1 app, ok, restricted).');
    expect(af.requestsTo(RESTRICTED_BASE).every((r) => r.headers.authorization === 'Bearer tok')).toBe(true);

    await daemon.client.removeToken();
    af.clearRequests();
    const refresh = await cli(['sources', 'refresh', 'restricted']);
    expect(refresh.code).toBe(4);
    expect(refresh.stdout).toContain('restricted: needs a token (1 app from the last good index)');
    expect(af.requestsTo(RESTRICTED_BASE)).toEqual([]);
    const list = await cli(['sources', 'list']);
    expect(list.stdout).toMatch(/^restricted\s+needs-token\s+1\s/m);
    expect(list.stdout).toMatch(/! No identity token is set for "nordic"\. \(BROKER_TOKEN_MISSING\)/);

    // Setting the token again refreshes it by itself, conditionally.
    await daemon.client.setToken('tok');
    const view = await until('the refresh after token set', async () => {
      const source = await sourceNamed(daemon, 'restricted');
      return source?.state === 'ok' ? source : undefined;
    });
    expect(view.lastError).toBeNull();
    const sourceRequest = af.requestsTo(restricted.sourcePath).at(-1);
    expect(sourceRequest?.headers['if-none-match']).toBe((await af.digestOf(restricted.sourcePath)).sha1);
    expect(sourceRequest?.status).toBe(304);
  });

  it('a malformed source.json and 500s: the error shows in `sources list`, the last good index stays served', async () => {
    af.setFault(official.sourcePath, { kind: 'malformedJson' });
    const refresh = await cli(['sources', 'refresh', 'official']);
    expect(refresh.code).toBe(1);
    expect(refresh.stdout).toContain('official: failed (3 apps from the last good index)');
    const list = await cli(['sources', 'list']);
    expect(list.stdout).toMatch(/^official \*\s+failing\s+3\s/m);
    expect(list.stdout).toMatch(/! .*source\.json: source\.json is not valid JSON .*\(BROKER_SOURCE_INVALID\)/);
    expect(list.stdout).toMatch(/Next attempt: .* The last good index \(\d{4}-\d{2}-\d{2} \d{2}:\d{2}Z\) is still served\./);

    af.clearFaults();
    af.setFault(official.sourcePath, { kind: 'status', status: 500 });
    const failed = await cli(['sources', 'refresh', '--json']);
    expect(failed.code).toBe(5);
    const results = JSON.parse(failed.stdout) as { name: string; outcome: string; lastError: { status?: number } | null }[];
    expect(results.find((r) => r.name === 'official')).toMatchObject({ outcome: 'failed', lastError: { status: 500 } });
    expect((await daemon.client.apps({ source: 'official' })).length).toBe(3);
    const status = await daemon.client.status();
    expect(status.sources).toMatchObject({ count: 2, failing: 1, failingSources: ['official'] });

    af.clearFaults();
    expect((await cli(['sources', 'refresh'])).code).toBe(0);
  });

  it('sources remove: the official source is refused, a user source goes', async () => {
    const official = await cli(['sources', 'remove', 'official']);
    expect(official.code).toBe(1);
    expect(official.stderr).toContain('(BROKER_SOURCE_OFFICIAL)');
    const removed = await cli(['sources', 'remove', 'restricted']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain('Removed source "restricted".');
    expect((await daemon.client.sources()).map((s) => s.name)).toEqual(['official']);
    const usage = await cli(['sources', 'remove']);
    expect(usage.code).toBe(2);
  });
});

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
        await until('a complete index', async () => ((await sourceNamed(daemon, 'official'))?.appCount === 300 ? true : undefined), 20_000);
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
        const stored = JSON.parse(await readFile(indexFile, 'utf8')) as { apps: Record<string, { info?: unknown }> };
        expect(Object.values(stored.apps).filter((entry) => entry.info !== undefined)).toHaveLength(300);
      }
      expect(midWrite).toBe(2);
      // The last start: upstream fails everything, so what is served comes from disk.
      af.setFault(/.*/, { kind: 'status', status: 500 });
      const daemon = await startTestDaemon({ home, config: configFor(af, official) });
      try {
        const view = await until('the failed start refresh', async () => {
          const source = await sourceNamed(daemon, 'official');
          return source?.state === 'failing' ? source : undefined;
        });
        expect(view.appCount).toBe(300);
        const listed = await daemon.client.apps();
        expect(listed).toHaveLength(300);
        expect(listed[299]).toMatchObject({ name: 'app-299', latestVersion: '1.29.0' });
        // Interrupted writes leave temp files, never a torn index; the next daemon removes them.
        await until('stale temp files removed', async () => ((await readdir(path.dirname(indexFile))).length === 1 ? true : undefined));
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
