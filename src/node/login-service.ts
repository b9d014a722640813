import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { resolvePaths } from '../protocol/paths.js';
import { LAUNCHD_LABEL, LAUNCHD_PLIST, SYSTEMD_SOCKET_UNIT } from '../protocol/service-names.js';

/** The machine facts the login service's location depends on (injectable for tests). */
export interface LoginServiceHost {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  homedir: string;
  uid: number;
  username: string;
}

/** Where the login service lives on this platform and how it is started by hand. */
export interface LoginServiceLocation {
  manager: 'systemd' | 'launchd';
  /** `~/.config/systemd/user` or `~/Library/LaunchAgents`. */
  dir: string;
  /** The file whose presence means "installed" (systemd: the socket unit, which starts the daemon). */
  marker: string;
  /** The socket the service's daemon listens on. */
  socketPath: string;
  /** How a user (or autostart) starts it: `systemctl --user start tokenbroker.socket`, `launchctl kickstart gui/UID/LABEL`. */
  start: { file: string; args: string[] };
}

/** The login service's location, or undefined on platforms without a supported service manager. */
export function loginServiceLocation(host: LoginServiceHost): LoginServiceLocation | undefined {
  if (host.platform === 'linux') {
    const dir = path.join(absolute(host.env.XDG_CONFIG_HOME) ?? path.join(host.homedir, '.config'), 'systemd', 'user');
    // %t in the socket unit: the user manager's runtime directory.
    const runtime = absolute(host.env.XDG_RUNTIME_DIR) ?? `/run/user/${host.uid}`;
    return {
      manager: 'systemd',
      dir,
      marker: path.join(dir, SYSTEMD_SOCKET_UNIT),
      socketPath: path.join(runtime, 'tokenbroker', 'broker.sock'),
      start: { file: 'systemctl', args: ['--user', 'start', SYSTEMD_SOCKET_UNIT] },
    };
  }
  if (host.platform === 'darwin') {
    const dir = path.join(host.homedir, 'Library', 'LaunchAgents');
    return {
      manager: 'launchd',
      dir,
      marker: path.join(dir, LAUNCHD_PLIST),
      // launchd passes no socket: the agent's daemon uses its own default path.
      socketPath: defaultSocketPath(host),
      start: { file: 'launchctl', args: ['kickstart', `gui/${host.uid}/${LAUNCHD_LABEL}`] },
    };
  }
  return undefined;
}

/** The installed login service, when its unit (or plist) is present. */
export async function installedLoginService(host: LoginServiceHost): Promise<LoginServiceLocation | undefined> {
  const location = loginServiceLocation(host);
  if (location === undefined) return undefined;
  try {
    await access(location.marker);
    return location;
  } catch {
    return undefined;
  }
}

/** Starts the installed service; resolves with the command's exit code and output (127: no such program). */
export function startLoginService(location: LoginServiceLocation, env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(location.start.file, location.start.args, { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ code: 0, output: `${stdout}${stderr}`.trim() });
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      resolve({ code: code === 'ENOENT' ? 127 : typeof code === 'number' ? code : 1, output: (stderr === '' ? err.message : stderr).trim() });
    });
  });
}

/** A command line as a user would type it. */
export function startCommandText(location: LoginServiceLocation): string {
  return [location.start.file, ...location.start.args].join(' ');
}

/**
 * The socket a daemon started by a service manager uses: the platform default, because the
 * manager does not pass the shell's TOKENBROKER_HOME/TOKENBROKER_SOCKET.
 */
export function defaultSocketPath(host: LoginServiceHost): string {
  const env: NodeJS.ProcessEnv = { ...host.env };
  delete env.TOKENBROKER_HOME;
  delete env.TOKENBROKER_SOCKET;
  return resolvePaths({ env, platform: host.platform, homedir: host.homedir, uid: host.uid, username: host.username }).socketPath;
}

function absolute(value: string | undefined): string | undefined {
  return value !== undefined && value.startsWith('/') ? value : undefined;
}
