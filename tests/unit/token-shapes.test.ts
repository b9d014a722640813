/**
 * Token shapes (DESIGN section 4): a reference token or a JWT says when it expires, so an expired
 * one is refused locally (no request) and a valid one's expiry is known before the server
 * answers; unknown shapes are left to the server. tokens/me 403 = valid, metadata unknown;
 * 200 with HTML = the origin is no Artifactory API.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { silentLog } from '../../src/broker/log.js';
import { TokenService } from '../../src/broker/token-service.js';
import { tokenShape } from '../../src/broker/token-shape.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { TOKEN_INFO_PATH } from '../fixtures/fake-artifactory.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { validationOver } from '../helpers/server-deps.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory();

/** A reference token as the profile page issues it: base64 of `reftkn:01:<expiry>:<random>`, 64 characters. */
function referenceToken(expirySeconds: number): string {
  const random = 'Qx7pL2mN9vR4tY8wZ1aB3cD5eF6gH7jKQx7pL2mN9vR4tY8w'.slice(0, 37 - String(expirySeconds).length);
  const token = Buffer.from(`reftkn:01:${expirySeconds}:${random}`).toString('base64');
  if (token.length !== 64) throw new Error(`test token has ${token.length} characters`);
  return token;
}

function jwt(payload: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ typ: 'JWT', alg: 'RS256', kid: 'k1' })}.${part(payload)}.c2lnbmF0dXJl`;
}

const now = Math.floor(Date.now() / 1000);

describe('token shapes', () => {
  it('reads the expiry of reference tokens and JWTs, and nothing from other shapes', () => {
    expect(tokenShape(referenceToken(now + 86_400))).toEqual({ kind: 'reference', expiresAt: (now + 86_400) * 1000 });
    expect(tokenShape(referenceToken(0))).toEqual({ kind: 'reference' });
    expect(referenceToken(now).startsWith('cmVmdGtu')).toBe(true);
    expect(tokenShape(jwt({ sub: 'jfac@x/users/a', exp: now + 60 }))).toEqual({ kind: 'jwt', expiresAt: (now + 60) * 1000 });
    expect(tokenShape(jwt({ sub: 'no expiry' }))).toEqual({ kind: 'jwt' });
    expect(tokenShape('cmVmdGtu-but-not-a-reference-token')).toEqual({ kind: 'unknown' });
    expect(tokenShape('a.b.c')).toEqual({ kind: 'unknown' });
    expect(tokenShape('AKCp8plain-api-key')).toEqual({ kind: 'unknown' });
  });
});

describe('token shapes in the token lifecycle', () => {
  const services: TokenService[] = [];

  afterEach(() => {
    for (const service of services.splice(0)) service.stop();
    af.clearFaults();
    af.clearRequests();
  });

  function service(): TokenService {
    const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }] });
    const clock = new FakeClock(Date.now());
    const created = new TokenService({ servers: () => config.servers, warningDays: () => config.expiryWarningDays, store: createMemoryStore(), state: new MemoryStateStore(), validate: validationOver(upstream), clock, events: new EventBus(clock), log: silentLog, random: () => 0.5 });
    services.push(created);
    return created;
  }

  it.each([
    ['an expired reference token', referenceToken(now - 3600)],
    ['an expired JWT', jwt({ sub: 'x', exp: now - 3600 })],
  ])('%s is BROKER_TOKEN_EXPIRED at once, with or without verify, and nothing is sent', async (_label, token) => {
    const tokens = service();
    for (const verify of [true, false]) {
      await expect(tokens.set(undefined, token, { verify })).rejects.toMatchObject({ code: 'BROKER_TOKEN_EXPIRED', details: { server: 'nordic', expiresAt: new Date((now - 3600) * 1000).toISOString() } });
    }
    expect(af.requests).toEqual([]);
    expect(tokens.view('nordic').state).toBe('absent');
  });

  it("a valid reference token's expiry is shown before the server answers", async () => {
    const token = referenceToken(now + 30 * 86_400);
    // The server cannot answer now: the expiry still comes from the token itself.
    af.setFault(TOKEN_INFO_PATH, { kind: 'status', status: 503 });
    const view = await service().set(undefined, token, { verify: false });
    expect(view).toMatchObject({ state: 'unverified', expiresAt: new Date((now + 30 * 86_400) * 1000).toISOString(), daysLeft: 29 });
  });

  it('an unknown shape is not refused: the server decides', async () => {
    af.addToken('plain-unknown-shape-token', { token_id: 'tid-plain', expiry: now + 100 * 86_400 });
    const view = await service().set(undefined, 'plain-unknown-shape-token', { verify: true });
    expect(view).toMatchObject({ state: 'valid', tokenId: 'tid-plain' });
    expect(af.requestsTo(TOKEN_INFO_PATH)).toHaveLength(1);
  });

  it('tokens/me 403: valid, metadata unknown, stored with the expiry its shape gives', async () => {
    const token = referenceToken(now + 60 * 86_400);
    af.setFault(TOKEN_INFO_PATH, { kind: 'status', status: 403 }, { times: 1 });
    const view = await service().set(undefined, token, { verify: true });
    expect(view).toMatchObject({ state: 'valid', expiresAt: new Date((now + 60 * 86_400) * 1000).toISOString() });
    expect(view.tokenId).toBeUndefined();
  });

  it('tokens/me 200 with an HTML page: BROKER_UPSTREAM_ERROR with a hint about the origin, nothing stored', async () => {
    // A login portal where the Artifactory API was expected.
    af.setFile('/portal/login', '<!DOCTYPE html><html><body>Sign in</body></html>', { contentType: 'text/html; charset=utf-8' });
    const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'portal', origin: af.origin, tokenInfoPath: '/portal/login' }] });
    const clock = new FakeClock(Date.now());
    const tokens = new TokenService({ servers: () => config.servers, warningDays: () => [], store: createMemoryStore(), state: new MemoryStateStore(), validate: validationOver(upstream), clock, events: new EventBus(clock), log: silentLog });
    services.push(tokens);
    const failure = tokens.set(undefined, 'some-token-value', { verify: true });
    await expect(failure).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { status: 200, reason: 'not-json' } });
    await expect(failure).rejects.toMatchObject({ hint: expect.stringContaining('"origin" of server "portal"') as string });
    expect(tokens.view('portal').state).toBe('absent');
  });
});
