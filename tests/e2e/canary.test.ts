import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { startFakeArtifactory, TOKEN_INFO_PATH, type FakeArtifactory, type Fault } from '../fixtures/fake-artifactory.js';
import { OFFICIAL_BASE, publishSource, RESTRICTED_BASE } from '../helpers/app-sources.js';
import { makeTempHome, runCli, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { recordEvents } from '../helpers/event-stream.js';
import { leakedFragments } from '../helpers/token-fragments.js';

/** Where the records hold any prefix or suffix of 8+ characters of `token` (what a cut leaves), with what they hold. */
function leaksOf(records: { where: string; text: string }[], token: string): { where: string; fragment: string }[] {
  return records.flatMap((s) => {
    const [fragment] = leakedFragments(s.text, token);
    return fragment === undefined ? [] : [{ where: s.where, fragment }];
  });
}

/**
 * The canary: a token `tbk-canary-<random>` goes through every route, CLI command, event and error
 * path of the real daemon (real keychain), and must appear zero times in any response, event, log
 * line, state or cache file, or process argument list.
 */
const canary = `tbk-canary-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
const seen: { where: string; text: string }[] = [];
const see = (where: string, text: string) => seen.push({ where, text });

/**
 * The two ways in, each recording what came back under `record`: the CLI (stdout and stderr) and
 * a raw request on the socket (status, headers, body).
 */
function recordingCallers(daemon: () => TestDaemon, record: (where: string, text: string) => void, extraHeaders: Record<string, string>) {
  const cli = async (args: string[], input?: string) => {
    const result = await runCli(args, { env: daemon().env, ...(input === undefined ? {} : { input }) });
    record(`cli ${args.join(' ')}`, `${result.stdout}\n${result.stderr}`);
    return result;
  };
  const raw = async (method: string, urlPath: string, body?: unknown) => {
    const client = new Client('http://localhost', { socketPath: daemon().socketPath });
    try {
      const res = await client.request({ method: method as 'GET', path: urlPath, headers: { host: 'localhost', 'content-type': 'application/json', ...extraHeaders }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await res.body.text().catch(() => '(aborted)');
      record(`${method} ${urlPath}`, `${JSON.stringify(res.headers)}\n${text}`);
      return { status: res.statusCode, headers: res.headers, text };
    } finally {
      await client.close();
    }
  };
  return { cli, raw };
}

/**
 * One canary run's world: a fake Artifactory that knows `token`, the official and a restricted
 * source, a real daemon on the real keychain with debug logs, and its event stream recorded from
 * the start. `finish()` ends the stream and stops the daemon, recording the events, the daemon's
 * log and every state and cache file.
 */
function canaryWorld(token: string, label: string, record: (where: string, text: string) => void) {
  const world = {
    af: undefined as unknown as FakeArtifactory,
    home: '',
    out: '',
    daemon: undefined as unknown as TestDaemon,
    events: [] as BrokerEvent[],
  };
  const controller = new AbortController();
  let stream: Promise<void> = Promise.resolve();
  const setup = async (prepare: (af: FakeArtifactory) => void): Promise<void> => {
    world.af = await startFakeArtifactory();
    world.af.addToken(token, { token_id: `tid-${label}`, description: label, expiry: Math.floor(Date.now() / 1000) + 10 * 86400 });
    const official = publishSource(world.af, OFFICIAL_BASE, { name: 'official', apps: ['pc-nrfconnect-ble'] });
    publishSource(world.af, RESTRICTED_BASE, { name: 'restricted', apps: ['secret-app'] });
    prepare(world.af);
    world.home = await makeTempHome();
    world.out = await makeTempHome(`tb-${label}-out-`);
    world.daemon = await startTestDaemon({
      home: world.home,
      config: { allowInsecureLoopback: true, secretStore: 'keychain', logLevel: 'debug', servers: [{ name: `${label}-${path.basename(world.home).toLowerCase().replace(/[^a-z0-9]/g, '')}`, origin: world.af.origin }], officialSource: official.sourceUrl },
    });
    const recording = recordEvents(world.daemon.client, controller.signal);
    world.events = recording.events;
    stream = recording.done;
    await recording.opened;
  };
  const finish = async (): Promise<{ files: string[] }> => {
    controller.abort();
    await stream;
    record('events', JSON.stringify(world.events));
    await world.daemon.stop();
    record('daemon log', world.daemon.output());
    const files = (await readdir(world.home, { withFileTypes: true, recursive: true })).filter((e) => e.isFile() && !e.name.endsWith('.sock')).map((e) => path.join(e.parentPath, e.name));
    for (const file of files) record(file, (await readFile(file)).toString('latin1'));
    return { files };
  };
  const teardown = async (): Promise<void> => {
    await runCli(['token', 'remove', '--yes'], { env: world.daemon.env }).catch(() => undefined);
    await world.daemon.cleanup();
    await world.af.close();
    await rm(world.home, { recursive: true, force: true });
    await rm(world.out, { recursive: true, force: true });
  };
  return { world, setup, finish, teardown, ...recordingCallers(() => world.daemon, record, {}) };
}

describe('canary token across everything', () => {
  const run = canaryWorld(canary, 'canary', see);
  const { world } = run;
  const { cli } = run;
  // The client's own Authorization carries the canary too: it must be dropped, never echoed.
  const { raw } = recordingCallers(() => world.daemon, see, { authorization: `Bearer ${canary}` });
  beforeAll(() => run.setup((af) => af.setFile('/artifactory/internal/secret.bin', Buffer.alloc(50_000, 9))));
  afterAll(() => run.teardown());

  it('exercises every route, command and error path with the canary set', async () => {
    const { af, out, daemon, events } = world;
    expect((await cli(['token', 'set'], `${canary}\n`)).code).toBe(0);
    see('daemon cmdline', await readFile(`/proc/${daemon.pid}/cmdline`, 'utf8'));
    // Read-only commands: run side by side (each is recorded on its own).
    await Promise.all([['status', '--json'], ['status'], ['token', 'show'], ['token', 'show', '--json'], ['sources', 'list'], ['apps', 'list', '--json'], ['diagnose', '--json'], ['client-token', 'list']].map((args) => cli(args)));
    expect((await cli(['sources', 'add', af.url(`${RESTRICTED_BASE}/source.json`)])).code).toBe(0);
    await cli(['sources', 'refresh']);
    expect((await cli(['apps', 'download', 'restricted/secret-app', '-o', out])).code).toBe(0);
    const [fetched0, mismatched, refused] = await Promise.all([
      cli(['fetch', af.url('/artifactory/internal/secret.bin'), '-o', path.join(out, 'secret.bin')]),
      cli(['fetch', af.url('/artifactory/internal/secret.bin'), '--sha256', '0'.repeat(64), '-o', path.join(out, 'bad.bin')]),
      cli(['fetch', 'https://evil.example/x', '-o', path.join(out, 'x')]),
      cli(['client-token', 'create', '--description', 'canary check', '--scope', 'status:read']),
    ]);
    expect(fetched0.code).toBe(0);
    expect(mismatched.code).toBe(6);
    expect(refused.code).not.toBe(0);
    await cli(['token', 'replace'], `${canary} with-space\n`);

    await raw('GET', '/v1/status');
    await raw('GET', '/v1/token');
    await raw('PUT', '/v1/token', { token: `${canary}\u0007` });
    await raw('PUT', '/v1/token', { token: `${canary}-not-valid` });
    await raw('GET', '/v1/sources');
    await raw('GET', '/v1/apps');
    await raw('GET', '/v1/apps/restricted/secret-app');
    await raw('GET', '/v1/apps/restricted/secret-app/tarball');
    await raw('GET', '/v1/apps/restricted/secret-app/icon');
    await raw('GET', '/v1/apps/restricted/secret-app/release-notes');
    const fetched = await raw('GET', `/v1/fetch?url=${encodeURIComponent(af.url('/artifactory/internal/secret.bin'))}`);
    expect(fetched.status).toBe(200);
    await raw('GET', `/v1/fetch?url=${encodeURIComponent(af.url('/artifactory/internal/missing.bin'))}`);
    await raw('GET', '/v1/fetches/00000000-0000-0000-0000-000000000000');
    await raw('POST', '/v1/sources/refresh', {});
    await raw('GET', '/v1/nope');

    // Finally the upstream rejects it: token.invalid, and the error paths that follow.
    af.revokeToken(canary);
    const rejected = await raw('GET', `/v1/fetch?url=${encodeURIComponent(af.url(`${RESTRICTED_BASE}/secret-app-1.0.0.tgz`))}`);
    expect(rejected.status).toBe(409);
    expect((await cli(['fetch', af.url('/artifactory/internal/secret.bin'), '-o', path.join(out, 'after.bin')])).code).toBe(4);
    await cli(['token', 'show']);
    await expect.poll(() => events.some((e) => e.type === 'token.invalid'), { timeout: 5000 }).toBe(true);
  });

  it('the canary appears nowhere', async () => {
    const { files } = await run.finish();
    expect(world.events.map((e) => e.type)).toEqual(expect.arrayContaining(['token.set', 'token.expiring', 'token.invalid']));
    expect(files.some((file) => file.includes(`${path.sep}cache${path.sep}`))).toBe(true);
    expect(seen.length).toBeGreaterThan(40);
    expect(leaksOf(seen, canary)).toEqual([]);
  });
});

/**
 * Issue 14: an upstream (or a proxy in front of it) that echoes the Authorization header back in
 * error bodies (JSON, text, XML), checksum headers, a redirect's Location and a 401. The canary
 * must come back out of the daemon nowhere: API answers and their headers, `/v1/fetches/:id`,
 * events, state files, log lines, CLI output.
 */
describe('canary token against a reflecting upstream', () => {
  // 35 characters, as in issue 20's report (a cut before redaction showed 34 of them).
  const reflected = `tbk-reflect-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`.padEnd(35, 'z').slice(0, 35);
  const found: { where: string; text: string }[] = [];
  const note = (where: string, text: string) => found.push({ where, text });
  const run = canaryWorld(reflected, 'reflect', note);
  const { world, cli, raw } = run;
  /** A fetch and the ledger entry that tells how it ended. */
  const fetchAndLedger = async (url: string, query = '') => {
    const answer = await raw('GET', `/v1/fetch?url=${encodeURIComponent(url)}${query}`);
    const id = answer.headers['x-tokenbroker-request-id'];
    if (typeof id === 'string') await raw('GET', `/v1/fetches/${id}`);
    return answer;
  };

  beforeAll(() => run.setup(() => undefined));
  afterAll(() => run.teardown());

  it('every reflecting answer goes through the daemon', async () => {
    const { af, out, events } = world;
    expect((await cli(['token', 'set'], `${reflected}\n`)).code).toBe(0);
    expect((await cli(['sources', 'add', af.url(`${RESTRICTED_BASE}/source.json`)])).code).toBe(0);

    // [name, fault, the daemon's answer status]
    const cases: [string, Fault, number][] = [
      ['json-403', { kind: 'reflect', as: 'json', status: 403 }, 403],
      ['json-429', { kind: 'reflect', as: 'json', status: 429 }, 502],
      ['json-500', { kind: 'reflect', as: 'json', status: 500 }, 502],
      ['text-502', { kind: 'reflect', as: 'text' }, 502],
      ['xml-403', { kind: 'reflect', as: 'xml' }, 403],
      ['checksum', { kind: 'reflect', as: 'checksum' }, 200],
      ['redirect', { kind: 'reflect', as: 'redirect' }, 502],
      // Same origin, but the Location carries the token: refused, never followed (issue 20).
      ['redirect-followed', { kind: 'reflect', as: 'redirect', to: af.origin }, 502],
    ];
    for (const [name, fault, status] of cases) {
      const artifact = `/artifactory/internal/reflect-${name}.bin`;
      af.setFault(artifact, fault);
      const answer = await fetchAndLedger(af.url(artifact));
      expect(answer.status, name).toBe(status);
      if (name === 'checksum') {
        // Relayed headers that carry the token are dropped; the body is content and is passed on.
        expect(answer.headers['x-checksum-sha1']).toBeUndefined();
        expect(answer.headers.etag).toBeUndefined();
        expect(answer.text).toBe('reflected checksum body');
      } else if (name !== 'redirect' && name !== 'redirect-followed') {
        // (Redirect errors name the URL the client asked for, never the Location.)
        expect(answer.text, name).toContain('[redacted]');
      }
      // The token went out with the request, so the upstream really had it to reflect.
      expect(af.requestsTo(artifact).at(-1)?.headers.authorization, name).toBe(`Bearer ${reflected}`);
    }
    // The same-origin redirect that carries the token was not followed anywhere.
    expect(af.requestsTo('/artifactory/echo/')).toEqual([]);

    // Issue 20: the client chooses its path's length so that the 200-character cut of the
    // upstream's message falls inside the token (142 characters: 34 of 35 were shown). Redacted
    // first, then cut: nothing of it in the answer, the fetch record, download.done, the log.
    const cutPath = `/artifactory/internal/${'c'.repeat(142 - '/artifactory/internal/'.length)}`;
    expect(cutPath).toHaveLength(142);
    af.setFault(cutPath, { kind: 'reflect', as: 'json-path' });
    const cut = await fetchAndLedger(af.url(cutPath));
    expect(cut.status).toBe(502);
    expect(cut.text).toContain('was denied: Bearer [redacted]');
    await raw('POST', '/v1/downloads', { url: af.url(cutPath), path: path.join(out, 'cut.bin') });
    expect((await cli(['fetch', af.url(cutPath), '-o', path.join(out, 'cut-cli.bin')])).code).not.toBe(0);

    // The checksum header disagrees with the requested digest: refused before the first byte.
    expect((await fetchAndLedger(af.url('/artifactory/internal/reflect-checksum.bin'), `&sha1=${'0'.repeat(40)}`)).status).toBe(502);
    expect((await cli(['fetch', af.url('/artifactory/internal/reflect-text-502.bin'), '-o', path.join(out, 'text.bin')])).code).not.toBe(0);
    expect((await cli(['fetch', af.url('/artifactory/internal/reflect-checksum.bin'), '--sha1', '0'.repeat(40), '-o', path.join(out, 'sum.bin')])).code).toBe(6);

    // A source whose documents now reflect: lastError, source.failed, the stored index.
    af.setFault(`${RESTRICTED_BASE}/source.json`, { kind: 'reflect', as: 'json', status: 500 });
    await raw('POST', '/v1/sources/refresh', {});
    af.setFault(`${RESTRICTED_BASE}/secret-app.json`, { kind: 'reflect', as: 'xml' });
    af.clearFaults(`${RESTRICTED_BASE}/source.json`);
    await raw('POST', '/v1/sources/refresh', {});
    af.setFault('/artifactory/swtools/internal/ncd/apps/other/source.json', { kind: 'reflect', as: 'text' });
    await cli(['sources', 'add', af.url('/artifactory/swtools/internal/ncd/apps/other/source.json')]);
    await cli(['sources', 'list']);

    // Validating a new token against a reflecting tokens/me: the candidate comes back in the error.
    af.setFault(TOKEN_INFO_PATH, { kind: 'reflect', as: 'json', status: 500 }, { times: 1 });
    await raw('PUT', '/v1/token', { token: `${reflected}-candidate` });

    // Last, a 401 that reflects it at the cut: the token becomes invalid with the upstream's reason
    // (kept in state/tokens.json and shown by status): redacted, then cut.
    const cut401 = `/artifactory/internal/${'d'.repeat(142 - '/artifactory/internal/'.length)}`;
    af.setFault(cut401, { kind: 'reflect', as: 'json-path', status: 401 });
    expect((await fetchAndLedger(af.url(cut401))).status).toBe(409);
    await expect.poll(() => events.some((e) => e.type === 'token.invalid'), { timeout: 5000 }).toBe(true);
    await Promise.all([['GET', '/v1/token'], ['GET', '/v1/status'], ['GET', '/v1/sources'], ['GET', '/v1/apps']].map(([method, route]) => raw(method as string, route as string)));
    await Promise.all([['status', '--json'], ['token', 'show', '--json'], ['sources', 'list'], ['diagnose', '--json']].map((args) => cli(args)));
  });

  it('the reflected canary appears nowhere, and the reflections were redacted, not lost', async () => {
    await run.finish();
    expect(leaksOf(found, reflected)).toEqual([]);
    // The cut cases reached every sink they name: download.done and the invalid reason in tokens.json.
    expect(world.events.some((e) => e.type === 'download.done')).toBe(true);
    expect(found.some((s) => s.where.endsWith('tokens.json') && s.text.includes('was denied: Bearer [redacted]'))).toBe(true);
    // The reflections did reach the daemon's answers: each came out as [redacted].
    expect(found.filter((s) => s.text.includes('[redacted]')).length).toBeGreaterThan(5);
  });
});
