import os from 'node:os';
import path from 'node:path';
import { resolvePaths } from '../../protocol/paths.js';
import { LAUNCHD_LABEL, LAUNCHD_PLIST, SYSTEMD_SERVICE_UNIT, SYSTEMD_SOCKET_UNIT, TEMPLATE_FILES } from './unit-templates.js';
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
  if (host.platform === 'linux') {
    const configHome = absolute(host.env.XDG_CONFIG_HOME) ?? path.join(host.homedir, '.config');
    const dir = path.join(configHome, 'systemd', 'user');
    // %t in the socket unit: the user manager's runtime directory.
    const runtime = absolute(host.env.XDG_RUNTIME_DIR) ?? `/run/user/${host.uid}`;
    return {
      kind: 'systemd',
      dir,
      files: [
        { path: path.join(dir, SYSTEMD_SOCKET_UNIT), template: TEMPLATE_FILES.systemdSocket },
        { path: path.join(dir, SYSTEMD_SERVICE_UNIT), template: TEMPLATE_FILES.systemdService },
      ],
      socketPath: path.join(runtime, 'tokenbroker', 'broker.sock'),
      startCommand: `systemctl --user start ${SYSTEMD_SOCKET_UNIT}`,
    };
  }
  if (host.platform === 'darwin') {
    const dir = path.join(host.homedir, 'Library', 'LaunchAgents');
    return {
      kind: 'launchd',
      dir,
      files: [{ path: path.join(dir, LAUNCHD_PLIST), template: TEMPLATE_FILES.launchdPlist }],
      // launchd passes no socket: the agent's daemon uses its own default path.
      socketPath: defaultSocketPath(host),
      logDir: path.join(host.homedir, 'Library', 'Logs', 'tokenbroker'),
      startCommand: `launchctl kickstart gui/${host.uid}/${LAUNCHD_LABEL}`,
    };
  }
  throw new ServiceError(
    `tokenbroker has no service-manager integration on ${host.platform}`,
    'CLI commands start the daemon on demand instead; or run `tokenbroker daemon` yourself (e.g. from your session start-up).',
  );
}

/**
 * The socket a daemon started by a service manager uses: the platform default, because the
 * manager does not pass the shell's TOKENBROKER_HOME/TOKENBROKER_SOCKET.
 */
export function defaultSocketPath(host: ServiceHost): string {
  const env: NodeJS.ProcessEnv = { ...host.env };
  delete env.TOKENBROKER_HOME;
  delete env.TOKENBROKER_SOCKET;
  return resolvePaths({ env, platform: host.platform, homedir: host.homedir, uid: host.uid, username: host.username }).socketPath;
}

function absolute(value: string | undefined): string | undefined {
  return value !== undefined && value.startsWith('/') ? value : undefined;
}
