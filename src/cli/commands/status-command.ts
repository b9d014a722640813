import type { Command } from 'commander';
import { z } from 'zod';
import type { Status } from '../../protocol/status.js';
import { SourcesStatusSchema } from '../../protocol/sources.js';
import { SecretStoreStatusSchema, TokenViewSchema } from '../../protocol/token.js';
import type { CliContext } from '../context.js';
import { writeJson, writeLine } from '../io.js';

export interface StatusOptions {
  json: boolean;
}

export function registerStatusCommand(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description('show the daemon, its socket, the token and the sources')
    .option('--json', 'machine-readable output', false)
    .action(async (options: StatusOptions) => runStatus(options, ctx));
}

export async function runStatus(options: StatusOptions, ctx: CliContext): Promise<void> {
  const status = await ctx.client().status();
  if (options.json) {
    writeJson(ctx.io.stdout, status);
    return;
  }
  for (const line of formatStatus(status)) writeLine(ctx.io.stdout, line);
}

export function formatStatus(status: Status): string[] {
  const lines = [
    `tokenbroker ${status.version} (pid ${status.pid}), up ${formatDuration(status.uptimeSeconds)}`,
    `  socket  ${status.socket.path}${status.socket.activated ? ' (socket-activated)' : ''}`,
    `  config  ${status.config.path}`,
    `  state   ${status.paths.state}`,
    `  cache   ${status.paths.cache}`,
  ];
  const store = SecretStoreStatusSchema.safeParse(status.secretStore);
  if (store.success) {
    const s = store.data;
    lines.push(`secret store: ${s.kind} (${s.state}${s.persistent ? '' : ', not persistent'}${s.plaintextAtRest ? ', PLAINTEXT AT REST' : ''})`);
    if (s.warning) lines.push(`  warning: ${s.warning}`);
  }
  const tokens = TokenViewSchema.array().safeParse(status.tokens);
  if (tokens.success) {
    for (const t of tokens.data) {
      const expiry = t.expiresAt ? `, expires ${t.expiresAt.slice(0, 10)} (${t.daysLeft ?? '?'} days left)` : '';
      lines.push(`token ${t.server}: ${t.state}${t.tokenId ? `, Token ID ${t.tokenId}` : ''}${t.description ? `, "${t.description}"` : ''}${expiry}`);
    }
  }
  if (status.coreDumps?.warning !== undefined) lines.push(`core dumps: limit ${status.coreDumps.limit}`, `  warning: ${status.coreDumps.warning}`);
  const sources = SourcesStatusSchema.safeParse(status.sources);
  if (sources.success) {
    const s = sources.data;
    const parts = [`${s.count} source${s.count === 1 ? '' : 's'}`, `last refresh ${s.lastRefreshAt ?? 'never'}`];
    if (s.failing > 0) parts.push(`failing: ${s.failingSources.join(', ')}`);
    lines.push(`sources: ${parts.join(', ')}`);
    // Follows the token at once: a removed or rejected token shows here before any refresh.
    if (s.needsToken.length > 0) lines.push(`  needs a token: ${s.needsToken.join(', ')} (set one with \`tokenbroker token set\`)`);
  }
  const listeners = ListenersStatusSchema.safeParse(status.listeners);
  if (listeners.success) {
    for (const l of listeners.data) lines.push(`extra listener: ${l.path} (mode ${l.mode}, client token required)`);
  }
  return lines;
}

const ListenersStatusSchema = z.array(z.looseObject({ path: z.string(), mode: z.string() }));

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d ${Math.floor((seconds % 86_400) / 3600)}h`;
}
