import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import type { AppView } from '../../protocol/sources.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../errors.js';
import { downloadWithProgress } from './fetch-command.js';
import { layoutOf, writeJson, writeLine, writeLines } from '../io.js';
import { formatTable, type Layout } from '../table.js';

export interface AppsListOptions {
  source?: string;
  json: boolean;
}

export function registerAppsCommand(program: Command, ctx: CliContext): void {
  const apps = program.command('apps').description('list the apps of the app sources');
  apps
    .command('list')
    .description('list apps (a table; tab-separated when piped)')
    .option('--source <name>', 'only this source')
    .option('--json', 'machine-readable output', false)
    .action(async (options: AppsListOptions) => runAppsList(options, ctx));
  apps
    .command('download')
    .description('download an app tarball, verified against the index (saved under its file name, e.g. pc-nrfconnect-ble-4.0.4.tgz)')
    .argument('<app>', 'SOURCE/NAME or SOURCE/NAME@VERSION (latest when no version)')
    .option('-o, --output <dir>', 'directory to save into (default: the current directory)')
    .action(async (spec: string, options: AppsDownloadOptions) => runAppsDownload(spec, options, ctx));
}

export interface AppsDownloadOptions {
  output?: string;
}

const AppSpecSchema = z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/([A-Za-z0-9][A-Za-z0-9._-]{0,213})(?:@([^\s@/]{1,256}))?$/, 'must be SOURCE/NAME or SOURCE/NAME@VERSION, e.g. official/pc-nrfconnect-ble@4.0.4');

export function parseAppSpec(spec: string): { source: string; name: string; version?: string } {
  const parsed = AppSpecSchema.safeParse(spec);
  if (!parsed.success) throw new UsageError(`"${spec.slice(0, 100)}" ${parsed.error.issues[0]?.message ?? 'is not valid'}.`, 'List the apps with `tokenbroker apps list`.');
  const [, source, name, version] = /^([^/]+)\/([^@]+)(?:@(.+))?$/.exec(parsed.data) as RegExpExecArray;
  return { source: source as string, name: name as string, ...(version === undefined ? {} : { version }) };
}

/** `apps download SOURCE/NAME[@VERSION] [-o DIR]`: same progress bar and exit codes as `fetch`. */
export async function runAppsDownload(spec: string, options: AppsDownloadOptions, ctx: CliContext): Promise<void> {
  const { source, name, version } = parseAppSpec(spec);
  const dir = path.resolve(options.output ?? '.');
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) throw new UsageError(`${dir} is not a directory.`, 'Create it first, or pass another one with -o DIR.');
  const result = await downloadWithProgress(ctx, `${source}/${name}`, (onProgress, signal) => ctx.client().downloadApp(source, name, dir, { ...(version === undefined ? {} : { version }), ...(onProgress === undefined ? {} : { onProgress }), signal }));
  writeLine(ctx.io.stdout, result.path);
  if (result.app.withdrawn) writeLine(ctx.io.stderr, `note: ${source}/${name} is withdrawn from its source.`);
}

/** A table (tab-separated lines when piped); stable JSON with --json. */
export async function runAppsList(options: AppsListOptions, ctx: CliContext): Promise<void> {
  const apps = await ctx.client().apps(options.source === undefined ? {} : { source: options.source });
  if (options.json) {
    writeJson(ctx.io.stdout, apps);
    return;
  }
  writeLines(ctx.io, formatApps(apps, layoutOf(ctx.io)));
}

export function formatApps(apps: readonly AppView[], layout?: Layout): string[] {
  if (apps.length === 0) return ['No apps. Refresh with `tokenbroker sources refresh`, and check `tokenbroker sources list` for errors.'];
  const rows = apps.map((app) => [app.source, app.name, app.latestVersion, `${app.displayName}${app.withdrawn ? ' (withdrawn)' : ''}`]);
  const table = formatTable(['SOURCE', 'NAME', 'LATEST', 'DISPLAY NAME'], rows, layout);
  // Piped output is the table alone: every line a row a script can split on tabs.
  return layout?.tty === false ? table : [...table, '', `${apps.length} app${apps.length === 1 ? '' : 's'}`];
}
