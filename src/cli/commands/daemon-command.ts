import type { Command } from 'commander';
import { SilentExit } from '../errors.js';
import type { CliContext } from '../context.js';

export function registerDaemonCommand(program: Command, ctx: CliContext): void {
  program
    .command('daemon')
    .description('run the broker in the foreground (service managers run this)')
    .action(async () => {
      // Loaded on demand: other commands should not pay for fastify's start-up.
      const { runDaemon } = await import('../../daemon/main.js');
      const code = await runDaemon({ socket: ctx.globals().socket });
      if (code !== 0) throw new SilentExit(1);
    });
}
