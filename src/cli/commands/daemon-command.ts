import type { Command } from 'commander';
import { SilentExit, UsageError } from '../errors.js';
import type { CliContext } from '../context.js';

/** Runs the daemon in this process; injected by the binary's entry (src/entry.ts). */
export type DaemonRunner = (options: { socket?: string | undefined }) => Promise<number>;

export function registerDaemonCommand(program: Command, ctx: CliContext, runDaemon: DaemonRunner | undefined): void {
  program
    .command('daemon')
    .description('run the broker in the foreground (service managers run this)')
    .action(async () => {
      if (runDaemon === undefined) throw new UsageError('This build of the CLI cannot run the daemon.');
      const code = await runDaemon({ socket: ctx.globals().socket });
      if (code !== 0) throw new SilentExit(1);
    });
}
