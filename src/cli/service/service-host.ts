import os from 'node:os';
import path from 'node:path';
import { defaultSocketPath, loginServiceLocation, startCommandText } from '../../node/login-service.js';
import { LAUNCHD_PLIST, SYSTEMD_SERVICE_UNIT, SYSTEMD_SOCKET_UNIT, TEMPLATE_FILES } from './unit-templates.js';
import { cliEntry, packageRoot } from '../package-root.js';
import { systemCommandRunner, type CommandRunner } from './command-runner.js';

/**
 * Everything `service install|uninstall|status` and autostart need to know about the machine,
 * in one injectable object: tests run the real code in a temp HOME with a chosen platform and,
 * where no service manager runs, a stand-in command runner.
 */
export interface ServiceHost {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  homedir: string;
  uid: number;
  username: string;
  /** Absolute node binary the units run (`process.execPath` of the installing CLI). */
  node: string;
  /** Absolute `bin/tokenbroker.js` of this install. */
  entry: string;
  /** Where `systemd/` and `launchd/` templates are read from. */
  packageRoot: string;
  run: CommandRunner;
}

export function currentServiceHost(env: NodeJS.ProcessEnv = process.env): ServiceHost {
  const root = packageRoot();
  return {
    platform: process.platform,
    env,
    homedir: os.homedir(),
    uid: typeof process.getuid === 'function' ? process.getuid() : -1,
    username: os.userInfo().username,
    node: process.execPath,
    entry: cliEntry(root),
    packageRoot: root,
    run: systemCommandRunner(env),
  };
}

/** A service operation that cannot be done; message + hint for the user, exit 1. */
export class ServiceError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

export type ServiceManagerKind = 'systemd' | 'launchd';

export interface ServiceFileSpec {
  /** Installed path. */
  path: string;
  /** Template path relative to the package root. */
  template: string;
}

/** Where a platform's service files go and what the service looks like from outside. */
export interface ServiceLayout {
  kind: ServiceManagerKind;
  /** `~/.config/systemd/user` or `~/Library/LaunchAgents`. */
  dir: string;
  files: ServiceFileSpec[];
  /** The socket the service's daemon listens on (systemd: the socket unit's ListenStream). */
  socketPath: string;
  /** launchd only: where the agent's stdout/stderr go. */
  logDir?: string;
  /** How a user starts the installed service by hand. */
  startCommand: string;
}

/** The layout on this platform; Windows and others without a supported manager are refused. */
export function serviceLayout(host: ServiceHost): ServiceLayout {
  const location = loginServiceLocation(host);
  if (location?.manager === 'systemd') {
    return {
      kind: 'systemd',
      dir: location.dir,
      files: [
        { path: path.join(location.dir, SYSTEMD_SOCKET_UNIT), template: TEMPLATE_FILES.systemdSocket },
        { path: path.join(location.dir, SYSTEMD_SERVICE_UNIT), template: TEMPLATE_FILES.systemdService },
      ],
      socketPath: location.socketPath,
      startCommand: startCommandText(location),
    };
  }
  if (location?.manager === 'launchd') {
    return {
      kind: 'launchd',
      dir: location.dir,
      files: [{ path: path.join(location.dir, LAUNCHD_PLIST), template: TEMPLATE_FILES.launchdPlist }],
      socketPath: location.socketPath,
      logDir: path.join(host.homedir, 'Library', 'Logs', 'tokenbroker'),
      startCommand: startCommandText(location),
    };
  }
  throw new ServiceError(
    `tokenbroker has no service-manager integration on ${host.platform}`,
    'CLI commands start the daemon on demand instead; or run `tokenbroker daemon` yourself (e.g. from your session start-up).',
  );
}

export { defaultSocketPath };
