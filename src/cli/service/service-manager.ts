/**
 * `tokenbroker service install|uninstall|status`: the file system and service-manager side.
 * The command (src/cli/commands/service-command.ts) only formats what these functions return.
 */
import { formatCommand } from './command-runner.js';
import { launchdDriver } from './launchd-driver.js';
import { planFiles, presentFiles, readIfPresent, removeFiles, renderServiceFiles, writeFiles, type PlannedFile } from './service-files.js';
import { serviceLayout, type ServiceHost, type ServiceLayout, type ServiceManagerKind } from './service-host.js';
import { systemdDriver } from './systemd-driver.js';
import type { CommandRun, ManagerDriver, ManagerState, RunLog } from './service-types.js';

export interface FileReport {
  path: string;
  change: 'create' | 'update' | 'unchanged' | 'remove' | 'absent';
  /** The full text, in --dry-run install reports. */
  content?: string;
}

export interface CommandReport {
  command: string;
  /** --dry-run: when the command runs at all. */
  when?: string;
  /** Set once it ran. */
  code?: number;
}

export interface ServiceActionReport {
  manager: ServiceManagerKind;
  action: 'install' | 'uninstall';
  dryRun: boolean;
  files: FileReport[];
  commands: CommandReport[];
  /** install: the files were already there, identical ("already installed"); uninstall: nothing was installed. */
  nothingToDo: boolean;
  notes: string[];
  /** Where the service's daemon listens. */
  socketPath: string;
}

export interface ServiceActionOptions {
  dryRun: boolean;
  /**
   * Runs after the files are written and before the service is started: e.g. stop a daemon that
   * holds the socket outside the service manager. Returns notes for the report.
   */
  beforeStart?: (layout: ServiceLayout) => Promise<string[]>;
}

export function driverFor(host: ServiceHost, layout: ServiceLayout): ManagerDriver {
  if (layout.kind === 'systemd') return systemdDriver(host.run);
  const plist = layout.files[0];
  if (plist === undefined || layout.logDir === undefined) throw new Error('launchd layout without a plist');
  return launchdDriver(host.run, { uid: host.uid, plistPath: plist.path, logDir: layout.logDir });
}

export async function installService(host: ServiceHost, options: ServiceActionOptions): Promise<ServiceActionReport> {
  const layout = serviceLayout(host);
  const driver = driverFor(host, layout);
  const files = await planFiles(await renderServiceFiles(host, layout));
  const base = { manager: layout.kind, action: 'install' as const, socketPath: layout.socketPath };
  if (options.dryRun) {
    return {
      ...base,
      dryRun: true,
      files: files.map((file) => ({ path: file.path, change: file.change, content: file.content })),
      commands: driver.plannedInstall(files).map((c) => ({ command: formatCommand(c.file, c.args), ...(c.when === undefined ? {} : { when: c.when }) })),
      nothingToDo: false,
      notes: [],
    };
  }
  await driver.preflight();
  await writeFiles(files);
  const notes = (await options.beforeStart?.(layout)) ?? [];
  const log = runLog(host);
  const activated = await driver.activate(files, log);
  return {
    ...base,
    dryRun: false,
    files: files.map((file: PlannedFile) => ({ path: file.path, change: file.change })),
    commands: reportRuns(log.runs),
    // Re-running install is safe: identical files, idempotent enable; the user is told so.
    nothingToDo: files.every((file) => file.change === 'unchanged'),
    notes: [...notes, ...activated.notes],
  };
}

export async function uninstallService(host: ServiceHost, options: ServiceActionOptions): Promise<ServiceActionReport> {
  const layout = serviceLayout(host);
  const driver = driverFor(host, layout);
  const present = await presentFiles(layout);
  const files: FileReport[] = layout.files.map((file) => ({ path: file.path, change: present.includes(file.path) ? 'remove' : 'absent' }));
  const base = { manager: layout.kind, action: 'uninstall' as const, socketPath: layout.socketPath, files };
  if (present.length === 0) return { ...base, dryRun: options.dryRun, commands: [], nothingToDo: true, notes: [] };
  if (options.dryRun) {
    const commands = driver.plannedUninstall().map((c) => ({ command: formatCommand(c.file, c.args), ...(c.when === undefined ? {} : { when: c.when }) }));
    return { ...base, dryRun: true, commands, nothingToDo: false, notes: [] };
  }
  await driver.preflight();
  const log = runLog(host);
  const notes = await driver.deactivate(() => removeFiles(present), log);
  return { ...base, dryRun: false, commands: reportRuns(log.runs), nothingToDo: false, notes };
}

export interface ServiceStatusReport {
  manager: ServiceManagerKind;
  /** Every service file is present. */
  installed: boolean;
  /** The present files are exactly what `install` would write now (false after node moved, or an upgrade). */
  upToDate: boolean;
  files: { path: string; present: boolean; upToDate: boolean }[];
  enabled: boolean;
  enabledState: string;
  /** null: unknown (the manager cannot be asked). */
  active: boolean | null;
  activeState: string;
  managerReachable: boolean;
  pid?: number;
  message?: string;
  socketPath: string;
  startCommand: string;
}

export async function serviceStatus(host: ServiceHost): Promise<ServiceStatusReport> {
  const layout = serviceLayout(host);
  const driver = driverFor(host, layout);
  const rendered = await renderServiceFiles(host, layout);
  const files = await Promise.all(
    rendered.map(async (file) => {
      const current = await readIfPresent(file.path);
      return { path: file.path, present: current !== undefined, upToDate: current === file.content };
    }),
  );
  const state: ManagerState = await driver.state();
  return {
    manager: layout.kind,
    installed: files.every((file) => file.present),
    upToDate: files.every((file) => file.upToDate),
    files,
    enabled: state.enabled,
    enabledState: state.enabledState,
    active: state.active,
    activeState: state.activeState,
    managerReachable: state.reachable,
    ...(state.pid === undefined ? {} : { pid: state.pid }),
    ...(state.message === undefined ? {} : { message: state.message }),
    socketPath: layout.socketPath,
    startCommand: layout.startCommand,
  };
}

function runLog(host: ServiceHost): RunLog {
  const runs: CommandRun[] = [];
  return {
    runs,
    async run(file, args) {
      const result = await host.run(file, args);
      runs.push({ command: formatCommand(file, args), code: result.code, output: `${result.stdout}${result.stderr}`.trim() });
      return result;
    },
  };
}

function reportRuns(runs: CommandRun[]): CommandReport[] {
  return runs.map((run) => ({ command: run.command, code: run.code }));
}
