import type { Command } from 'commander';
import { verifyOwnerSocket } from '../../client/socket-trust.js';
import { probeSocket } from '../../node/socket-probe.js';
import { resolvePaths } from '../../protocol/paths.js';
import type { CliContext } from '../context.js';
import { writeJson, writeLine, writeLines } from '../io.js';
import { currentServiceHost, type ServiceHost, type ServiceLayout } from '../service/service-host.js';
import { driverFor, installService, serviceStatus, uninstallService, type ServiceActionReport, type ServiceStatusReport } from '../service/service-manager.js';
import { waitForExit } from '../process-util.js';

export interface ServiceActionCommandOptions {
  dryRun: boolean;
  json: boolean;
}

export interface ServiceStatusCommandOptions {
  json: boolean;
}

export interface ServiceDeps {
  /** Defaults to the real machine (process.execPath, the package's bin/tokenbroker.js, systemctl/launchctl). */
  host?: ServiceHost;
}

const MANAGER_NAMES = { systemd: 'systemd user units', launchd: 'launchd agent' } as const;

export function registerServiceCommand(program: Command, ctx: CliContext): void {
  const service = program.command('service').description('install the daemon as a login service (systemd user units or a launchd agent)');
  service
    .command('install')
    .description('write the units with this install\'s absolute paths, then enable and start them')
    .option('--dry-run', 'print the files and commands instead of changing anything', false)
    .option('--json', 'machine-readable output', false)
    .action(async (options: ServiceActionCommandOptions) => runServiceInstall(options, ctx));
  service
    .command('uninstall')
    .description('stop and disable the service and delete its files (token, state and cache stay)')
    .option('--dry-run', 'print the files and commands instead of changing anything', false)
    .option('--json', 'machine-readable output', false)
    .action(async (options: ServiceActionCommandOptions) => runServiceUninstall(options, ctx));
  service
    .command('status')
    .description('whether the service is installed, enabled and active')
    .option('--json', 'machine-readable output', false)
    .action(async (options: ServiceStatusCommandOptions) => runServiceStatus(options, ctx));
}

export async function runServiceInstall(options: ServiceActionCommandOptions, ctx: CliContext, deps: ServiceDeps = {}): Promise<void> {
  const host = deps.host ?? currentServiceHost(ctx.io.env);
  const report = await installService(host, { dryRun: options.dryRun, beforeStart: (layout) => stopUnmanagedDaemon(host, layout) });
  report.notes.push(...socketMismatchNotes(ctx, host, report.socketPath));
  printAction(report, options, ctx);
}

export async function runServiceUninstall(options: ServiceActionCommandOptions, ctx: CliContext, deps: ServiceDeps = {}): Promise<void> {
  const host = deps.host ?? currentServiceHost(ctx.io.env);
  printAction(await uninstallService(host, { dryRun: options.dryRun }), options, ctx);
}

export async function runServiceStatus(options: ServiceStatusCommandOptions, ctx: CliContext, deps: ServiceDeps = {}): Promise<void> {
  const host = deps.host ?? currentServiceHost(ctx.io.env);
  const status = await serviceStatus(host);
  if (options.json) {
    writeJson(ctx.io.stdout, status);
    return;
  }
  writeLines(ctx.io, formatServiceStatus(status));
  for (const note of socketMismatchNotes(ctx, host, status.socketPath)) writeLine(ctx.io.stdout, `note: ${note}`);
}

function printAction(report: ServiceActionReport, options: ServiceActionCommandOptions, ctx: CliContext): void {
  if (options.json) {
    writeJson(ctx.io.stdout, report);
    return;
  }
  const lines = report.dryRun ? formatDryRun(report) : formatAction(report);
  writeLines(ctx.io, lines);
}

const CHANGE_WORDS = { create: 'new file', update: 'replaces the current file', unchanged: 'identical to the current file' } as const;

/**
 * `--dry-run`: a shell-script-like listing, stable for the same machine state: the files with
 * their full text, then the commands in the order install runs them.
 */
export function formatDryRun(report: ServiceActionReport): string[] {
  const lines = [`# tokenbroker service ${report.action} --dry-run (${MANAGER_NAMES[report.manager]}): nothing is changed.`];
  const commands = report.commands.map((c) => (c.when === undefined ? c.command : `${c.command}  # only if ${c.when}`));
  if (report.action === 'install') {
    for (const file of report.files) {
      const change = file.change === 'create' || file.change === 'update' || file.change === 'unchanged' ? CHANGE_WORDS[file.change] : file.change;
      lines.push(`# write ${file.path} (${change}):`);
      lines.push(...(file.content ?? '').replace(/\n$/, '').split('\n'));
      lines.push(`# end of ${file.path}`);
    }
    lines.push('# then run:', ...commands);
    lines.push(`# The service's socket: ${report.socketPath}`);
    lines.push(...report.notes.map((note) => `# note: ${note}`));
    return lines;
  }
  if (report.nothingToDo) return [...lines, '# not installed: nothing to remove.'];
  const removals = report.files.filter((file) => file.change === 'remove').map((file) => `rm ${file.path}`);
  // Stop first, then delete the files, then reload (the order uninstall uses).
  lines.push(...commands.slice(0, 1), ...removals, ...commands.slice(1));
  return lines;
}

export function formatAction(report: ServiceActionReport): string[] {
  const name = MANAGER_NAMES[report.manager];
  const lines: string[] = [];
  if (report.action === 'install') {
    lines.push(report.nothingToDo ? `tokenbroker service is already installed (${name}, files unchanged):` : `Installed the tokenbroker service (${name}):`);
    const words = { create: 'created', update: 'updated', unchanged: 'unchanged', remove: 'removed', absent: 'absent' } as const;
    for (const file of report.files) lines.push(`  ${words[file.change].padEnd(9)} ${file.path}`);
  } else {
    if (report.nothingToDo) return [`tokenbroker service is not installed (${name}): nothing to do.`];
    lines.push(`Uninstalled the tokenbroker service (${name}):`);
    for (const file of report.files) if (file.change === 'remove') lines.push(`  removed   ${file.path}`);
  }
  // A command that failed is not shown as done: the notes below say what it means.
  for (const command of report.commands) lines.push(command.code === 0 || command.code === undefined ? `  ran       ${command.command}` : `  FAILED    ${command.command} (exit ${command.code}): see the note below`);
  if (report.action === 'install') {
    lines.push(
      report.manager === 'systemd'
        ? `The socket is ${report.socketPath}; systemd starts the daemon on the first connection.`
        : `The agent starts at login and listens on ${report.socketPath}.`,
    );
  } else {
    lines.push('Your token, state and cache are unchanged. CLI commands start a daemon on demand again.');
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  return lines;
}

export function formatServiceStatus(status: ServiceStatusReport): string[] {
  const present = status.files.filter((file) => file.present);
  let installed: string;
  if (present.length === 0) installed = 'no (run `tokenbroker service install`)';
  else if (!status.installed) installed = `partly: missing ${status.files.filter((file) => !file.present).map((file) => file.path).join(', ')} (run \`tokenbroker service install\`)`;
  else if (!status.upToDate) installed = 'yes, but the files differ from what `tokenbroker service install` writes now (node moved or tokenbroker was upgraded?): run it again';
  else installed = 'yes, up to date';
  const active = status.active === null ? `unknown: ${status.message ?? 'the service manager cannot be asked'}` : `${status.active ? 'yes' : 'no'} (${status.activeState}${status.pid === undefined ? '' : `, pid ${status.pid}`})`;
  const lines = [
    `tokenbroker service (${MANAGER_NAMES[status.manager]})`,
    `  installed  ${installed}`,
    ...present.map((file) => `             ${file.path}`),
    `  enabled    ${status.enabled ? 'yes' : 'no'} (${status.enabledState})`,
    `  active     ${active}`,
    `  socket     ${status.socketPath}`,
  ];
  if (status.installed && status.active === false) lines.push(`Start it with: ${status.startCommand}`);
  return lines;
}

/** A shell that points the CLI elsewhere (TOKENBROKER_HOME/SOCKET, --socket) will not see the service's daemon. */
function socketMismatchNotes(ctx: CliContext, host: ServiceHost, serviceSocket: string): string[] {
  const paths = resolvePaths({ env: host.env, platform: host.platform, homedir: host.homedir, uid: host.uid, username: host.username, socketFlag: ctx.globals().socket });
  if (paths.socketPath === serviceSocket) return [];
  const why: Record<string, string> = {
    flag: 'drop --socket to use the service',
    TOKENBROKER_SOCKET: 'unset TOKENBROKER_SOCKET to use the service',
    TOKENBROKER_HOME: 'unset TOKENBROKER_HOME to use the service',
    XDG: 'XDG_RUNTIME_DIR differs from the service manager\'s',
    'platform-default': 'XDG_RUNTIME_DIR is not set in this shell; a login session with systemd sets it',
  };
  return [`this CLI talks to ${paths.socketPath}, not to the service's socket ${serviceSocket} (${why[paths.sources.socket] ?? paths.sources.socket}).`];
}

/**
 * A daemon that the CLI started (autostart) or the user ran by hand may hold the service's socket
 * path. systemd would take the path over and leave that daemon unreachable; launchd's daemon
 * would exit "already running" and be restarted over and over. So it is stopped (SIGTERM: it
 * drains and exits) before the service starts. A daemon the service manager itself runs is left alone.
 */
async function stopUnmanagedDaemon(host: ServiceHost, layout: ServiceLayout): Promise<string[]> {
  // Only its pid is needed, and that daemon's state dir (its hello key) is unknown here: a probe
  // of a socket that passes the ownership checks, which sends nothing of the user's.
  try {
    await verifyOwnerSocket(layout.socketPath);
  } catch {
    return [];
  }
  const probe = await probeSocket(layout.socketPath, 3_000).catch(() => undefined);
  if (probe?.kind !== 'daemon' || probe.pid === undefined || probe.activated === true) return [];
  const pid = probe.pid;
  if (layout.kind === 'launchd' && (await driverFor(host, layout).state()).pid === pid) return [];
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return [];
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return [];
  }
  const gone = await waitForExit(pid, 20_000);
  return [
    gone
      ? `stopped the daemon that ran outside the service manager (pid ${pid}) so that ${layout.kind} can take over ${layout.socketPath}.`
      : `the daemon that runs outside the service manager (pid ${pid}) did not stop within 20 s; stop it (kill ${pid}) so that ${layout.kind} can take over ${layout.socketPath}.`,
  ];
}
