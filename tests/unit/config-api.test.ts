import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { ConfigControl } from '../../src/daemon/config-control.js';
import { buildServer } from '../../src/daemon/server.js';
import { applyMergePatch, type ConfigView } from '../../src/protocol/config-api.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { testServerDeps } from '../helpers/server-deps.js';

/**
 * Settings at run time (issue 21, DESIGN section 3): GET/PATCH /v1/config through the real
 * ConfigControl on a real file in a temp dir, over inject() (no process is needed).
 */

const EXTRA = { 'x-test-listener': 'extra' };
const listenerOf = (raw: IncomingMessage) => (raw.headers['x-test-listener'] === 'extra' ? { path: '/test/shared.sock' } : undefined);
const MERGE_PATCH = { 'content-type': 'application/merge-patch+json' };

let app: FastifyInstance | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function build(initialFile?: Record<string, unknown>) {
  const dir = await mkdtemp(path.join(tmpdir(), 'tb-config-'));
  dirs.push(dir);
  const file = path.join(dir, 'config.json');
  if (initialFile !== undefined) await writeFile(file, JSON.stringify(initialFile), { mode: 0o600 });
  const initial = ConfigSchema.parse(initialFile ?? {});
  const clock = new FakeClock();
  const events = new EventBus(clock);
  const seen: BrokerEvent[] = [];
  events.subscribe((event) => seen.push(event));
  const deps = testServerDeps({ listenerOf, events, clock });
  const control = new ConfigControl({ file, initial, logger: deps.logger, events });
  app = await buildServer({ ...deps, configApi: control, getConfig: () => control.current() });
  return { app, file, control, events: seen, deps };
}

const error = (body: string) => (JSON.parse(body) as { error: { code: string; message: string; details?: Record<string, unknown> } }).error;

describe('GET /v1/config', () => {
  it('answers the file\'s own content, the effective config and the ETag (header and body)', async () => {
    const { app } = await build({ logLevel: 'warn', refresh: { intervalMinutes: 30 } });
    const res = await app.inject({ method: 'GET', url: '/v1/config' });
    expect(res.statusCode).toBe(200);
    const view = res.json<ConfigView>();
    expect(view.file).toEqual({ logLevel: 'warn', refresh: { intervalMinutes: 30 } });
    expect(view).toMatchObject({ exists: true, restartRequired: [], effective: { logLevel: 'warn', refresh: { intervalMinutes: 30, jitterPercent: 10, concurrency: 8 }, secretStore: 'auto' } });
    expect(res.headers.etag).toBe(view.etag);
    expect(view.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
  });

  it('without a file: {} and every default', async () => {
    const { app } = await build();
    const view = (await app.inject({ method: 'GET', url: '/v1/config' })).json<ConfigView>();
    expect(view).toMatchObject({ exists: false, file: {}, effective: { logLevel: 'info', servers: [expect.objectContaining({ name: 'nordic', origin: 'https://files.nordicsemi.com' })] } });
  });
});

describe('PATCH /v1/config', () => {
  it('applies a merge patch to the file\'s content (not the defaults), writes it 0600, applies it at once and emits config.changed', async () => {
    const { app, file, control, events } = await build({ logLevel: 'warn', expiryWarningDays: [7] });
    const etag = (await app.inject({ method: 'GET', url: '/v1/config' })).headers.etag as string;
    const res = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': etag }, payload: JSON.stringify({ logLevel: 'debug', expiryWarningDays: null, refresh: { intervalMinutes: 15 } }) });
    expect(res.statusCode).toBe(200);
    const view = res.json<ConfigView>();
    // null removes a key; only what the file said (and the patch adds) is written, no defaults.
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ logLevel: 'debug', refresh: { intervalMinutes: 15 } });
    expect(view.file).toEqual({ logLevel: 'debug', refresh: { intervalMinutes: 15 } });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(view.etag).not.toBe(etag);
    expect(res.headers.etag).toBe(view.etag);
    expect(view.restartRequired).toEqual([]);
    // Applied like SIGHUP: in force now.
    expect(control.current()).toMatchObject({ logLevel: 'debug', expiryWarningDays: [14, 3, 1], refresh: { intervalMinutes: 15 } });
    expect(events.filter((e) => e.type === 'config.changed')).toEqual([expect.objectContaining({ via: 'patch', changed: ['refresh', 'expiryWarningDays', 'logLevel'], restartRequired: [] })]);
  });

  it('the launcher\'s "Mainland China server" switch: servers is replaced whole (read-modify-write); restart-only keys are listed', async () => {
    const { app, control } = await build();
    const before = (await app.inject({ method: 'GET', url: '/v1/config' })).json<ConfigView>();
    const servers = (before.effective.servers as Record<string, unknown>[]).map((server) => ({ ...server, publicMirrorOrigin: 'https://files.nordicsemi.cn' }));
    const res = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { 'content-type': 'application/json', 'if-match': before.etag }, payload: { servers, proxy: { https: 'http://proxy.example:3128' } } });
    expect(res.statusCode).toBe(200);
    expect(control.current().servers[0]).toMatchObject({ name: 'nordic', publicMirrorOrigin: 'https://files.nordicsemi.cn', requestForm: 'download-api' });
    expect(res.json<ConfigView>().restartRequired).toEqual(['proxy']);
    // Still pending on a later read, until the daemon restarts.
    expect((await app.inject({ method: 'GET', url: '/v1/config' })).json<ConfigView>().restartRequired).toEqual(['proxy']);
  });

  it('a stale If-Match is 412 BROKER_CONFIG_CHANGED and writes nothing; of two racing patches with one ETag exactly one wins', async () => {
    const { app, file } = await build({ logLevel: 'warn' });
    const etag = (await app.inject({ method: 'GET', url: '/v1/config' })).headers.etag as string;
    const send = (logLevel: string) => app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': etag }, payload: JSON.stringify({ logLevel }) });
    const [a, b] = await Promise.all([send('debug'), send('error')]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([200, 412]);
    const loser = a.statusCode === 412 ? a : b;
    const winner = a.statusCode === 200 ? a : b;
    expect(error(loser.body)).toMatchObject({ code: 'BROKER_CONFIG_CHANGED', details: { etag: winner.json<ConfigView>().etag } });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(winner.json<ConfigView>().file);

    // A hand edit also changes the ETag.
    const current = winner.json<ConfigView>().etag;
    await writeFile(file, JSON.stringify({ logLevel: 'trace' }));
    const stale = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': current }, payload: JSON.stringify({ logLevel: 'info' }) });
    expect(stale.statusCode).toBe(412);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ logLevel: 'trace' });
  });

  it('If-Match is required; the result is validated like the file (naming the key) and nothing is written when it fails', async () => {
    const { app, file, control } = await build({ logLevel: 'warn' });
    const etag = (await app.inject({ method: 'GET', url: '/v1/config' })).headers.etag as string;
    const missing = await app.inject({ method: 'PATCH', url: '/v1/config', headers: MERGE_PATCH, payload: JSON.stringify({ logLevel: 'debug' }) });
    expect(missing.statusCode).toBe(400);
    expect(error(missing.body)).toMatchObject({ code: 'BROKER_BAD_REQUEST', details: { field: 'If-Match' } });
    const star = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': '*' }, payload: JSON.stringify({ logLevel: 'debug' }) });
    expect(star.statusCode).toBe(400);

    for (const [patch, key] of [
      [{ logLevel: 'loud' }, 'logLevel'],
      [{ colour: 'blue' }, 'colour'],
      [{ servers: [] }, 'servers'],
      [{ servers: [{ name: 'nordic', origin: 'http://files.example.com' }] }, 'servers[0].origin'],
    ] as const) {
      const res = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': etag }, payload: JSON.stringify(patch) });
      expect(res.statusCode, JSON.stringify(patch)).toBe(400);
      expect(error(res.body).message).toContain(key);
    }
    for (const payload of ['[1]', '"x"']) {
      expect((await app.inject({ method: 'PATCH', url: '/v1/config', headers: { ...MERGE_PATCH, 'if-match': etag }, payload })).statusCode).toBe(400);
    }
    // Another media type is refused with the envelope.
    const text = await app.inject({ method: 'PATCH', url: '/v1/config', headers: { 'content-type': 'text/plain', 'if-match': etag }, payload: 'logLevel=debug' });
    expect(text.statusCode).toBe(400);
    expect(error(text.body).code).toBe('BROKER_BAD_REQUEST');
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ logLevel: 'warn' });
    expect(control.current().logLevel).toBe('warn');
  });

  it('is owner-socket only: refused on an extra listener, whatever the client token', async () => {
    const { app, deps } = await build({ logLevel: 'warn' });
    const { token } = await deps.clientTokens.create({ description: 'everything', scope: 'user' });
    for (const method of ['GET', 'PATCH'] as const) {
      const res = await app.inject({ method, url: '/v1/config', headers: { ...EXTRA, authorization: `Bearer ${token}`, ...MERGE_PATCH, 'if-match': '"x"' }, payload: '{}' });
      expect(res.statusCode, method).toBe(403);
      expect(error(res.body)).toMatchObject({ code: 'BROKER_FORBIDDEN', message: `${method} /v1/config is only available on the owner's socket.` });
    }
  });
});

describe('applyMergePatch (RFC 7396)', () => {
  it('follows the RFC\'s examples', () => {
    expect(applyMergePatch({ a: 'b', c: { d: 'e', f: 'g' } }, { a: 'z', c: { f: null } })).toEqual({ a: 'z', c: { d: 'e' } });
    expect(applyMergePatch({ a: ['b'] }, { a: 'c' })).toEqual({ a: 'c' });
    expect(applyMergePatch({ a: [{ b: 'c' }] }, { a: [1] })).toEqual({ a: [1] });
    expect(applyMergePatch({ e: null }, { a: 1 })).toEqual({ e: null, a: 1 });
    expect(applyMergePatch({}, { a: { bb: { ccc: null } } })).toEqual({ a: { bb: {} } });
    expect(applyMergePatch({ a: 'foo' }, ['c'])).toEqual(['c']);
    // A "__proto__" key is data, never the prototype.
    const merged = applyMergePatch({}, JSON.parse('{"__proto__": {"polluted": true}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(merged)).toEqual(['__proto__']);
  });
});
