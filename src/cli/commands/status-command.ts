import type { Command } from 'commander';
import type { SourceState, SourcesStatus } from '../../protocol/sources.js';
import type { Status } from '../../protocol/status.js';
import type { CliContext } from '../context.js';
import { writeJson, writeLines } from '../io.js';
import { formatWhen, plural } from '../table.js';

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
  // Status carries states only (it is polled); the reason of a failing source is asked for when there is one.
  const reasons = new Map<string, string>();
  if (status.sources.failing > 0) {
    const sources = await ctx.client().sources().catch(() => []);
    for (const source of sources) if (source.lastError !== null && source.lastError !== undefined) reasons.set(source.id, source.lastError.message);
  }
  writeLines(ctx.io, formatStatus(status, reasons));
}

/** Under socket activation the daemon cannot heal its socket: the service manager owns it. */
export const SOCKET_ACTIVATION_NOTE = 'the socket belongs to the service manager (socket activation): the daemon cannot re-create it if it is deleted.';
export const SOCKET_ACTIVATION_HINT = 'If the socket is gone, run `systemctl --user restart tokenbroker.socket`.';

export function formatStatus(status: Status, failingReasons: ReadonlyMap<string, string> = new Map()): string[] {
  const lines = [
    `tokenbroker ${status.version} (pid ${status.pid}), up ${formatDuration(status.uptimeSeconds)}`,
    `  socket  ${status.socket.path}${status.socket.activated ? ' (socket-activated)' : ''}`,
    ...(status.socket.activated ? [`  warning: ${SOCKET_ACTIVATION_NOTE} ${SOCKET_ACTIVATION_HINT}`] : []),
    `  config  ${status.config.path}`,
    `  state   ${status.paths.state}`,
    `  cache   ${status.paths.cache}`,
  ];
  const store = status.secretStore;
  lines.push(`secret store: ${store.kind} (${store.state}${store.persistent ? '' : ', not persistent'}${store.plaintextAtRest ? ', PLAINTEXT AT REST' : ''})`);
  if (store.warning) lines.push(`  warning: ${store.warning}`);
  if (store.plaintextPath !== undefined) lines.push(`  plaintext file: ${store.plaintextPath}`);
  for (const t of status.tokens) {
    const expiry = t.expiresAt ? `, expires ${t.expiresAt.slice(0, 10)}${t.daysLeft === undefined ? '' : ` (${plural(t.daysLeft, 'day')} left)`}` : '';
    lines.push(`token ${t.server}: ${t.state}${t.tokenId ? `, Token ID ${t.tokenId}` : ''}${t.description ? `, "${t.description}"` : ''}${expiry}`);
  }
  if (status.coreDumps?.warning !== undefined) lines.push(`core dumps: limit ${status.coreDumps.limit}`, `  warning: ${status.coreDumps.warning}`);
  lines.push(...formatSources(status.sources, status.tokens, failingReasons));
  for (const l of status.listeners) lines.push(`extra listener: ${l.path} (mode ${l.mode}, client token required)`);
  return lines;
}

/** The sources section: a summary, then each source with its state, the ones needing action first. */
function formatSources(sources: SourcesStatus, tokens: Status['tokens'], failingReasons: ReadonlyMap<string, string>): string[] {
  const next = sources.nextRefreshAt === null ? '' : `, next refresh ${formatWhen(sources.nextRefreshAt)}`;
  const lines = [`sources: ${plural(sources.count, 'source')}, ${sources.failing} failing, last refresh ${formatWhen(sources.lastRefreshAt)}${next}`];
  const urgency = (state: SourceState): number => ['failing', 'needs-token', 'stale', 'ok'].indexOf(state);
  const ordered = [...sources.items].sort((a, b) => urgency(a.state) - urgency(b.state));
  for (const source of ordered) {
    const reason = source.state === 'failing' ? failingReasons.get(source.id) : undefined;
    lines.push(`  ${source.id}  ${source.state}${source.name === source.id ? '' : `  (${source.name})`}`);
    if (reason !== undefined) lines.push(`    ${reason}`);
  }
  // Follows the token at once: a removed or rejected token shows here before any refresh.
  if (sources.needsToken.length > 0) lines.push(`  needs a token: ${sources.needsToken.join(', ')} (${tokenAdvice(tokens)})`);
  return lines;
}

/**
 * `token set` refuses while a token is set, so the advice follows the token states: set when none
 * is set, replace when the one set was rejected or expired, both when servers differ.
 */
export function tokenAdvice(tokens: readonly Pick<Status['tokens'][number], 'state'>[]): string {
  const missing = tokens.some((t) => t.state === 'absent');
  const rejected = tokens.some((t) => t.state === 'invalid' || t.state === 'expired');
  if (missing && !rejected) return 'set one with `tokenbroker token set`';
  if (rejected && !missing) return 'generate a new one and run `tokenbroker token replace`';
  return '`tokenbroker token set`, or `token replace` for a rejected one';
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86_400)}d ${Math.floor((seconds % 86_400) / 3600)}h`;
}
