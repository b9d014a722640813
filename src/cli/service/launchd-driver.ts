import { mkdir } from 'node:fs/promises';
import { LAUNCHD_LABEL } from './unit-templates.js';
import { formatCommand, type CommandResult, type CommandRunner } from './command-runner.js';
import type { PlannedFile } from './service-files.js';
import { ServiceError } from './service-host.js';
import type { ActivateResult, ManagerDriver, ManagerState, PlannedCommand, RunLog } from './service-types.js';

/**
 * launchd per-user agent: `launchctl bootstrap gui/UID plist` loads it (RunAtLoad starts the
 * daemon), `bootout gui/UID/LABEL` stops and unloads it. Loading an already loaded agent fails
 * ("Bootstrap failed: 5"), so a changed plist is booted out first.
 */
export function launchdDriver(run: CommandRunner, options: { uid: number; plistPath: string; logDir: string }): ManagerDriver {
  const domain = `gui/${options.uid}`;
  const target = `${domain}/${LAUNCHD_LABEL}`;
  const bootstrapArgs = ['bootstrap', domain, options.plistPath];
  const bootoutArgs = ['bootout', target];

  const check = (result: CommandResult, args: readonly string[]): void => {
    if (result.code !== 0) {
      throw new ServiceError(
        `\`${formatCommand('launchctl', args)}\` failed (exit ${result.code}): ${result.stderr.trim().split('\n')[0] || 'no output'}`,
        `Check \`launchctl print ${target}\` and the logs in ${options.logDir}.`,
      );
    }
  };
  const loaded = async (): Promise<CommandResult> => run('launchctl', ['print', target]);

  return {
    kind: 'launchd',
    plannedInstall(): PlannedCommand[] {
      return [
        { file: 'mkdir', args: ['-p', options.logDir] },
        { file: 'launchctl', args: bootoutArgs, when: 'the agent is loaded and the plist changed' },
        { file: 'launchctl', args: bootstrapArgs, when: 'the agent is not loaded (yet)' },
      ];
    },
    plannedUninstall(): PlannedCommand[] {
      return [{ file: 'launchctl', args: bootoutArgs, when: 'the agent is loaded' }];
    },
    async preflight(): Promise<void> {
      const result = await run('launchctl', ['version']);
      if (result.code === 127) throw new ServiceError('launchctl not found', 'tokenbroker installs a launchd agent on macOS only.');
    },
    async activate(files: PlannedFile[], log: RunLog): Promise<ActivateResult> {
      // launchd does not create log directories; a missing one makes the agent fail to start.
      await mkdir(options.logDir, { recursive: true, mode: 0o700 });
      const changed = files.some((file) => file.change !== 'unchanged');
      const isLoaded = (await loaded()).code === 0;
      if (isLoaded && !changed) return { notes: [] };
      if (isLoaded) check(await log.run('launchctl', bootoutArgs), bootoutArgs);
      check(await log.run('launchctl', bootstrapArgs), bootstrapArgs);
      return { notes: [] };
    },
    async deactivate(removeFiles: () => Promise<void>, log: RunLog): Promise<string[]> {
      if ((await loaded()).code === 0) check(await log.run('launchctl', bootoutArgs), bootoutArgs);
      await removeFiles();
      return [];
    },
    async state(): Promise<ManagerState> {
      const printed = await loaded();
      if (printed.code !== 0) return { reachable: true, enabledState: 'not-loaded', enabled: false, activeState: 'not-running', active: false };
      // `launchctl print` is for humans, but "state = running" and "pid = N" have been stable for years.
      const running = /^\s*state = running\s*$/m.test(printed.stdout);
      const pid = /^\s*pid = (\d+)\s*$/m.exec(printed.stdout)?.[1];
      return {
        reachable: true,
        enabledState: 'loaded',
        enabled: true,
        activeState: running ? 'running' : 'not-running',
        active: running,
        ...(pid === undefined ? {} : { pid: Number(pid) }),
      };
    },
  };
}
