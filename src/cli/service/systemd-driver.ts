import { SYSTEMD_SERVICE_UNIT, SYSTEMD_SOCKET_UNIT } from './unit-templates.js';
import { formatCommand, type CommandResult, type CommandRunner } from './command-runner.js';
import type { PlannedFile } from './service-files.js';
import { ServiceError } from './service-host.js';
import type { ActivateResult, ManagerDriver, ManagerState, PlannedCommand, RunLog } from './service-types.js';

const USER = '--user';

/**
 * systemctl's words when no user manager can be reached: no login session with systemd (SSH
 * without lingering, containers, CI), or no D-Bus session. Unit-file operations (enable, disable,
 * is-enabled) still work then: systemctl edits ~/.config/systemd/user directly.
 */
// The second line: a D-Bus session exists but nothing provides systemd on it (containers, CI,
// desktops without systemd): the bus tries to activate org.freedesktop.systemd1 and fails.
const NO_USER_MANAGER =
  /Failed to connect to bus|No medium found|DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR (is )?not (set|defined)|Failed to connect to user scope bus|org\.freedesktop\.systemd1 (exited|was not provided)|ServiceUnknown|Failed to retrieve unit state/i;

export function isNoUserManager(result: CommandResult): boolean {
  return result.code !== 0 && NO_USER_MANAGER.test(result.stderr);
}

export function noUserManagerMessage(result: CommandResult): string {
  return `no user systemd instance is running in this session (systemctl --user: ${firstLine(result.stderr)})`;
}

export const NO_USER_MANAGER_HINT =
  'The units take effect at your next graphical or SSH login with systemd; on a server, `loginctl enable-linger $USER` keeps a user manager running. Until then, run `tokenbroker daemon` yourself.';

export function systemdDriver(run: CommandRunner): ManagerDriver {
  const socket = SYSTEMD_SOCKET_UNIT;
  const service = SYSTEMD_SERVICE_UNIT;

  const check = (result: CommandResult, file: string, args: readonly string[]): CommandResult => {
    if (result.code !== 0) {
      throw new ServiceError(
        `\`${formatCommand(file, args)}\` failed (exit ${result.code}): ${firstLine(result.stderr) || firstLine(result.stdout) || 'no output'}`,
        `Check \`systemctl --user status ${socket} ${service}\` and \`journalctl --user -u tokenbroker\`.`,
      );
    }
    return result;
  };

  return {
    kind: 'systemd',
    plannedInstall(files: PlannedFile[]): PlannedCommand[] {
      const planned: PlannedCommand[] = [
        { file: 'systemctl', args: [USER, 'daemon-reload'] },
        { file: 'systemctl', args: [USER, 'enable', '--now', socket] },
      ];
      if (files.some((file) => file.change === 'update')) {
        planned.push({ file: 'systemctl', args: [USER, 'try-restart', service], when: 'the daemon is running: it picks up the new unit' });
      }
      return planned;
    },
    plannedUninstall(): PlannedCommand[] {
      return [
        { file: 'systemctl', args: [USER, 'disable', '--now', socket, service] },
        { file: 'systemctl', args: [USER, 'daemon-reload'] },
      ];
    },
    async preflight(): Promise<void> {
      const result = await run('systemctl', ['--version']);
      if (result.code === 127) {
        throw new ServiceError(
          'systemctl not found: this system does not use systemd',
          'Without a service manager, CLI commands start the daemon on demand; or run `tokenbroker daemon` from your session start-up.',
        );
      }
    },
    async activate(files: PlannedFile[], log: RunLog): Promise<ActivateResult> {
      const reload = await log.run('systemctl', [USER, 'daemon-reload']);
      if (isNoUserManager(reload)) {
        // Still enable it (a symlink in sockets.target.wants): the next login starts the socket.
        const enableArgs = [USER, 'enable', socket];
        check(await log.run('systemctl', enableArgs), 'systemctl', enableArgs);
        return { notes: [`${capitalise(noUserManagerMessage(reload))}. The units are installed and enabled but not started. ${NO_USER_MANAGER_HINT}`] };
      }
      check(reload, 'systemctl', [USER, 'daemon-reload']);
      const enableArgs = [USER, 'enable', '--now', socket];
      check(await log.run('systemctl', enableArgs), 'systemctl', enableArgs);
      if (files.some((file) => file.change === 'update')) {
        const restartArgs = [USER, 'try-restart', service];
        check(await log.run('systemctl', restartArgs), 'systemctl', restartArgs);
      }
      return { notes: [] };
    },
    async deactivate(removeFiles: () => Promise<void>, log: RunLog): Promise<string[]> {
      const disableArgs = [USER, 'disable', '--now', socket, service];
      const disabled = await log.run('systemctl', disableArgs);
      if (isNoUserManager(disabled)) {
        // `disable` alone works on the unit files without a manager.
        const offlineArgs = [USER, 'disable', socket, service];
        check(await log.run('systemctl', offlineArgs), 'systemctl', offlineArgs);
        await removeFiles();
        // Unreachable from this shell is not the same as not running: a manager of another session may still run it.
        return [`${capitalise(noUserManagerMessage(disabled))}. The units are disabled and removed; if a user systemd of another session still runs the service, it stops there at the next \`systemctl --user daemon-reload\` or login (or run \`systemctl --user stop tokenbroker.socket tokenbroker.service\` in that session).`];
      }
      check(disabled, 'systemctl', disableArgs);
      await removeFiles();
      const reloadArgs = [USER, 'daemon-reload'];
      check(await log.run('systemctl', reloadArgs), 'systemctl', reloadArgs);
      return [];
    },
    async state(): Promise<ManagerState> {
      const enabled = await run('systemctl', [USER, 'is-enabled', socket]);
      // is-enabled prints the state and exits non-zero for anything but enabled-like states.
      const enabledState = firstLine(enabled.stdout) || (/No such file|not found|does not exist/i.test(enabled.stderr) ? 'not-found' : 'unknown');
      const active = await run('systemctl', [USER, 'is-active', socket, service]);
      if (isNoUserManager(active)) {
        return { reachable: false, enabledState, enabled: enabledState === 'enabled', activeState: 'unknown', active: null, message: noUserManagerMessage(active) };
      }
      const [socketState = '', serviceState = ''] = active.stdout.split('\n').map((line) => line.trim());
      // is-active prints one state per unit; without them the manager did not answer whatever it said.
      if (socketState === '' || serviceState === '') {
        return { reachable: false, enabledState, enabled: enabledState === 'enabled', activeState: 'unknown', active: null, message: noUserManagerMessage(active) };
      }
      return {
        reachable: true,
        enabledState,
        enabled: enabledState === 'enabled',
        activeState: `socket ${socketState}, daemon ${serviceState}`,
        active: socketState === 'active',
      };
    },
  };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
