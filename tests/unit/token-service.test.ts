import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/broker/event-bus.js';
import { silentLog } from '../../src/broker/log.js';
import type { SecretStore } from '../../src/broker/ports.js';
import { DAY_MS, TokenService } from '../../src/broker/token-service.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import { ConfigSchema } from '../../src/protocol/config-schema.js';
import { BrokerError } from '../../src/protocol/errors.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import { TOKEN_INFO_PATH } from '../fixtures/fake-artifactory.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { validationOver } from '../helpers/server-deps.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { useFakeArtifactory } from '../helpers/fake-upstream.js';

const { af, upstream } = await useFakeArtifactory();

const services: TokenService[] = [];

afterEach(() => {
  for (const s of services.splice(0)) s.stop();
  af.clearFaults();
  af.clearRequests();
});

interface Harness {
  service: TokenService;
  clock: FakeClock;
  events: BrokerEvent[];
  state: MemoryStateStore;
  store: SecretStore;
}

function harness(options: { clock?: FakeClock; state?: MemoryStateStore; store?: SecretStore } = {}): Harness {
  const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }] });
  // The fake server checks expiry against real time, so the fake clock starts at real time.
  const clock = options.clock ?? new FakeClock(Date.now());
  const bus = new EventBus(clock);
  const events: BrokerEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const state = options.state ?? new MemoryStateStore();
  const store = options.store ?? createMemoryStore();
  const service = new TokenService({ servers: () => config.servers, warningDays: () => config.expiryWarningDays, store, state, validate: validationOver(upstream), clock, events: bus, log: silentLog, random: () => 0.5 });
  services.push(service);
  return { service, clock, events, state, store };
}

let counter = 0;
function newToken(info: Record<string, unknown> = {}): string {
  const token = `tok-${++counter}-${Math.random().toString(36).slice(2)}`;
  af.addToken(token, { token_id: `id-${counter}`, description: `desc ${counter}`, ...info });
  return token;
}

const inDays = (days: number, from = Date.now()): number => Math.floor((from + days * DAY_MS) / 1000);
const authRequestsWith = (token: string) => af.requests.filter((r) => r.headers.authorization === `Bearer ${token}`);

describe('token lifecycle', () => {
  it('set validates with tokenInfoPath first, then stores metadata but never the token in state', async () => {
    const h = harness();
    await h.service.start();
    const token = newToken({ expiry: inDays(30), subject: 'ada' });
    const view = await h.service.set(undefined, token, { verify: true });
    expect(view).toMatchObject({ server: 'nordic', state: 'valid', tokenId: `id-${counter}`, subject: 'ada', daysLeft: 29 });
    expect(authRequestsWith(token).map((r) => r.path)).toEqual([TOKEN_INFO_PATH]);
    expect(await h.store.get('nordic')).toBe(token);
    expect([...h.state.documents.values()].join('')).not.toContain(token);
    expect(h.events.map((e) => e.type)).toEqual(['token.set']);
    expect(JSON.stringify(h.events)).not.toContain(token);
    expect(h.service.tokenFor('nordic')).toBe(token);
  });

  it('a rejected token is not stored (invalid vs expired)', async () => {
    const h = harness();
    await h.service.start();
    await expect(h.service.set(undefined, 'not-a-real-token', { verify: true })).rejects.toMatchObject({ code: 'BROKER_TOKEN_INVALID' });
    const expired = newToken();
    af.expireToken(expired);
    await expect(h.service.set(undefined, expired, { verify: true })).rejects.toMatchObject({ code: 'BROKER_TOKEN_EXPIRED' });
    expect(await h.store.get('nordic')).toBeNull();
    expect(h.service.view().state).toBe('absent');
    expect(() => h.service.tokenFor('nordic')).toThrow(expect.objectContaining({ code: 'BROKER_TOKEN_MISSING' }) as BrokerError);
  });

  it('replace with an invalid token keeps the old valid one working', async () => {
    const h = harness();
    await h.service.start();
    const good = newToken({ expiry: inDays(60) });
    await h.service.set(undefined, good, { verify: true });
    await expect(h.service.set(undefined, 'bogus-token', { verify: true })).rejects.toMatchObject({ code: 'BROKER_TOKEN_INVALID' });
    expect(h.service.tokenFor('nordic')).toBe(good);
    expect(h.service.view().state).toBe('valid');
    expect(await h.store.get('nordic')).toBe(good);
  });

  it('upstream 5xx (BROKER_UPSTREAM_ERROR) or a timeout (BROKER_UPSTREAM_UNREACHABLE) while validating: nothing stored', async () => {
    const h = harness();
    await h.service.start();
    const token = newToken();
    af.setFault(TOKEN_INFO_PATH, { kind: 'status', status: 503 }, { times: 1 });
    await expect(h.service.set(undefined, token, { verify: true })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_ERROR', details: { status: 503 } });
    af.setFault(TOKEN_INFO_PATH, { kind: 'hang' }, { times: 1 });
    await expect(h.service.set(undefined, token, { verify: true })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'headers-timeout' } });
    expect(await h.store.get('nordic')).toBeNull();
    expect(h.service.view().state).toBe('absent');
  });

  it('a locked keychain -> BROKER_SECRET_STORE_UNAVAILABLE and nothing changes', async () => {
    const locked: SecretStore = {
      kind: 'keychain',
      persistent: true,
      plaintextAtRest: false,
      lastState: 'locked',
      get: async () => null,
      set: async () => {
        throw new BrokerError('BROKER_SECRET_STORE_UNAVAILABLE', { message: 'The keychain is locked.', details: { state: 'locked' } });
      },
      delete: async () => false,
      probe: async () => 'locked',
    };
    const h = harness({ store: locked });
    await h.service.start();
    await expect(h.service.set(undefined, newToken(), { verify: true })).rejects.toMatchObject({ code: 'BROKER_SECRET_STORE_UNAVAILABLE', hint: expect.stringMatching(/unlock/i) as string });
    expect(h.service.view().state).toBe('absent');
    expect(h.events).toEqual([]);
  });

  it('--no-verify stores it as unverified and verifies it in the background', async () => {
    const h = harness();
    await h.service.start();
    h.service.startBackground();
    const token = newToken({ expiry: inDays(100) });
    const view = await h.service.set(undefined, token, { verify: false });
    expect(view.state).toBe('unverified');
    expect(view.tokenId).toBeUndefined();
    // The background check is a request to the fake server: wait for its outcome, not for a time.
    await expect.poll(() => h.service.view().state, { timeout: 10_000 }).toBe('valid');
    expect(h.service.view()).toMatchObject({ state: 'valid', tokenId: `id-${counter}` });
  });

  it('an upstream 401 during use marks it invalid once, emits token.invalid, and stops authenticated work', async () => {
    const h = harness();
    await h.service.start();
    const token = newToken({ expiry: inDays(100) });
    await h.service.set(undefined, token, { verify: true });
    h.service.rejected('nordic', 'Bad credentials');
    h.service.rejected('nordic', 'Bad credentials');
    expect(h.events.filter((e) => e.type === 'token.invalid')).toHaveLength(1);
    expect(h.service.view()).toMatchObject({ state: 'invalid', reason: 'Bad credentials' });
    expect(() => h.service.tokenFor('nordic')).toThrow(expect.objectContaining({ code: 'BROKER_TOKEN_INVALID' }) as BrokerError);
    const before = authRequestsWith(token).length;
    h.clock.advance(DAY_MS * 3);
    await h.service.whenIdle();
    expect(authRequestsWith(token)).toHaveLength(before);
    // A new token clears it.
    const fresh = newToken({ expiry: inDays(100) });
    await h.service.set(undefined, fresh, { verify: true });
    expect(h.service.tokenFor('nordic')).toBe(fresh);
  });

  it('the server saying "Token expired" during use makes the state expired, emits token.expired, and answers BROKER_TOKEN_EXPIRED', async () => {
    const h = harness();
    await h.service.start();
    const token = newToken({ expiry: inDays(100) });
    await h.service.set(undefined, token, { verify: true });
    af.setJson('/artifactory/restricted/doc.json', { ok: true });
    const config = ConfigSchema.parse({ allowInsecureLoopback: true, servers: [{ name: 'nordic', origin: af.origin }] });
    const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: true });
    const exchange = new UpstreamExchange({ policy: () => policy, upstream, tokens: h.service, clock: h.clock, userAgent: 'tokenbroker/test' });
    // The server's own verdict, before the token's recorded expiry (100 days away).
    af.expireToken(token);
    await expect(exchange.document({ url: af.url('/artifactory/restricted/doc.json'), maxBytes: 1024 })).rejects.toMatchObject({ code: 'BROKER_TOKEN_EXPIRED' });
    expect(h.service.view()).toMatchObject({ state: 'expired', reason: 'Token expired' });
    expect(h.events.filter((e) => e.type === 'token.expired')).toHaveLength(1);
    expect(h.events.filter((e) => e.type === 'token.invalid')).toHaveLength(0);
    expect(() => h.service.tokenFor('nordic')).toThrow(expect.objectContaining({ code: 'BROKER_TOKEN_EXPIRED' }) as BrokerError);
    // Nothing more is sent with it, and the state survives a restart (it is persisted).
    const sent = authRequestsWith(token).length;
    h.clock.advance(DAY_MS * 3);
    await h.service.whenIdle();
    expect(authRequestsWith(token)).toHaveLength(sent);
    const again = harness({ state: h.state, store: h.store });
    await again.service.start();
    expect(again.service.view().state).toBe('expired');
  });

  it('a 401 for a token that was replaced meanwhile does not invalidate the new one', async () => {
    const h = harness();
    await h.service.start();
    const old = newToken({ expiry: inDays(100) });
    await h.service.set(undefined, old, { verify: true });
    const fresh = newToken({ expiry: inDays(100) });
    await h.service.set(undefined, fresh, { verify: true });
    h.service.rejected('nordic', 'Bad credentials', old);
    expect(h.service.view().state).toBe('valid');
    expect(h.events.filter((e) => e.type === 'token.invalid')).toHaveLength(0);
    h.service.rejected('nordic', 'Bad credentials', fresh);
    expect(h.service.view().state).toBe('invalid');
  });

  it('expiry with a fake clock: 15 d valid, 14 d expiring + one event, 3 d another, 0 d expired and never sent', async () => {
    const h = harness();
    await h.service.start();
    h.service.startBackground();
    const token = newToken({ expiry: inDays(15) });
    await h.service.set(undefined, token, { verify: true });
    await h.service.whenIdle();
    expect(h.service.view()).toMatchObject({ state: 'valid', daysLeft: 14 });
    const expiring = () => h.events.filter((e) => e.type === 'token.expiring');

    h.clock.advance(DAY_MS + 1000); // now under 14 days left
    expect(h.service.view().state).toBe('expiring');
    expect(expiring()).toHaveLength(1);
    expect(expiring()[0]).toMatchObject({ server: 'nordic', threshold: 14, daysLeft: 14 });

    h.clock.advance(DAY_MS * 5);
    expect(expiring()).toHaveLength(1);
    h.clock.advance(DAY_MS * 6); // under 3 days
    expect(expiring()).toHaveLength(2);
    expect(expiring()[1]).toMatchObject({ threshold: 3 });

    const requestsBefore = authRequestsWith(token).length;
    h.clock.advance(DAY_MS * 4); // past expiry
    expect(h.service.view().state).toBe('expired');
    expect(h.events.filter((e) => e.type === 'token.expired')).toHaveLength(1);
    expect(() => h.service.tokenFor('nordic')).toThrow(expect.objectContaining({ code: 'BROKER_TOKEN_EXPIRED' }) as BrokerError);
    h.clock.advance(DAY_MS * 10);
    await h.service.whenIdle();
    expect(authRequestsWith(token)).toHaveLength(requestsBefore);
    expect(h.events.filter((e) => e.type === 'token.expired')).toHaveLength(1);
  });

  it('after a restart the token and metadata come back, warnings are not repeated, offline keeps the last answer', async () => {
    const state = new MemoryStateStore();
    const store = createMemoryStore();
    const first = harness({ state, store });
    await first.service.start();
    const token = newToken({ expiry: inDays(10), description: 'laptop' });
    await first.service.set(undefined, token, { verify: true });
    expect(first.events.map((e) => e.type)).toEqual(['token.set', 'token.expiring']);
    first.service.stop();

    af.setFault(TOKEN_INFO_PATH, { kind: 'status', status: 503 });
    const second = harness({ state, store });
    await second.service.start();
    second.service.startBackground();
    await second.service.whenIdle();
    expect(second.service.view()).toMatchObject({ state: 'expiring', description: 'laptop', tokenId: `id-${counter}` });
    expect(second.service.view().verifiedAt).toBeDefined();
    expect(second.events.filter((e) => e.type === 'token.expiring')).toHaveLength(0);
    expect(af.requestsTo(TOKEN_INFO_PATH).length).toBeGreaterThan(0);
  });

  it('remove clears memory, store and metadata and lists the consequences', async () => {
    const h = harness();
    await h.service.start();
    await h.service.set(undefined, newToken(), { verify: true });
    const removed = await h.service.remove();
    expect(removed.removed).toBe(true);
    expect(removed.consequences.join(' ')).toMatch(/added/);
    expect(removed.consequences.join(' ')).toMatch(/refreshed/);
    expect(removed.consequences.join(' ')).toMatch(/downloaded/);
    expect(await h.store.get('nordic')).toBeNull();
    expect(h.service.view().state).toBe('absent');
    expect(h.events.map((e) => e.type)).toEqual(['token.set', 'token.removed']);
    expect((await h.service.remove()).removed).toBe(false);
  });

  it('an unknown server is a bad request naming the configured ones', async () => {
    const h = harness();
    await h.service.start();
    expect(() => h.service.view('other')).toThrow(expect.objectContaining({ code: 'BROKER_BAD_REQUEST', hint: expect.stringContaining('nordic') as string }) as BrokerError);
  });
});
