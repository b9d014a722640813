import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLIENT_TOKENS_DOCUMENT, ClientTokenService, LAST_USED_FLUSH_MS, MAX_CLIENT_TOKENS } from '../../src/broker/client-tokens.js';
import { silentLog } from '../../src/broker/log.js';
import { CLIENT_SCOPES, CLIENT_TOKEN_PATTERN, CreateClientTokenBodySchema, DEFAULT_CLIENT_TOKEN_DAYS, scopeAllows } from '../../src/protocol/client-tokens.js';
import { isBrokerError } from '../../src/protocol/errors.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { MemoryStateStore } from '../helpers/memory-state-store.js';

const DAY_MS = 86_400_000;

/** Counts writes, so tests can tell how often lastUsedAt reaches the disk. */
class CountingStateStore extends MemoryStateStore {
  writes = 0;
  override async write(name: string, value: unknown): Promise<void> {
    this.writes += 1;
    await super.write(name, value);
  }
}

function harness(options: { state?: CountingStateStore; clock?: FakeClock } = {}) {
  const state = options.state ?? new CountingStateStore();
  const clock = options.clock ?? new FakeClock();
  const service = new ClientTokenService({ state, clock, log: silentLog, user: 'ada' });
  return { service, state, clock };
}

const input = (over: Partial<{ description: string; scope: unknown; expiresInDays: number }> = {}) =>
  CreateClientTokenBodySchema.parse({ description: 'ci-runner', scope: 'user', ...over });

describe('client token service', () => {
  it('creates a tbk_ token with 256 random bits, shown once; the state keeps only its SHA-256', async () => {
    const { service, state, clock } = harness();
    const created = await service.create(input({ scope: ['fetch', 'status:read'] }));
    expect(created.token).toMatch(CLIENT_TOKEN_PATTERN);
    expect(Buffer.from(created.token.slice(4), 'base64url')).toHaveLength(32);
    expect(created).toMatchObject({ description: 'ci-runner', subject: 'ada (ci-runner)', scope: ['fetch', 'status:read'], issuedAt: new Date(clock.now()).toISOString() });
    expect(Date.parse(created.expiresAt) - clock.now()).toBe(DEFAULT_CLIENT_TOKEN_DAYS * DAY_MS);
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);

    const documentText = state.documents.get(CLIENT_TOKENS_DOCUMENT) ?? '';
    expect(documentText).not.toContain(created.token);
    expect(documentText).not.toContain(created.token.slice(4));
    expect(documentText).toContain(createHash('sha256').update(created.token).digest('hex'));

    const listed = service.list();
    expect(listed).toEqual([{ id: created.id, description: 'ci-runner', subject: 'ada (ci-runner)', issuedAt: created.issuedAt, expiresAt: created.expiresAt, scope: ['fetch', 'status:read'], lastUsedAt: null }]);
    expect(JSON.stringify(listed)).not.toContain(created.token);
  });

  it('two tokens never share a value, and each verifies as itself', async () => {
    const { service } = harness();
    const a = await service.create(input({ description: 'a' }));
    const b = await service.create(input({ description: 'b', scope: ['fetch'] }));
    expect(a.token).not.toBe(b.token);
    expect(service.authenticate(`Bearer ${a.token}`)).toEqual({ id: a.id, description: 'a', scope: 'user' });
    expect(service.authenticate(`Bearer ${b.token}`)).toEqual({ id: b.id, description: 'b', scope: ['fetch'] });
  });

  it('expiresInDays sets the expiry; the token works until that instant and not from it on', async () => {
    const { service, clock } = harness();
    const created = await service.create(input({ expiresInDays: 2 }));
    expect(Date.parse(created.expiresAt) - Date.parse(created.issuedAt)).toBe(2 * DAY_MS);
    clock.advance(2 * DAY_MS - 1);
    expect(service.authenticate(`Bearer ${created.token}`)).toBeDefined();
    clock.advance(1);
    expect(service.authenticate(`Bearer ${created.token}`)).toBeUndefined();
    // Expired tokens stay listed until revoked, so the owner sees what stopped working.
    expect(service.list().map((t) => t.id)).toEqual([created.id]);
  });

  it.each([
    ['no header', undefined],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['no prefix', 'Bearer abc'],
    ['too short', 'Bearer tbk_abc'],
    ['bad characters', `Bearer tbk_${'!'.repeat(43)}`],
    ['unknown token', `Bearer tbk_${'A'.repeat(43)}`],
    ['empty bearer', 'Bearer '],
  ])('refuses %s', async (_name, header) => {
    const { service } = harness();
    await service.create(input());
    expect(service.authenticate(header)).toBeUndefined();
  });

  it('accepts the scheme case-insensitively (RFC 9110) but not a token with a changed character', async () => {
    const { service } = harness();
    const created = await service.create(input());
    expect(service.authenticate(`bearer ${created.token}`)).toBeDefined();
    const last = created.token.at(-1) === 'A' ? 'B' : 'A';
    expect(service.authenticate(`Bearer ${created.token.slice(0, -1)}${last}`)).toBeUndefined();
  });

  it('revoke takes effect at once and survives a restart; an unknown ID is BROKER_NOT_FOUND', async () => {
    const { service, state, clock } = harness();
    const keep = await service.create(input({ description: 'keep' }));
    const gone = await service.create(input({ description: 'gone' }));
    await expect(service.revoke(gone.id)).resolves.toEqual({ id: gone.id, revoked: true });
    expect(service.authenticate(`Bearer ${gone.token}`)).toBeUndefined();
    expect(service.authenticate(`Bearer ${keep.token}`)).toBeDefined();
    const err = await service.revoke(gone.id).catch((e: unknown) => e);
    expect(isBrokerError(err, 'BROKER_NOT_FOUND')).toBe(true);

    const restarted = new ClientTokenService({ state, clock, log: silentLog, user: 'ada' });
    await restarted.start();
    expect(restarted.authenticate(`Bearer ${keep.token}`)).toBeDefined();
    expect(restarted.authenticate(`Bearer ${gone.token}`)).toBeUndefined();
    expect(restarted.list().map((t) => t.description)).toEqual(['keep']);
  });

  it('a revocation that cannot be saved still refuses the token in this run, and the next write saves it', async () => {
    const { service, state, clock } = harness();
    const gone = await service.create(input({ description: 'gone' }));
    state.failWrites = true;
    const err = await service.revoke(gone.id).catch((e: unknown) => e);
    expect(isBrokerError(err, 'BROKER_INTERNAL')).toBe(true);
    expect(service.authenticate(`Bearer ${gone.token}`)).toBeUndefined();
    state.failWrites = false;
    await service.create(input({ description: 'next' }));
    const restarted = new ClientTokenService({ state, clock, log: silentLog, user: 'ada' });
    await restarted.start();
    expect(restarted.list().map((t) => t.description)).toEqual(['next']);
  });

  it('a token that cannot be saved is not created (never handed out)', async () => {
    const { service, state } = harness();
    state.failWrites = true;
    const err = await service.create(input()).catch((e: unknown) => e);
    expect(isBrokerError(err, 'BROKER_INTERNAL')).toBe(true);
    expect(service.list()).toEqual([]);
  });

  it('lastUsedAt is kept in memory at once but written at most once per flush interval, and on stop', async () => {
    const { service, state, clock } = harness();
    const created = await service.create(input());
    const writesAfterCreate = state.writes;
    for (let i = 0; i < 50; i++) {
      clock.advance(100);
      expect(service.authenticate(`Bearer ${created.token}`)).toBeDefined();
    }
    expect(service.list()[0]?.lastUsedAt).toBe(new Date(clock.now()).toISOString());
    expect(state.writes).toBe(writesAfterCreate);
    clock.advance(LAST_USED_FLUSH_MS);
    await service.stop();
    expect(state.writes).toBe(writesAfterCreate + 1);
    const stored = JSON.parse(state.documents.get(CLIENT_TOKENS_DOCUMENT) ?? '{}') as { tokens: { lastUsedAt?: number }[] };
    expect(stored.tokens[0]?.lastUsedAt).toBe(clock.now() - LAST_USED_FLUSH_MS);

    service.authenticate(`Bearer ${created.token}`);
    await service.stop();
    const after = JSON.parse(state.documents.get(CLIENT_TOKENS_DOCUMENT) ?? '{}') as { tokens: { lastUsedAt?: number }[] };
    expect(after.tokens[0]?.lastUsedAt).toBe(clock.now());
  });

  it('a malformed state document means no client token works (fail closed), and creating one starts afresh', async () => {
    const state = new CountingStateStore();
    await state.write(CLIENT_TOKENS_DOCUMENT, { version: 1, tokens: [{ id: 'x', sha256: 'not-a-hash' }] });
    const { service } = harness({ state });
    await service.start();
    expect(service.list()).toEqual([]);
    const created = await service.create(input());
    expect(service.authenticate(`Bearer ${created.token}`)).toBeDefined();
  });

  it(`stops at ${MAX_CLIENT_TOKENS} tokens with a hint to revoke some`, async () => {
    const { service } = harness();
    for (let i = 0; i < MAX_CLIENT_TOKENS; i++) await service.create(input({ description: `t${i}` }));
    const err = await service.create(input()).catch((e: unknown) => e);
    expect(isBrokerError(err, 'BROKER_BAD_REQUEST')).toBe(true);
    expect((err as Error).message).toContain(`${MAX_CLIENT_TOKENS}`);
  });

  it('"user" allows every scope; a custom scope exactly its own', () => {
    for (const needed of CLIENT_SCOPES) {
      expect(scopeAllows('user', needed)).toBe(true);
      for (const held of CLIENT_SCOPES) expect(scopeAllows([held], needed)).toBe(held === needed);
    }
  });
});

describe('client token request schema', () => {
  it.each([
    [{ description: 'x', scope: 'user' }, true],
    [{ description: 'x', scope: ['fetch', 'fetch', 'status:read'] }, true],
    [{ description: 'x'.repeat(200), scope: 'user', expiresInDays: 3650 }, true],
    [{ description: 'ünïcødé ✓', scope: 'user', expiresInDays: 1 }, true],
    [{ description: '', scope: 'user' }, false],
    [{ description: '   ', scope: 'user' }, false],
    [{ description: 'x'.repeat(201), scope: 'user' }, false],
    [{ description: 'line\nbreak', scope: 'user' }, false],
    [{ description: 'bell\u0007', scope: 'user' }, false],
    [{ description: 'x', scope: [] }, false],
    [{ description: 'x', scope: ['admin'] }, false],
    [{ description: 'x', scope: 'all' }, false],
    [{ description: 'x', scope: 'user', expiresInDays: 0 }, false],
    [{ description: 'x', scope: 'user', expiresInDays: 3651 }, false],
    [{ description: 'x', scope: 'user', expiresInDays: 1.5 }, false],
    [{ description: 'x', scope: 'user', extra: true }, false],
    [{ scope: 'user' }, false],
  ])('%j valid: %s', (body, valid) => {
    expect(CreateClientTokenBodySchema.safeParse(body).success).toBe(valid);
  });

  it('drops duplicate scopes and keeps the order given', () => {
    expect(CreateClientTokenBodySchema.parse({ description: 'x', scope: ['fetch', 'status:read', 'fetch'] }).scope).toEqual(['fetch', 'status:read']);
  });
});
