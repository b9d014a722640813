import type { Command } from 'commander';
import type { z } from 'zod';
import {
  CLIENT_SCOPES,
  ClientTokenDescriptionSchema,
  ClientTokenScopeSchema,
  DEFAULT_CLIENT_TOKEN_DAYS,
  ExpiresInDaysSchema,
  type ClientTokenView,
  type CreateClientTokenBody,
  type CreatedClientToken,
} from '../../protocol/client-tokens.js';
import { describeIssue } from '../../protocol/zod-issues.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../errors.js';
import { layoutOf, writeJson, writeLine, writeLines } from '../io.js';
import { formatTable, type Layout } from '../table.js';

export interface ClientTokenCreateOptions {
  description: string;
  /** Each --scope value; commas split further ("status:read,fetch"). None = "user". */
  scope?: string[];
  expiresInDays?: string;
  json: boolean;
}

export interface ClientTokenListOptions {
  json: boolean;
}

export interface ClientTokenRevokeOptions {
  json: boolean;
}

const SCOPE_HELP = `${CLIENT_SCOPES.join(', ')}, or user (all of them)`;

export function registerClientTokenCommand(program: Command, ctx: CliContext): void {
  const command = program.command('client-token').description('create, list or revoke scoped client tokens for extra listeners (shared sockets)');
  command
    .command('create')
    .description('create a client token; it is printed once and never shown again')
    .requiredOption('--description <text>', 'what the token is for, e.g. "ci-runner" (shown in the list)')
    .option('--scope <scope>', `a scope, repeatable or comma-separated: ${SCOPE_HELP} (default: user)`, (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--expires-in-days <n>', `days until it expires, 1-3650 (default: ${DEFAULT_CLIENT_TOKEN_DAYS})`)
    .option('--json', 'machine-readable output (includes the token)', false)
    .action(async (options: ClientTokenCreateOptions) => runClientTokenCreate(options, ctx));
  command
    .command('list')
    .description('list client tokens: description, subject, ID, dates, scope, last use (never the token)')
    .option('--json', 'machine-readable output', false)
    .action(async (options: ClientTokenListOptions) => runClientTokenList(options, ctx));
  command
    .command('revoke')
    .description('revoke a client token at once')
    .argument('<id>', 'Token ID from `tokenbroker client-token list`')
    .option('--json', 'machine-readable output', false)
    .action(async (id: string, options: ClientTokenRevokeOptions) => runClientTokenRevoke(id, options, ctx));
}

/** Validates the flags with the API's own schemas, so a mistake is a usage error (exit 2) before any request. */
export function parseCreateOptions(options: ClientTokenCreateOptions): CreateClientTokenBody {
  const scopes = (options.scope ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter((value) => value !== '');
  let scope: CreateClientTokenBody['scope'];
  if (scopes.length === 0) scope = 'user';
  else if (scopes.includes('user')) {
    if (scopes.some((value) => value !== 'user')) throw new UsageError('--scope user already includes every scope; give it alone.', `Scopes: ${SCOPE_HELP}.`);
    scope = 'user';
  } else scope = parseFlag(ClientTokenScopeSchema, scopes, '--scope', `Scopes: ${SCOPE_HELP}.`) as CreateClientTokenBody['scope'];
  const description = parseFlag(ClientTokenDescriptionSchema, options.description, '--description');
  let expiresInDays: number | undefined;
  if (options.expiresInDays !== undefined) {
    if (!/^\d+$/.test(options.expiresInDays)) throw new UsageError(`--expires-in-days must be a whole number of days (got ${JSON.stringify(options.expiresInDays)}).`, 'For example --expires-in-days 30.');
    expiresInDays = parseFlag(ExpiresInDaysSchema, Number(options.expiresInDays), '--expires-in-days');
  }
  return { description, scope, ...(expiresInDays === undefined ? {} : { expiresInDays }) };
}

export async function runClientTokenCreate(options: ClientTokenCreateOptions, ctx: CliContext): Promise<void> {
  const body = parseCreateOptions(options);
  const created = await ctx.client().createClientToken(body);
  // The token goes to stdout alone (so `$(...)` captures just it); everything else to stderr.
  if (options.json) writeJson(ctx.io.stdout, created);
  else writeLine(ctx.io.stdout, created.token);
  for (const line of describeCreated(created)) writeLine(ctx.io.stderr, line);
}

export async function runClientTokenList(options: ClientTokenListOptions, ctx: CliContext): Promise<void> {
  const tokens = await ctx.client().listClientTokens();
  if (options.json) {
    writeJson(ctx.io.stdout, tokens);
    return;
  }
  if (tokens.length === 0) {
    writeLine(ctx.io.stderr, 'No client tokens. Create one with `tokenbroker client-token create --description TEXT [--scope SCOPE]`.');
    return;
  }
  writeLines(ctx.io, formatClientTokenTable(tokens, Date.now(), layoutOf(ctx.io)));
}

export async function runClientTokenRevoke(id: string, options: ClientTokenRevokeOptions, ctx: CliContext): Promise<void> {
  const revoked = await ctx.client().revokeClientToken(id);
  if (options.json) writeJson(ctx.io.stdout, revoked);
  else writeLine(ctx.io.stdout, `Revoked client token ${revoked.id}. Requests with it are refused from now on.`);
}

function describeCreated(created: CreatedClientToken): string[] {
  return [
    `Created client token ${created.id}`,
    `  Subject:  ${created.subject}`,
    `  Scope:    ${formatScope(created.scope)}`,
    `  Expires:  ${formatTime(created.expiresAt)}`,
    'Copy the token now: it will not be shown again (the daemon keeps only its hash).',
    'Programs on an extra listener send it as "Authorization: Bearer <token>".',
  ];
}

/** The seed's Access Tokens table: Description, Subject, Token ID, Issued, Expires, Scope; plus Last used. */
export function formatClientTokenTable(tokens: readonly ClientTokenView[], now: number, layout?: Layout): string[] {
  const header = ['Description', 'Subject', 'Token ID', 'Issued', 'Expires', 'Scope', 'Last used'];
  const rows = tokens.map((token) => [
    token.description,
    token.subject,
    token.id,
    formatTime(token.issuedAt),
    `${formatTime(token.expiresAt)}${Date.parse(token.expiresAt) <= now ? ' (expired)' : ''}`,
    formatScope(token.scope),
    token.lastUsedAt === null ? 'never' : formatTime(token.lastUsedAt),
  ]);
  return formatTable(header, rows, layout);
}

function formatScope(scope: ClientTokenView['scope']): string {
  return scope === 'user' ? 'user' : scope.join(',');
}

/** `2026-01-01 12:00 UTC`: unambiguous, and the same on every machine. */
function formatTime(isoTime: string): string {
  const ms = Date.parse(isoTime);
  return Number.isNaN(ms) ? isoTime : `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function parseFlag<S extends z.ZodType>(schema: S, value: unknown, flag: string, hint?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UsageError(`${flag} ${describeIssue(result.error.issues[0], '').replace(/^"?value"? /, '')}.`, hint);
}
