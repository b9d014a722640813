import type { Command } from 'commander';
import { ERRORS, ExitCode, isErrorCode, type ExitCodeValue } from '../../protocol/errors.js';
import type { SourceRefreshResult, SourceView } from '../../protocol/sources.js';
import type { CliContext } from '../context.js';
import { SilentExit } from '../errors.js';
import { checkUrlLength } from './fetch-command.js';
import { layoutOf, writeJson, writeLine, writeLines } from '../io.js';
import { formatTable, formatWhen, plural, type Layout } from '../table.js';

export interface SourcesListOptions {
  json: boolean;
}

export interface SourcesAddOptions {
  json: boolean;
}

export interface SourcesRefreshOptions {
  /** Id or exact display name; absent = every source. */
  source?: string;
  json: boolean;
}

export function registerSourcesCommand(program: Command, ctx: CliContext): void {
  const sources = program.command('sources').description('list, add, remove or refresh app sources');
  sources
    .command('list')
    .description('list the sources with their state, app count, last refresh and last error')
    .option('--json', 'machine-readable output', false)
    .action(async (options: SourcesListOptions) => runSourcesList(options, ctx));
  sources
    .command('add')
    .description('add a source by the URL of its source.json')
    .argument('<url>', 'URL of the source.json')
    .option('--json', 'machine-readable output', false)
    .action(async (url: string, options: SourcesAddOptions) => runSourcesAdd(url, options, ctx));
  sources
    .command('remove')
    .description('remove a source (the official source cannot be removed)')
    .argument('<source>', 'source id (or exact display name), as in `tokenbroker sources list`')
    .action(async (source: string) => runSourcesRemove(source, ctx));
  sources
    .command('refresh')
    .description('refresh one source, or all, now')
    .argument('[source]', 'source id or exact display name (default: every source)')
    .option('--json', 'machine-readable output', false)
    .action(async (source: string | undefined, options: { json: boolean }) => runSourcesRefresh({ ...options, ...(source === undefined ? {} : { source }) }, ctx));
}

export async function runSourcesList(options: SourcesListOptions, ctx: CliContext): Promise<void> {
  const sources = await ctx.client().sources();
  if (options.json) {
    writeJson(ctx.io.stdout, sources);
    return;
  }
  writeLines(ctx.io, formatSources(sources, layoutOf(ctx.io)));
}

export async function runSourcesAdd(url: string, options: SourcesAddOptions, ctx: CliContext): Promise<void> {
  checkUrlLength(url, 8192);
  const added = await ctx.client().addSource(url);
  if (options.json) {
    writeJson(ctx.io.stdout, added);
    return;
  }
  const view = added.source;
  const kind = [view.state, ...(view.restricted ? ['restricted'] : []), ...(view.thirdParty ? ['third-party, public'] : [])].join(', ');
  writeLine(ctx.io.stdout, `Added source "${view.name}" as ${view.id} (${plural(view.appCount, 'app')}, ${kind}).`);
  for (const app of added.apps) writeLine(ctx.io.stdout, `  ${app.name} ${app.latestVersion}  ${app.displayName}`);
  for (const line of problemLines(view)) writeLine(ctx.io.stderr, line);
}

export async function runSourcesRemove(source: string, ctx: CliContext): Promise<void> {
  const removed = await ctx.client().removeSource(source);
  writeLine(ctx.io.stdout, `Removed source "${removed.name}" (${removed.id}).`);
}

/** Exit 0 when every source refreshed; otherwise the exit code of the first problem (4 token, 5 upstream, ...). */
export async function runSourcesRefresh(options: SourcesRefreshOptions, ctx: CliContext): Promise<void> {
  const results = await ctx.client().refreshSources(options.source === undefined ? {} : { id: options.source });
  if (options.json) writeJson(ctx.io.stdout, results);
  else writeLines(ctx.io, formatRefresh(results));
  const failed = results.find((result) => result.outcome === 'failed' || result.outcome === 'needs-token');
  if (failed !== undefined) throw new SilentExit(exitCodeOf(failed));
}

function exitCodeOf(result: SourceRefreshResult): ExitCodeValue {
  const code = result.lastError?.code;
  return code !== undefined && isErrorCode(code) ? ERRORS[code].exit : result.outcome === 'needs-token' ? ExitCode.token : ExitCode.error;
}

export function formatSources(sources: readonly SourceView[], layout?: Layout): string[] {
  const table = formatTable(
    ['ID', 'NAME', 'STATE', 'APPS', 'LAST REFRESH', 'URL'],
    sources.map((source) => [
      source.id + (source.official ? ' *' : ''),
      source.name,
      source.state,
      String(source.appCount) + (source.withdrawnCount > 0 ? ` (+${source.withdrawnCount} withdrawn)` : ''),
      formatWhen(source.lastRefreshAt),
      source.url + (source.thirdParty ? ' (third-party)' : ''),
    ]),
    layout,
  );
  const lines = [...table];
  for (const source of sources) {
    const problems = problemLines(source);
    if (problems.length > 0) lines.push('', `${source.id}:`, ...problems);
  }
  lines.push('', '* the official source (always present)');
  return lines;
}

/** The last attempt's problems, with the field path where there is one. */
export function problemLines(source: SourceView): string[] {
  if (source.problems.length === 0) return [];
  const shown = source.problems.slice(0, 5);
  // Notes (something off in a document kept anyway) are not errors: marked "i", no code.
  const lines = shown.map((problem) => `  ${problem.note === true ? 'i' : '!'} ${problem.message}${problem.field === undefined ? '' : ` [field: ${problem.field}]`}${problem.note === true ? ' (note)' : ` (${problem.code})`}`);
  const more = source.errorCount - shown.filter((problem) => problem.note !== true).length;
  if (more > 0) lines.push(`  ... and ${plural(more, 'more problem')}${source.problems.length > shown.length ? ' (see --json)' : ''}`);
  if (source.state === 'needs-token') lines.push(`  This source is restricted: ${tokenAdvice(source)}; it refreshes as soon as the token is usable.`);
  else if (source.errorCount > 0 && source.nextRefreshAt !== null) lines.push(`  Next attempt: ${formatWhen(source.nextRefreshAt)}. ${lastGoodIndex(source)}`);
  return lines;
}

/** `token set` refuses while a token is set: a rejected or expired one is replaced instead. */
function tokenAdvice(source: SourceView): string {
  const missing = source.problems.some((problem) => problem.code === 'BROKER_TOKEN_MISSING');
  return missing ? 'set your identity token with `tokenbroker token set`' : 'generate a new identity token and run `tokenbroker token replace`';
}

/** What is served meanwhile: only claim a last good index when one was ever fetched. */
function lastGoodIndex(source: SourceView): string {
  if (source.lastRefreshAt !== null) return `The last good index (${formatWhen(source.lastRefreshAt)}) is still served.`;
  if (source.appCount > 0) return `The ${plural(source.appCount, 'app')} read so far ${source.appCount === 1 ? 'is' : 'are'} still served.`;
  return 'No index has been fetched yet: this source lists no apps until one is.';
}

export function formatRefresh(results: readonly SourceRefreshResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    const apps = result.lastRefreshAt !== null ? `${plural(result.appCount, 'app')} from the last good index` : result.appCount > 0 ? `${plural(result.appCount, 'app')} read so far` : 'no index fetched yet';
    const current = plural(result.appCount, 'app');
    switch (result.outcome) {
      case 'updated':
        lines.push(`${result.id}: updated (${current})`);
        break;
      case 'unchanged':
        lines.push(`${result.id}: up to date (${current})`);
        break;
      case 'needs-token':
        lines.push(`${result.id}: needs a token (${apps})`);
        lines.push(...problemLines(result));
        break;
      case 'failed':
        lines.push(`${result.id}: failed (${apps})`);
        lines.push(...problemLines(result));
        break;
    }
  }
  return lines;
}
