import type { Command } from 'commander';
import type { TokenRemoved, TokenView } from '../../protocol/token.js';
import type { CliContext } from '../context.js';
import { BrokerError, isBrokerError } from '../../protocol/errors.js';
import { UsageError } from '../errors.js';
import { writeJson, writeLine, writeLines, type IO } from '../io.js';
import { plural } from '../table.js';
import { confirm, readSecret } from '../secret-input.js';

export interface TokenSetOptions {
  server?: string;
  verify: boolean;
  replace: boolean;
}

export interface TokenShowOptions {
  server?: string;
  json: boolean;
}

export interface TokenRemoveOptions {
  server?: string;
  yes: boolean;
  json: boolean;
}

const NO_ARGV_TOKEN =
  'The token is never taken from the command line: other users can read it from `ps`, and it stays in your shell history.';

export function registerTokenCommand(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('set, replace, show or remove your identity token');
  for (const [name, replace] of [
    ['set', false],
    ['replace', true],
  ] as const) {
    token
      .command(name)
      .description(replace ? 'replace the identity token (the old one stays until the new one is validated)' : 'set the identity token (read from a hidden prompt, or stdin when piped)')
      // Accepted only to refuse it with the reason (a bare "too many arguments" would not say why);
      // not declared as an argument, so the usage line does not offer one.
      .allowExcessArguments(true)
      .option('--server <name>', 'server name from config.json (default: the first)')
      .option('--no-verify', 'store without asking the server (state: unverified)')
      .action(async (options: { server?: string; verify: boolean }, command: Command) => {
        if (command.args.length > 0) throw new UsageError(NO_ARGV_TOKEN, 'Run `tokenbroker token set` and paste it at the prompt, or pipe it in: `tokenbroker token set < token.txt`.');
        await runTokenSet({ ...options, replace }, ctx);
      });
  }
  token
    .command('show')
    .description('show Token ID, Description, Expiration date, state and days left')
    .option('--server <name>', 'server name from config.json (default: the first)')
    .option('--json', 'machine-readable output', false)
    .action(async (options: TokenShowOptions) => runTokenShow(options, ctx));
  token
    .command('remove')
    .description('remove the identity token (asks first on a terminal)')
    .option('--server <name>', 'server name from config.json (default: the first)')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)', false)
    .option('--json', 'machine-readable output', false)
    .action(async (options: TokenRemoveOptions) => runTokenRemove(options, ctx));
}

export async function runTokenSet(options: TokenSetOptions, ctx: CliContext): Promise<void> {
  const client = ctx.client();
  const current = await client.token(options.server === undefined ? {} : { server: options.server });
  if (!options.replace && current.state !== 'absent') {
    throw new UsageError(`A token is already set for "${current.server}" (Token ID ${current.tokenId ?? 'unknown'}, ${current.state}).`, 'Use `tokenbroker token replace` to replace it.');
  }
  const secret = await readSecret(ctx.io, 'Identity token (input hidden): ');
  let view: TokenView;
  try {
    view = await client.setToken(secret, { ...(options.server === undefined ? {} : { server: options.server }), verify: options.verify });
  } catch (err) {
    // The server could not be asked: the token may well be good, and --no-verify stores it now.
    if (options.verify && (isBrokerError(err, 'BROKER_UPSTREAM_UNREACHABLE') || isBrokerError(err, 'BROKER_UPSTREAM_ERROR'))) {
      throw new BrokerError(err.code, {
        message: err.message,
        hint: `${err.hint} Or store it now without checking: \`tokenbroker token ${options.replace ? 'replace' : 'set'} --no-verify\` (the daemon checks it once the server answers).`,
        ...(err.details === undefined ? {} : { details: err.details }),
        cause: err,
      });
    }
    throw err;
  }
  const verb = options.replace && current.state !== 'absent' ? 'replaced' : 'set';
  writeLine(ctx.io.stderr, view.state === 'unverified' ? `Token ${verb} for ${view.server} without verification; the daemon checks it when the server is reachable.` : `Token ${verb} for ${view.server}.`);
  writeLines(ctx.io, formatToken(view));
}

export async function runTokenShow(options: TokenShowOptions, ctx: CliContext): Promise<void> {
  const view = await ctx.client().token(options.server === undefined ? {} : { server: options.server });
  if (options.json) {
    writeJson(ctx.io.stdout, view);
    return;
  }
  writeLines(ctx.io, formatToken(view));
}

export async function runTokenRemove(options: TokenRemoveOptions, ctx: CliContext): Promise<void> {
  const client = ctx.client();
  if (!options.yes) {
    if (!ctx.io.stdinIsTTY) throw new UsageError('Removing the token needs confirmation.', 'Run it in a terminal, or pass --yes.');
    const current = await client.token(options.server === undefined ? {} : { server: options.server });
    if (current.state === 'absent') {
      writeLine(ctx.io.stderr, `No token is set for ${current.server}.`);
      return;
    }
    printConsequences(ctx.io, 'When you remove the identity token:');
    if (!(await confirm(ctx.io, `Remove the identity token for ${current.server} (Token ID ${current.tokenId ?? 'unknown'})?`))) {
      writeLine(ctx.io.stderr, 'Nothing removed.');
      return;
    }
  }
  const removed = await client.removeToken(options.server === undefined ? {} : { server: options.server });
  if (options.json) {
    writeJson(ctx.io.stdout, removed);
    return;
  }
  writeLine(ctx.io.stdout, removed.removed ? `Token removed for ${removed.server}.` : `No token was set for ${removed.server}.`);
  if (removed.removed) printConsequences(ctx.io, 'From now on:', removed);
}

function printConsequences(io: IO, heading: string, removed?: TokenRemoved): void {
  const consequences = removed?.consequences ?? [
    'Restricted app sources can no longer be added.',
    'Existing restricted app sources can no longer be refreshed.',
    'Apps from restricted app sources can no longer be downloaded.',
  ];
  writeLine(io.stderr, heading);
  for (const line of consequences) writeLine(io.stderr, `  - ${line}`);
}

/** The seed's "token information": Token ID, Description, Expiration date; plus state and days left. */
export function formatToken(view: TokenView): string[] {
  if (view.state === 'absent') {
    return [`Server:          ${view.server}`, 'State:           no token set', ...(view.reason ? [`Note:            ${view.reason}`] : []), 'Set one with `tokenbroker token set`.'];
  }
  const expiry = view.expiresAt === undefined ? 'never (or unknown)' : `${view.expiresAt.slice(0, 10)}${view.daysLeft === undefined ? '' : ` (${plural(view.daysLeft, 'day')} left)`}`;
  return [
    `Server:          ${view.server}`,
    `Token ID:        ${view.tokenId ?? 'unknown (not verified yet)'}`,
    `Description:     ${view.description ?? '-'}`,
    `Expiration date: ${expiry}`,
    `State:           ${view.state}${view.reason ? ` (${view.reason})` : ''}`,
    ...(view.subject ? [`Subject:         ${view.subject}`] : []),
    ...(view.verifiedAt ? [`Verified:        ${view.verifiedAt}`] : []),
  ];
}
