import { z } from 'zod';
import type { ServerConfig } from '../protocol/config-schema.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { TOKEN_REMOVAL_CONSEQUENCES, type TokenRemoved, type TokenState, type TokenView } from '../protocol/token.js';
import type { EventBus } from './event-bus.js';
import type { Clock, DomainLog, SecretStore, StateStore, TimerHandle, TokenAccess } from './ports.js';
import { RefreshScheduler } from './refresh-scheduler.js';
import { tokenShape } from './token-shape.js';
import type { TokenValidation, ValidatedToken } from './token-validator.js';

export const DAY_MS = 86_400_000;
/** setTimeout cannot wait longer than ~24.8 days; re-evaluate at least daily anyway. */
const MAX_TIMER_MS = DAY_MS;
const STATE_DOCUMENT = 'tokens.json';

/** Non-secret metadata persisted in the state dir so status works offline and across restarts. */
const StoredTokenSchema = z.object({
  tokenId: z.string().optional(),
  subject: z.string().optional(),
  issuedAt: z.number().optional(),
  expiresAt: z.number().optional(),
  description: z.string().optional(),
  verifiedAt: z.number().optional(),
  setAt: z.number(),
  verified: z.boolean(),
  /** The server refused the token during use; `expired` when its message said so (state `expired`, not `invalid`). */
  invalid: z.object({ at: z.number(), reason: z.string(), expired: z.boolean().optional() }).optional(),
  /** Warning thresholds (days) already announced, so each fires once even across restarts. */
  warned: z.array(z.number()).default([]),
  expiredNotified: z.boolean().default(false),
});
type StoredToken = z.output<typeof StoredTokenSchema>;

const TokensDocumentSchema = z.object({
  version: z.literal(1),
  tokens: z.record(z.string(), StoredTokenSchema),
});

export interface TokenServiceDeps {
  servers(): readonly ServerConfig[];
  warningDays(): readonly number[];
  store: SecretStore;
  state: StateStore;
  /**
   * Asks the server who a token belongs to: the token-info entry point of the daemon's one
   * upstream exchange (`exchangeTokenValidation` in token-validator.ts), wired in assembleDaemon.
   */
  validate: TokenValidation;
  clock: Clock;
  events: EventBus;
  log: DomainLog;
  /** For backoff jitter; injectable for tests. */
  random?: () => number;
}

/**
 * The token lifecycle: set/replace (validate first, then store), show, remove, background
 * revalidation, expiry warnings, and invalidation on an upstream 401. It is the only holder of the
 * raw token and hands it out solely through `tokenFor` (the TokenAccess port) to the pipelines
 * that attach it to an allowed upstream request.
 */
export class TokenService implements TokenAccess {
  private readonly secrets = new Map<string, string>();
  private readonly meta = new Map<string, StoredToken>();
  /** Why a token could not be loaded from the store (e.g. keychain locked), per server. */
  private readonly loadProblems = new Map<string, string>();
  /** Bumped on every set/remove, so a slow background check never overwrites newer state. */
  private readonly generations = new Map<string, number>();
  /** Retries (a store that is not ready, a server that did not answer) back off on the refresh scheduler's schedule. */
  private readonly retries: RefreshScheduler;
  private expiryTimer: TimerHandle | undefined;
  private persistChain: Promise<void> = Promise.resolve();
  /** Background checks and retries under way; see whenIdle(). */
  private readonly background = new Set<Promise<void>>();
  private stopped = false;
  private backgroundEnabled = false;
  constructor(private readonly deps: TokenServiceDeps) {
    this.retries = new RefreshScheduler({
      clock: deps.clock,
      random: deps.random ?? Math.random,
      // Only failures are scheduled here; a success removes the server's entry.
      timing: () => ({ intervalMinutes: 24 * 60, jitterPercent: 0 }),
      run: (server) => this.track(this.loadProblems.has(server) ? this.loadSecret(server) : this.revalidate(server)),
    });
    this.retries.start([]);
  }

  /**
   * Loads metadata and tokens (before the socket opens, so the first request sees them). Upstream
   * checks wait for `startBackground()`, so a daemon that turns out to be a duplicate sends nothing.
   */
  async start(): Promise<void> {
    await this.loadMetadata();
    await Promise.all(this.deps.servers().map((server) => this.loadSecret(server.name)));
    this.checkExpiry();
  }

  /** Revalidates each loaded token in the background (with backoff while offline). */
  startBackground(): void {
    this.backgroundEnabled = true;
    for (const server of this.secrets.keys()) {
      const state = this.stateOf(server);
      if (state !== 'invalid' && state !== 'expired') this.revalidateSoon(server);
    }
  }

  /**
   * Resolves once the background work started so far (checks, retries that came due, and what
   * they start in turn, state writes) has finished: the signal that nothing more is on its way,
   * for a caller (a test with a fake clock) that must not guess it from elapsed time.
   */
  async whenIdle(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
    await this.persistChain;
  }

  stop(): void {
    this.stopped = true;
    this.expiryTimer?.cancel();
    this.retries.stop();
  }

  /** Resolves `?server=` (default: the first configured server). */
  server(name?: string): ServerConfig {
    const servers = this.deps.servers();
    const server = name === undefined ? servers[0] : servers.find((s) => s.name === name);
    if (server === undefined) {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: `Unknown server "${name}".`,
        hint: `Configured servers: ${servers.map((s) => s.name).join(', ')}.`,
        details: { field: 'server' },
      });
    }
    return server;
  }

  view(name?: string): TokenView {
    const server = this.server(name).name;
    const meta = this.meta.get(server);
    const state = this.stateOf(server);
    const now = this.deps.clock.now();
    const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
    const view: TokenView = { server, state };
    if (meta !== undefined && state !== 'absent') {
      Object.assign(view, {
        tokenId: meta.tokenId,
        subject: meta.subject,
        description: meta.description,
        issuedAt: iso(meta.issuedAt),
        expiresAt: iso(meta.expiresAt),
        daysLeft: meta.expiresAt === undefined ? undefined : Math.max(0, Math.floor((meta.expiresAt - now) / DAY_MS)),
        verifiedAt: iso(meta.verifiedAt),
        setAt: iso(meta.setAt),
      });
    }
    const reason = this.reasonFor(server, state);
    if (reason !== undefined) view.reason = reason;
    return Object.fromEntries(Object.entries(view).filter(([, v]) => v !== undefined)) as TokenView;
  }

  views(): TokenView[] {
    return this.deps.servers().map((server) => this.view(server.name));
  }

  /**
   * Set or replace. The new token is validated before anything changes, so a bad replacement
   * leaves the old token working; `verify: false` stores it as `unverified` and checks later.
   */
  async set(name: string | undefined, token: string, options: { verify: boolean }): Promise<TokenView> {
    const server = this.server(name);
    // A reference token or JWT says when it expires: an expired one is refused without a request.
    const shape = tokenShape(token);
    const shapeExpiry = shape.kind === 'unknown' ? undefined : shape.expiresAt;
    if (shapeExpiry !== undefined && shapeExpiry <= this.deps.clock.now()) {
      throw new BrokerError('BROKER_TOKEN_EXPIRED', {
        message: `This ${shape.kind === 'jwt' ? 'access token' : 'identity token'} expired on ${new Date(shapeExpiry).toISOString()}; nothing was stored or sent.`,
        details: { server: server.name, expiresAt: new Date(shapeExpiry).toISOString() },
      });
    }
    const validated: ValidatedToken | undefined = options.verify ? await this.deps.validate(server, token) : undefined;
    // The token's own expiry stands until (and unless) the server says otherwise.
    const info = validated === undefined ? undefined : { ...validated, ...(validated.expiresAt === undefined && shapeExpiry !== undefined ? { expiresAt: shapeExpiry } : {}) };
    await this.deps.store.set(server.name, token);
    const now = this.deps.clock.now();
    this.bumpGeneration(server.name);
    this.cancelRetry(server.name);
    this.loadProblems.delete(server.name);
    this.secrets.set(server.name, token);
    const { metadataUnknown: _unknown, ...known } = info ?? {};
    this.meta.set(server.name, {
      ...(info === undefined && shapeExpiry !== undefined ? { expiresAt: shapeExpiry } : {}),
      ...known,
      setAt: now,
      verified: info !== undefined,
      ...(info === undefined ? {} : { verifiedAt: now }),
      warned: [],
      expiredNotified: false,
    });
    await this.persist();
    const view = this.view(server.name);
    this.deps.events.emit('token.set', { server: server.name, state: view.state, ...(view.tokenId ? { tokenId: view.tokenId } : {}), ...(view.expiresAt ? { expiresAt: view.expiresAt } : {}) });
    this.deps.log.info({ server: server.name, tokenId: view.tokenId, state: view.state }, 'identity token set');
    if (info === undefined && this.backgroundEnabled) this.revalidateSoon(server.name);
    this.checkExpiry();
    return this.view(server.name);
  }

  /** Removes the token from memory, the store and the metadata, and says what that costs. */
  async remove(name?: string): Promise<TokenRemoved> {
    const server = this.server(name).name;
    const existed = this.secrets.has(server) || this.meta.has(server);
    await this.deps.store.delete(server);
    this.bumpGeneration(server);
    this.cancelRetry(server);
    this.loadProblems.delete(server);
    this.secrets.delete(server);
    this.meta.delete(server);
    await this.persist();
    if (existed) {
      this.deps.events.emit('token.removed', { server });
      this.deps.log.info({ server }, 'identity token removed');
    }
    return { server, removed: existed, consequences: [...TOKEN_REMOVAL_CONSEQUENCES] };
  }

  /** TokenAccess: the token for a request that needs it, or why there is none to use. */
  tokenFor(name: string): string {
    const state = this.stateOf(name);
    const token = this.secrets.get(name);
    switch (state) {
      case 'valid':
      case 'expiring':
      case 'unverified':
        if (token !== undefined) return token;
        break;
      case 'invalid':
        throw new BrokerError('BROKER_TOKEN_INVALID', {
          message: `The server rejected the identity token for "${name}"${this.meta.get(name)?.invalid ? ` (${this.meta.get(name)?.invalid?.reason})` : ''}; restricted content is unavailable until it is replaced.`,
          details: { server: name },
        });
      case 'expired': {
        const refused = this.meta.get(name)?.invalid;
        if (refused !== undefined) {
          throw new BrokerError('BROKER_TOKEN_EXPIRED', { message: `The server says the identity token for "${name}" has expired (${refused.reason}); restricted content is unavailable until it is replaced.`, details: { server: name } });
        }
        this.checkExpiry();
        throw new BrokerError('BROKER_TOKEN_EXPIRED', { message: `The identity token for "${name}" expired on ${new Date(this.meta.get(name)?.expiresAt ?? 0).toISOString().slice(0, 10)}.`, details: { server: name } });
      }
      case 'absent':
        break;
    }
    const problem = this.loadProblems.get(name);
    throw new BrokerError('BROKER_TOKEN_MISSING', {
      message: problem === undefined ? `No identity token is set for "${name}".` : `The identity token for "${name}" could not be loaded: ${problem}`,
      ...(problem === undefined ? {} : { hint: 'Unlock your keychain (login keyring); the daemon retries by itself.' }),
      details: { server: name },
    });
  }

  /** TokenAccess: an upstream said 401 to a request that carried the token. No retry loop. */
  rejected(name: string, upstreamMessage: string, usedToken?: string): void {
    // A 401 that arrives after a replace was for the old token: the new one is not affected.
    if (usedToken !== undefined && usedToken !== this.secrets.get(name)) return;
    const meta = this.meta.get(name);
    if (meta === undefined || !this.secrets.has(name) || meta.invalid !== undefined) return;
    // "Token expired" from the server is expiry, not a bad token: the user replaces it either way,
    // but the state, the event and the code say which (DESIGN section 4).
    const expired = /expired/i.test(upstreamMessage);
    const at = this.deps.clock.now();
    meta.invalid = { at, reason: upstreamMessage.slice(0, 300), ...(expired ? { expired: true } : {}) };
    this.cancelRetry(name);
    const tokenId = meta.tokenId ? { tokenId: meta.tokenId } : {};
    if (expired) {
      meta.expiredNotified = true;
      this.deps.events.emit('token.expired', { server: name, ...tokenId, expiresAt: new Date(meta.expiresAt !== undefined && meta.expiresAt < at ? meta.expiresAt : at).toISOString(), reason: meta.invalid.reason });
      this.deps.log.warn({ server: name, tokenId: meta.tokenId, reason: meta.invalid.reason }, 'the server says the identity token has expired; authenticated work stops until it is replaced');
    } else {
      this.deps.events.emit('token.invalid', { server: name, ...tokenId, reason: meta.invalid.reason });
      this.deps.log.warn({ server: name, tokenId: meta.tokenId, reason: meta.invalid.reason }, 'the server rejected the identity token; authenticated work stops until it is replaced');
    }
    void this.persist().catch((err: unknown) => this.deps.log.error({ err: errorText(err) }, 'cannot save token state'));
  }

  stateOf(name: string): TokenState {
    const meta = this.meta.get(name);
    if (meta === undefined || !this.secrets.has(name)) return 'absent';
    if (meta.invalid !== undefined) return meta.invalid.expired === true ? 'expired' : 'invalid';
    const now = this.deps.clock.now();
    if (meta.expiresAt !== undefined && now >= meta.expiresAt) return 'expired';
    if (!meta.verified) return 'unverified';
    const first = Math.max(0, ...this.deps.warningDays());
    if (meta.expiresAt !== undefined && meta.expiresAt - now <= first * DAY_MS) return 'expiring';
    return 'valid';
  }

  private reasonFor(server: string, state: TokenState): string | undefined {
    if (state === 'invalid' || state === 'expired') return this.meta.get(server)?.invalid?.reason;
    if (state === 'absent') {
      const problem = this.loadProblems.get(server);
      if (problem !== undefined) return problem;
      if (this.meta.has(server) && !this.deps.store.persistent) return 'The token was kept in memory only and was lost when the daemon restarted; set it again.';
    }
    return undefined;
  }

  /**
   * Announces each warning threshold once (the most urgent one crossed, if several were crossed
   * while the daemon was off) and expiry once, then sleeps until the next crossing.
   */
  checkExpiry(): void {
    if (this.stopped) return;
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    const now = this.deps.clock.now();
    const thresholds = [...new Set(this.deps.warningDays())].sort((a, b) => b - a);
    let next = Number.POSITIVE_INFINITY;
    let changed = false;
    for (const [server, meta] of this.meta) {
      if (meta.expiresAt === undefined || !this.secrets.has(server) || meta.invalid !== undefined) continue;
      const remaining = meta.expiresAt - now;
      if (remaining <= 0) {
        if (!meta.expiredNotified) {
          meta.expiredNotified = true;
          changed = true;
          this.deps.events.emit('token.expired', { server, ...(meta.tokenId ? { tokenId: meta.tokenId } : {}), expiresAt: new Date(meta.expiresAt).toISOString() });
          this.deps.log.warn({ server, tokenId: meta.tokenId }, 'the identity token has expired; it is no longer sent upstream');
        }
        continue;
      }
      const crossed = thresholds.filter((days) => remaining <= days * DAY_MS && !meta.warned.includes(days));
      if (crossed.length > 0) {
        const mostUrgent = Math.min(...crossed);
        meta.warned.push(...crossed);
        changed = true;
        const daysLeft = Math.floor(remaining / DAY_MS);
        this.deps.events.emit('token.expiring', { server, ...(meta.tokenId ? { tokenId: meta.tokenId } : {}), threshold: mostUrgent, daysLeft, expiresAt: new Date(meta.expiresAt).toISOString() });
        this.deps.log.warn({ server, tokenId: meta.tokenId, daysLeft, threshold: mostUrgent }, `the identity token expires in ${daysLeft} day(s); replace it with \`tokenbroker token replace\``);
      }
      for (const days of thresholds) {
        const at = meta.expiresAt - days * DAY_MS;
        if (at > now) next = Math.min(next, at);
      }
      next = Math.min(next, meta.expiresAt);
    }
    if (changed) void this.persist().catch((err: unknown) => this.deps.log.error({ err: errorText(err) }, 'cannot save token state'));
    if (Number.isFinite(next)) {
      this.expiryTimer = this.deps.clock.setTimer(Math.min(MAX_TIMER_MS, next - now), () => this.checkExpiry());
    }
  }

  private async loadMetadata(): Promise<void> {
    let raw: unknown;
    try {
      raw = await this.deps.state.read(STATE_DOCUMENT);
    } catch (err) {
      this.deps.log.error({ err: errorText(err) }, 'cannot read token metadata; starting without it');
      return;
    }
    if (raw === undefined) return;
    const parsed = TokensDocumentSchema.safeParse(raw);
    if (!parsed.success) {
      this.deps.log.error({ document: STATE_DOCUMENT }, 'token metadata is malformed; starting without it');
      return;
    }
    for (const [server, meta] of Object.entries(parsed.data.tokens)) this.meta.set(server, meta);
  }

  /** Loads one server's token from the store; a store that is not ready is retried with backoff. */
  private async loadSecret(server: string): Promise<void> {
    if (this.stopped) return;
    const generation = this.generationOf(server);
    let secret: string | null;
    try {
      secret = await this.deps.store.get(server);
    } catch (err) {
      if (generation !== this.generationOf(server)) return;
      this.loadProblems.set(server, errorText(err));
      const attempt = this.retries.failed(server);
      this.deps.log.warn({ server, err: errorText(err), attempt }, 'cannot load the identity token from the secret store; retrying');
      return;
    }
    if (generation !== this.generationOf(server)) return;
    this.loadProblems.delete(server);
    this.retries.remove(server);
    if (secret === null) return;
    this.secrets.set(server, secret);
    if (!this.meta.has(server)) {
      // A token in the keychain without metadata (state dir wiped): keep it, verify it.
      this.meta.set(server, { setAt: this.deps.clock.now(), verified: false, warned: [], expiredNotified: false });
    }
    const state = this.stateOf(server);
    if (this.backgroundEnabled && state !== 'invalid' && state !== 'expired') this.revalidateSoon(server);
    this.checkExpiry();
  }

  /** A check right away (not on a timer: nothing to wait for), replacing any retry pending. */
  private revalidateSoon(server: string): void {
    this.cancelRetry(server);
    this.track(new Promise<void>((resolve) => queueMicrotask(() => resolve(this.revalidate(server)))));
  }

  /** Background check of a stored token; offline = retry with backoff, keeping the last answer. */
  private async revalidate(server: string): Promise<void> {
    if (this.stopped) return;
    const token = this.secrets.get(server);
    const state = this.stateOf(server);
    if (token === undefined || state === 'invalid' || state === 'expired') return;
    const generation = this.generationOf(server);
    try {
      const { metadataUnknown: _unknown, ...info } = await this.deps.validate(this.server(server), token);
      this.retries.remove(server);
      if (generation !== this.generationOf(server)) return;
      const meta = this.meta.get(server);
      if (meta === undefined) return;
      Object.assign(meta, info, { verified: true, verifiedAt: this.deps.clock.now() });
      await this.persist();
      this.checkExpiry();
      this.deps.log.info({ server, tokenId: info.tokenId }, 'identity token verified');
    } catch (err) {
      if (generation !== this.generationOf(server)) return;
      if (isBrokerError(err, 'BROKER_TOKEN_INVALID') || isBrokerError(err, 'BROKER_TOKEN_EXPIRED')) {
        this.rejected(server, err.message, token);
        return;
      }
      // Offline: the scheduler's backoff (full jitter, 1 s .. 5 min), the same as a source's.
      const attempt = this.retries.failed(server);
      this.deps.log.warn({ server, err: errorText(err), attempt }, 'cannot verify the identity token now; keeping the last known state and retrying');
    }
  }

  private track(work: Promise<void>): void {
    const settled: Promise<void> = work.then(() => undefined, () => undefined).finally(() => this.background.delete(settled));
    this.background.add(settled);
    // Waiting ignores a failure, but it still surfaces as before (an unhandled rejection).
    void work.finally(() => undefined);
  }

  private cancelRetry(server: string): void {
    this.retries.remove(server);
  }

  private generationOf(server: string): number {
    return this.generations.get(server) ?? 0;
  }

  private bumpGeneration(server: string): void {
    this.generations.set(server, this.generationOf(server) + 1);
  }

  /** Writes the metadata document; writes are serialised so the last state always lands last. */
  private persist(): Promise<void> {
    const snapshot = { version: 1 as const, tokens: Object.fromEntries([...this.meta].map(([server, meta]) => [server, { ...meta, warned: [...meta.warned] }])) };
    const write = this.persistChain.then(() => this.deps.state.write(STATE_DOCUMENT, snapshot));
    this.persistChain = write.catch(() => undefined);
    return write;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
