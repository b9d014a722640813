import { z } from 'zod';

/** JFrog identity/reference tokens are a few hundred printable ASCII characters. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/**
 * The raw token as the API accepts it: printable ASCII without spaces, at most 8 KiB. The messages
 * never echo the value (zod does not put the input in its messages).
 */
export const TokenSecretSchema = z
  .string({ error: 'must be a string: the identity token' })
  .min(1, 'must not be empty: paste the identity token from your user profile')
  .max(MAX_TOKEN_BYTES, `is longer than ${MAX_TOKEN_BYTES} characters: this is not an identity token`)
  .refine((value) => !/\s/.test(value), 'contains whitespace: paste the token alone, on one line')
  .refine((value) => /^[\x21-\x7e]*$/.test(value), 'contains control or non-ASCII characters: paste the token alone');

export const ServerNameSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be a configured server name such as "nordic"');

export const PutTokenBodySchema = z.strictObject({
  server: ServerNameSchema.optional(),
  token: TokenSecretSchema,
  verify: z.boolean().default(true),
});
export type PutTokenBody = z.input<typeof PutTokenBodySchema>;

export const ServerQuerySchema = z.strictObject({
  server: ServerNameSchema.optional(),
});

export const TOKEN_STATES = ['absent', 'valid', 'expiring', 'expired', 'invalid', 'unverified'] as const;
export type TokenState = (typeof TOKEN_STATES)[number];

/** Token metadata: everything about the token except the token. Times are ISO strings. */
export const TokenViewSchema = z.looseObject({
  server: z.string(),
  state: z.enum(TOKEN_STATES),
  tokenId: z.string().optional(),
  subject: z.string().optional(),
  description: z.string().optional(),
  issuedAt: z.string().optional(),
  expiresAt: z.string().optional(),
  daysLeft: z.number().optional(),
  verifiedAt: z.string().optional(),
  setAt: z.string().optional(),
  /** Why the state is `invalid` (the upstream's words), or why verification is pending. */
  reason: z.string().optional(),
});
export type TokenView = z.output<typeof TokenViewSchema>;

export const TokenRemovedSchema = z.looseObject({
  server: z.string(),
  removed: z.boolean(),
  consequences: z.array(z.string()),
});
export type TokenRemoved = z.output<typeof TokenRemovedSchema>;

export const SecretStoreStatusSchema = z.looseObject({
  kind: z.enum(['keychain', 'memory', 'file']),
  state: z.enum(['ok', 'locked', 'unavailable', 'timeout', 'unknown']),
  persistent: z.boolean(),
  plaintextAtRest: z.boolean(),
  /** The plaintext file: the `file` store's own, or one it left behind after a switch. */
  plaintextPath: z.string().optional(),
  warning: z.string().optional(),
});
export type SecretStoreStatus = z.output<typeof SecretStoreStatusSchema>;

/** What removing a token costs the user (seeds: "Important considerations when removing a token"). */
export const TOKEN_REMOVAL_CONSEQUENCES = [
  'Restricted app sources can no longer be added.',
  'Existing restricted app sources can no longer be refreshed; refreshing them reports an error.',
  'Apps from restricted app sources can no longer be downloaded or installed (cached copies included).',
  'Set a new token with `tokenbroker token set` to restore access.',
];
