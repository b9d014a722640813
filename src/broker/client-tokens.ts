import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  CLIENT_SCOPES,
  CLIENT_TOKEN_PATTERN,
  CLIENT_TOKEN_PREFIX,
  DEFAULT_CLIENT_TOKEN_DAYS,
  type ClientScope,
  type ClientTokenScope,
  type ClientTokenView,
  type CreateClientTokenInput,
  type CreatedClientToken,
  type RevokedClientToken,
  scopeAllows,
} from '../protocol/client-tokens.js';
import { BrokerError } from '../protocol/errors.js';
import type { Clock, DomainLog, StateStore, TimerHandle } from './ports.js';

export const CLIENT_TOKENS_DOCUMENT = 'client-tokens.json';
const DAY_MS = 86_400_000;
/** lastUsedAt is bookkeeping, not security: write it at most this often, not on every request. */
export const LAST_USED_FLUSH_MS = 60_000;
/**
 * Verification compares against every stored hash (see `authenticate`), and the state document is
 * rewritten whole; a bound keeps both small. Nobody needs hundreds of local client tokens.
 */
export const MAX_CLIENT_TOKENS = 200;
const TOKEN_BYTES = 32;

const StoredScopeSchema = z.union([z.literal('user'), z.array(z.enum(CLIENT_SCOPES))]);

/** What is kept on disk: the SHA-256 of the token, never the token. Times are epoch ms. */
const StoredClientTokenSchema = z.object({
  id: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  description: z.string(),
  subject: z.string(),
  scope: StoredScopeSchema,
  issuedAt: z.number(),
  expiresAt: z.number(),
  lastUsedAt: z.number().optional(),
});
type StoredClientToken = z.output<typeof StoredClientTokenSchema>;

const ClientTokensDocumentSchema = z.object({
  version: z.literal(1),
  tokens: z.array(StoredClientTokenSchema),
});

export interface ClientTokenServiceDeps {
  state: StateStore;
  clock: Clock;
  log: DomainLog;
  /** The local OS user the tokens act for; the subject is `"<user> (<description>)"`. */
  user: string;
  /** Injectable for tests; node:crypto's CSPRNG otherwise. */
  randomBytes?: (size: number) => Uint8Array;
  newId?: () => string;
  lastUsedFlushMs?: number;
}

/** A verified client token: who it is and what it may do. Never carries the token value. */
export interface ClientTokenGrant {
  id: string;
  description: string;
  scope: ClientTokenScope;
}

/**
 * Scoped local client tokens: create (the value is returned once), list, revoke, and verify the
 * `Authorization: Bearer tbk_...` of requests on extra listeners.
 *
 * Only SHA-256(token) is stored. A fast unsalted hash is enough here, unlike for passwords: the
 * token is 256 bits from a CSPRNG, so nobody can brute-force a preimage whatever the hash speed,
 * and no two tokens share a hash, so a salt would add nothing. Slow KDFs exist for low-entropy
 * secrets; this check runs on every request, so it should cost microseconds.
 */
export class ClientTokenService {
  private readonly tokens = new Map<string, StoredClientToken>();
  private writeChain: Promise<void> = Promise.resolve();
  private flushTimer: TimerHandle | undefined;
  private lastUsedDirty = false;
  private readonly random: (size: number) => Uint8Array;
  private readonly newId: () => string;

  constructor(private readonly deps: ClientTokenServiceDeps) {
    this.random = deps.randomBytes ?? randomBytes;
    this.newId = deps.newId ?? randomUUID;
  }

  /**
   * Loads the stored hashes. An unreadable or malformed document is logged and treated as empty:
   * failing closed (no client token works) is safe, and the owner's socket still works to create
   * new ones.
   */
  async start(): Promise<void> {
    let raw: unknown;
    try {
      raw = await this.deps.state.read(CLIENT_TOKENS_DOCUMENT);
    } catch (err) {
      this.deps.log.error({ err: err instanceof Error ? err.message : String(err) }, 'cannot read client tokens; no client token is accepted until new ones are created');
      return;
    }
    if (raw === undefined) return;
    const parsed = ClientTokensDocumentSchema.safeParse(raw);
    if (!parsed.success) {
      this.deps.log.error({ document: CLIENT_TOKENS_DOCUMENT }, 'client tokens document is malformed; no client token is accepted until new ones are created');
      return;
    }
    for (const token of parsed.data.tokens) this.tokens.set(token.id, token);
  }

  /** Writes a pending lastUsedAt update; called on shutdown. */
  async stop(): Promise<void> {
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    if (this.lastUsedDirty) await this.persist().catch(() => undefined);
    await this.writeChain;
  }

  get count(): number {
    return this.tokens.size;
  }

  /** Creates a token and returns its value: the only time it exists outside the caller's hands. */
  async create(input: CreateClientTokenInput): Promise<CreatedClientToken> {
    if (this.tokens.size >= MAX_CLIENT_TOKENS) {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: `There are already ${MAX_CLIENT_TOKENS} client tokens.`,
        hint: 'Revoke the ones you no longer use (`tokenbroker client-token list`, then `tokenbroker client-token revoke ID`).',
      });
    }
    const bytes = this.random(TOKEN_BYTES);
    if (bytes.length !== TOKEN_BYTES) throw new Error(`random source returned ${bytes.length} bytes, expected ${TOKEN_BYTES}`);
    const token = `${CLIENT_TOKEN_PREFIX}${Buffer.from(bytes).toString('base64url')}`;
    const issuedAt = this.deps.clock.now();
    const days = input.expiresInDays ?? DEFAULT_CLIENT_TOKEN_DAYS;
    const stored: StoredClientToken = {
      id: this.newId(),
      sha256: sha256Hex(token),
      description: input.description,
      subject: `${this.deps.user} (${input.description})`,
      scope: input.scope,
      issuedAt,
      expiresAt: issuedAt + days * DAY_MS,
    };
    this.tokens.set(stored.id, stored);
    try {
      await this.persist();
    } catch (err) {
      // Not saved means not created: the caller never sees a token that would vanish on restart.
      this.tokens.delete(stored.id);
      throw saveError('The client token was not created', err);
    }
    this.deps.log.info({ clientTokenId: stored.id, scope: stored.scope, description: stored.description, expiresAt: iso(stored.expiresAt) }, 'client token created');
    const { lastUsedAt: _unused, ...view } = this.view(stored);
    return { ...view, token };
  }

  /** Every token, oldest first, expired ones included (they stay until revoked). */
  list(): ClientTokenView[] {
    return [...this.tokens.values()].sort((a, b) => a.issuedAt - b.issuedAt || a.id.localeCompare(b.id)).map((token) => this.view(token));
  }

  /** Revokes at once: the next request with the token is refused, before the file is even written. */
  async revoke(id: string): Promise<RevokedClientToken> {
    const token = this.tokens.get(id);
    if (token === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', {
        message: `No client token with ID ${id}.`,
        hint: 'List the client tokens with `tokenbroker client-token list`.',
      });
    }
    this.tokens.delete(id);
    try {
      await this.persist();
    } catch (err) {
      // It stays revoked in memory; any later successful write (create, lastUsedAt) saves it too.
      throw saveError('The client token is revoked until the daemon restarts, but the change was not saved', err);
    }
    this.deps.log.info({ clientTokenId: id, description: token.description }, 'client token revoked');
    return { id, revoked: true };
  }

  /**
   * Verifies an `Authorization` header value. Undefined for anything that is not a live token:
   * missing, malformed, unknown, revoked or expired all look the same to the caller, so an answer
   * never tells which part was wrong.
   */
  authenticate(authorization: string | undefined): ClientTokenGrant | undefined {
    const presented = bearerToken(authorization);
    if (presented === undefined) return undefined;
    const digest = createHash('sha256').update(presented).digest();
    // Compare with every stored hash in constant time and without stopping at a match, so timing
    // reveals neither which token matched nor how much of a hash did.
    let match: StoredClientToken | undefined;
    for (const token of this.tokens.values()) {
      if (timingSafeEqual(digest, Buffer.from(token.sha256, 'hex'))) match = token;
    }
    const now = this.deps.clock.now();
    if (match === undefined || now >= match.expiresAt) return undefined;
    match.lastUsedAt = now;
    this.scheduleLastUsedFlush();
    return { id: match.id, description: match.description, scope: match.scope };
  }

  /** True when the grant may use a route that needs `scope`. */
  static allows(grant: ClientTokenGrant, scope: ClientScope): boolean {
    return scopeAllows(grant.scope, scope);
  }

  private scheduleLastUsedFlush(): void {
    this.lastUsedDirty = true;
    if (this.flushTimer !== undefined) return;
    this.flushTimer = this.deps.clock.setTimer(this.deps.lastUsedFlushMs ?? LAST_USED_FLUSH_MS, () => {
      this.flushTimer = undefined;
      if (!this.lastUsedDirty) return;
      this.persist().catch((err: unknown) => {
        this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot save client token last-used times; retrying later');
        this.scheduleLastUsedFlush();
      });
    });
  }

  /** Writes are chained, each saving the state as it is when it runs, so the last write wins with the newest state. */
  private persist(): Promise<void> {
    // Whatever is in memory when the write runs is saved, including lastUsedAt times.
    this.lastUsedDirty = false;
    const run = this.writeChain.then(() => this.deps.state.write(CLIENT_TOKENS_DOCUMENT, { version: 1, tokens: [...this.tokens.values()] }));
    this.writeChain = run.catch(() => {
      this.lastUsedDirty = true;
    });
    return run;
  }

  private view(token: StoredClientToken): ClientTokenView {
    return {
      id: token.id,
      description: token.description,
      subject: token.subject,
      issuedAt: iso(token.issuedAt),
      expiresAt: iso(token.expiresAt),
      scope: token.scope === 'user' ? 'user' : [...token.scope],
      lastUsedAt: token.lastUsedAt === undefined ? null : iso(token.lastUsedAt),
    };
  }
}

/** The token from `Bearer tbk_...`, or undefined when the header is absent or not of that form. */
function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(authorization);
  const token = match?.[1];
  return token !== undefined && CLIENT_TOKEN_PATTERN.test(token) ? token : undefined;
}

function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function saveError(what: string, err: unknown): BrokerError {
  return new BrokerError('BROKER_INTERNAL', {
    message: `${what}: the state file could not be written (${err instanceof Error ? err.message : String(err)}).`,
    hint: 'Check that the state directory is writable and the disk is not full, then try again.',
    cause: err,
  });
}
