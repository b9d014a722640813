import type { CommandResult } from './command-runner.js';
import type { PlannedFile } from './service-files.js';
import type { ServiceManagerKind } from './service-host.js';

/** A command install/uninstall runs; `when` qualifies it in --dry-run output. */
export interface PlannedCommand {
  file: string;
  args: string[];
  when?: string;
}

/** A command that ran, for the report. */
export interface CommandRun {
  command: string;
  code: number;
  output: string;
}

/** What one manager (systemd, launchd) does beyond writing and removing the files. */
export interface ManagerDriver {
  readonly kind: ServiceManagerKind;
  /** Commands `install` would run, for --dry-run. */
  plannedInstall(files: PlannedFile[]): PlannedCommand[];
  plannedUninstall(): PlannedCommand[];
  /** Fails early (before any file is written) when the manager's tool is missing. */
  preflight(): Promise<void>;
  /** Runs after the files are written. */
  activate(files: PlannedFile[], log: RunLog): Promise<ActivateResult>;
  /** Stops and disables, calls `removeFiles` at the right moment, reloads. */
  deactivate(removeFiles: () => Promise<void>, log: RunLog): Promise<string[]>;
  /** Enabled/active as the manager sees it. */
  state(): Promise<ManagerState>;
}

export interface ActivateResult {
  notes: string[];
}

export interface ManagerState {
  /** false: the manager cannot be asked (no user systemd in this session); the fields below are then partial. */
  reachable: boolean;
  /** systemd `is-enabled` word (`enabled`, `disabled`, `not-found`...), launchd `loaded`/`not-loaded`. */
  enabledState: string;
  enabled: boolean;
  /** systemd `is-active` of the socket and service, launchd `running`/`not-running`; `unknown` when unreachable. */
  activeState: string;
  active: boolean | null;
  /** Daemon pid when the manager reports one. */
  pid?: number;
  message?: string;
}

/** Runs commands and remembers them for the report. */
export interface RunLog {
  run(file: string, args: readonly string[]): Promise<CommandResult>;
  readonly runs: CommandRun[];
}
