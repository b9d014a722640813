import type { Command } from 'commander';
import { ERRORS, ExitCode, isErrorCode, type ExitCodeValue } from '../../protocol/errors.js';
import type { SourceRefreshResult, SourceView } from '../../protocol/sources.js';
import type { CliContext } from '../context.js';
import { SilentExit } from '../errors.js';
import { writeJson, writeLine } from '../io.js';
import { formatTable, formatWhen, plural } from '../table.js';

export interface SourcesListOptions {
  json: boolean;
}

export interface SourcesAddOptions {
  json: boolean;
}

export interface SourcesRefreshOptions {
  name?: string;
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
    .argument('<name>', 'source name, as in `tokenbroker sources list`')
    .action(async (name: string) => runSourcesRemove(name, ctx));
  sources
    .command('refresh')
    .description('refresh one source, or all, now')
    .argument('[name]', 'source name (default: every source)')
    .option('--json', 'machine-readable output', false)
    .action(async (name: string | undefined, options: { json: boolean }) => runSourcesRefresh({ ...options, ...(name === undefined ? {} : { name }) }, ctx));
}

export async function runSourcesList(options: SourcesListOptions, ctx: CliContext): Promise<void> {
  const sources = await ctx.client().sources();
  if (options.json) {
    writeJson(ctx.io.stdout, sources);
    return;
  }
  for (const line of formatSources(sources)) writeLine(ctx.io.stdout, line);
}

export async function runSourcesAdd(url: string, options: SourcesAddOptions, ctx: CliContext): Promise<void> {
  const view = await ctx.client().addSource(url);
  if (options.json) {
    writeJson(ctx.io.stdout, view);
    return;
  }
  writeLine(ctx.io.stdout, `Added source "${view.name}" (${plural(view.appCount, 'app')}, ${view.state}${view.restricted ? ', restricted' : ''}).`);
  for (const line of problemLines(view)) writeLine(ctx.io.stderr, line);
}

export async function runSourcesRemove(name: string, ctx: CliContext): Promise<void> {
  const removed = await ctx.client().removeSource(name);
  writeLine(ctx.io.stdout, `Removed source "${removed.name}".`);
}

/** Exit 0 when every source refreshed; otherwise the exit code of the first problem (4 token, 5 upstream, ...). */
export async function runSourcesRefresh(options: SourcesRefreshOptions, ctx: CliContext): Promise<void> {
  const results = await ctx.client().refreshSources(options.name === undefined ? {} : { name: options.name });
  if (options.json) writeJson(ctx.io.stdout, results);
  else for (const line of formatRefresh(results)) writeLine(ctx.io.stdout, line);
  const failed = results.find((result) => result.outcome === 'failed' || result.outcome === 'needs-token');
  if (failed !== undefined) throw new SilentExit(exitCodeOf(failed));
}

function exitCodeOf(result: SourceRefreshResult): ExitCodeValue {
  const code = result.lastError?.code;
  return code !== undefined && isErrorCode(code) ? ERRORS[code].exit : result.outcome === 'needs-token' ? ExitCode.token : ExitCode.error;
}

export function formatSources(sources: readonly SourceView[]): string[] {
  const table = formatTable(
    ['NAME', 'STATE', 'APPS', 'LAST REFRESH', 'URL'],
    sources.map((source) => [source.name + (source.official ? ' *' : ''), source.state, String(source.appCount), formatWhen(source.lastRefreshAt), source.url]),
  );
  const lines = [...table];
  for (const source of sources) {
    const problems = problemLines(source);
    if (problems.length > 0) lines.push('', `${source.name}:`, ...problems);
  }
  lines.push('', '* the official source (always present)');
  return lines;
}

/** The last attempt's problems, with the field path where there is one. */
export function problemLines(source: SourceView): string[] {
  if (source.errors.length === 0) return [];
  const shown = source.errors.slice(0, 5);
  const lines = shown.map((problem) => `  ! ${problem.message}${problem.field === undefined ? '' : ` [field: ${problem.field}]`} (${problem.code})`);
  const more = source.errorCount - shown.length;
  if (more > 0) lines.push(`  ... and ${plural(more, 'more problem')}${source.errors.length > shown.length ? ' (see --json)' : ''}`);
  if (source.state === 'needs-token') lines.push(`  This source is restricted: ${tokenAdvice(source)}; it refreshes as soon as the token is usable.`);
  else if (source.nextRefreshAt !== null) lines.push(`  Next attempt: ${formatWhen(source.nextRefreshAt)}. ${lastGoodIndex(source)}`);
  return lines;
}

/** `token set` refuses while a token is set: a rejected or expired one is replaced instead. */
function tokenAdvice(source: SourceView): string {
  const missing = source.errors.some((problem) => problem.code === 'BROKER_TOKEN_MISSING');
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
        lines.push(`${result.name}: updated (${current})`);
        break;
      case 'unchanged':
        lines.push(`${result.name}: up to date (${current})`);
        break;
      case 'needs-token':
        lines.push(`${result.name}: needs a token (${apps})`);
        lines.push(...problemLines(result));
        break;
      case 'failed':
        lines.push(`${result.name}: failed (${apps})`);
        lines.push(...problemLines(result));
        break;
    }
  }
  return lines;
}
