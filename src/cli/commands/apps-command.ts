import type { Command } from 'commander';
import type { AppView } from '../../protocol/sources.js';
import type { CliContext } from '../context.js';
import { writeJson, writeLine } from '../io.js';
import { formatTable } from '../table.js';

export interface AppsListOptions {
  source?: string;
  json: boolean;
}

export function registerAppsCommand(program: Command, ctx: CliContext): void {
  const apps = program.command('apps').description('list the apps of the app sources');
  apps
    .command('list')
    .description('list apps (a table on a terminal, JSON otherwise)')
    .option('--source <name>', 'only this source')
    .option('--json', 'machine-readable output (the default when stdout is not a terminal)', false)
    .action(async (options: AppsListOptions) => runAppsList(options, ctx));
}

/** A table for people on a terminal; stable JSON for scripts (or with --json). */
export async function runAppsList(options: AppsListOptions, ctx: CliContext): Promise<void> {
  const apps = await ctx.client().apps(options.source === undefined ? {} : { source: options.source });
  if (options.json || !ctx.io.stdoutIsTTY) {
    writeJson(ctx.io.stdout, apps);
    return;
  }
  for (const line of formatApps(apps)) writeLine(ctx.io.stdout, line);
}

export function formatApps(apps: readonly AppView[]): string[] {
  if (apps.length === 0) return ['No apps. Refresh with `tokenbroker sources refresh`, and check `tokenbroker sources list` for errors.'];
  const rows = apps.map((app) => [app.source, app.name, app.latestVersion, `${app.displayName}${app.withdrawn ? ' (withdrawn)' : ''}`]);
  return [...formatTable(['SOURCE', 'NAME', 'LATEST', 'DISPLAY NAME'], rows), '', `${apps.length} app${apps.length === 1 ? '' : 's'}`];
}
