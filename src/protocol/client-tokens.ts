import { z } from 'zod';

/**
 * Scoped local client tokens (DESIGN section 8): what a program on an extra listener (a socket
 * shared with a group or a container) may do. The owner's own socket needs none.
 */
import { CLIENT_SCOPES, type ClientScope } from './client-scopes.js';

export { CLIENT_SCOPES, type ClientScope };

/** `"user"` (the seed's User token: everything the owner's socket offers except managing client tokens) or a custom list. */
export type ClientTokenScope = 'user' | ClientScope[];

/** Every client token starts with this, so secret scanners and people recognise it. */
export const CLIENT_TOKEN_PREFIX = 'tbk_';
/** `tbk_` + 32 random bytes in base64url (43 characters, no padding). */
export const CLIENT_TOKEN_PATTERN = /^tbk_[A-Za-z0-9_-]{43}$/;

/** Without `expiresInDays` a client token lives 90 days, like a short-lived access token, not forever. */
export const DEFAULT_CLIENT_TOKEN_DAYS = 90;
export const MAX_CLIENT_TOKEN_DAYS = 3650;
export const MAX_DESCRIPTION_LENGTH = 200;

/** Printable text: no control, format or unassigned code points (no hidden characters in a table row). */
const PRINTABLE = /^[^\p{C}]*$/u;

export const ClientTokenDescriptionSchema = z
  .string({ error: 'must be a string saying what the token is for, e.g. "ci-runner"' })
  .min(1, 'must not be empty: say what the token is for, e.g. "ci-runner"')
  .max(MAX_DESCRIPTION_LENGTH, `must be at most ${MAX_DESCRIPTION_LENGTH} characters`)
  .refine((value) => PRINTABLE.test(value), 'must be printable text (no control characters or line breaks)')
  .refine((value) => value.trim() !== '', 'must not be only spaces');

export const ClientScopeSchema = z.enum(CLIENT_SCOPES);

/** `"user"` or a non-empty list of scopes; duplicates are dropped, the caller's order is kept. */
export const ClientTokenScopeSchema = z.union(
  [
    z.literal('user'),
    z
      .array(ClientScopeSchema)
      .min(1, 'must list at least one scope, or be "user"')
      .transform((scopes) => [...new Set(scopes)]),
  ],
  { error: `must be "user" or a list of scopes from ${CLIENT_SCOPES.map((s) => `"${s}"`).join(', ')}` },
);

export const ExpiresInDaysSchema = z
  .number({ error: 'must be a whole number of days' })
  .int('must be a whole number of days')
  .min(1, 'must be at least 1 day')
  .max(MAX_CLIENT_TOKEN_DAYS, `must be at most ${MAX_CLIENT_TOKEN_DAYS} days`);

export const CreateClientTokenBodySchema = z.strictObject({
  description: ClientTokenDescriptionSchema,
  scope: ClientTokenScopeSchema,
  expiresInDays: ExpiresInDaysSchema.optional(),
});
export type CreateClientTokenBody = z.input<typeof CreateClientTokenBodySchema>;
export type CreateClientTokenInput = z.output<typeof CreateClientTokenBodySchema>;

/** IDs are UUIDs; any other string is simply not found (404), like an unknown UUID. */
export const ClientTokenIdSchema = z
  .string()
  .min(1, 'must be a client token ID from `tokenbroker client-token list`')
  .max(128, 'must be a client token ID from `tokenbroker client-token list`');
export const ClientTokenParamsSchema = z.strictObject({ id: ClientTokenIdSchema });

const ScopeViewSchema = z.union([z.literal('user'), z.array(z.string())]);

/** One row of `GET /v1/client-tokens`: everything except the token (only its hash is kept). */
export const ClientTokenViewSchema = z.looseObject({
  id: z.string(),
  description: z.string(),
  /** The local user the token acts for, with the description: `"ada (ci-runner)"`. */
  subject: z.string(),
  issuedAt: z.string(),
  expiresAt: z.string(),
  scope: ScopeViewSchema,
  /** Null until first used; updated lazily (at most about once a minute). */
  lastUsedAt: z.string().nullable(),
});
export type ClientTokenView = z.output<typeof ClientTokenViewSchema>;

/** `GET /v1/client-tokens` answers a bare array, like `GET /v1/sources`. */
export const ClientTokenListSchema = z.array(ClientTokenViewSchema);

/** The answer to `POST /v1/client-tokens`: the only time the token value is ever shown. */
export const CreatedClientTokenSchema = z.looseObject({
  id: z.string(),
  token: z.string().regex(CLIENT_TOKEN_PATTERN),
  description: z.string(),
  subject: z.string(),
  issuedAt: z.string(),
  expiresAt: z.string(),
  scope: ScopeViewSchema,
});
export type CreatedClientToken = z.output<typeof CreatedClientTokenSchema>;

export const RevokedClientTokenSchema = z.looseObject({ id: z.string(), revoked: z.literal(true) });
export type RevokedClientToken = z.output<typeof RevokedClientTokenSchema>;

/** True when a token with `scope` may use a route that needs `needed`. */
export function scopeAllows(scope: ClientTokenScope, needed: ClientScope): boolean {
  return scope === 'user' || scope.includes(needed);
}
