import { Command, CommanderError } from 'commander';
import { ExitCode } from '../protocol/errors.js';
import { VERSION } from '../protocol/version.js';
import { registerAppsCommand } from './commands/apps-command.js';
import { registerDaemonCommand, type DaemonRunner } from './commands/daemon-command.js';
import { registerSourcesCommand } from './commands/sources-command.js';
import { registerStatusCommand } from './commands/status-command.js';
import { registerFetchCommand } from './commands/fetch-command.js';
import { registerTokenCommand } from './commands/token-command.js';
import { registerServiceCommand } from './commands/service-command.js';
import { registerDiagnoseCommand } from './commands/diagnose-command.js';
import { registerClientTokenCommand } from './commands/client-token-command.js';
import { createContext, type CliContext, type GlobalOptions } from './context.js';
import { exitCodeFor, reportError, UsageError } from './errors.js';
import { isClosedPipe, processIO, terminalWidth, type IO } from './io.js';
import type { TokenBrokerClient } from '../client/client.js';

export interface MainOptions {
  io?: IO;
  /** Tests inject a client factory; the default talks to the real socket. */
  makeClient?: (socket: string | undefined) => TokenBrokerClient;
  /** Start a daemon when none answers (default: on for the real process, i.e. when no `io` is injected). */
  autostart?: boolean;
  /** Runs `tokenbroker daemon` (the binary's entry passes the real one). */
  runDaemon?: DaemonRunner;
}

export function buildProgram(ctx: CliContext, runDaemon?: DaemonRunner): Command {
  const program = new Command('tokenbroker')
    .description('Holds your Artifactory identity token and serves authenticated downloads to local programs.')
    .version(VERSION, '-V, --version')
    .option('--socket <path>', 'daemon socket path (default: TOKENBROKER_SOCKET, TOKENBROKER_HOME or the platform default)')
    .option('--debug', 'print stack traces on errors', false)
    .showHelpAfterError('(run with --help for usage)')
    // Wrap descriptions even in a narrow column (commander keeps them whole below 40 characters).
    .configureHelp({ minWidthToWrap: 12 })
    .configureOutput({
      writeOut: (text) => ctx.io.stdout.write(text),
      writeErr: (text) => ctx.io.stderr.write(text),
      // Help fits the terminal too (COLUMNS, else the terminal's width, else 80), piped or not.
      getOutHelpWidth: () => terminalWidth(ctx.io),
      getErrHelpWidth: () => terminalWidth(ctx.io),
      // Every CLI error starts "tokenbroker:", commander's usage errors included.
      outputError: (text, write) => write(text.replace(/^error: /, 'tokenbroker: ')),
    });
  // commander exits 1 on usage errors; the contract says 2, so errors are thrown and mapped here.
  program.exitOverride();
  registerDaemonCommand(program, ctx, runDaemon);
  registerStatusCommand(program, ctx);
  registerTokenCommand(program, ctx);
  registerFetchCommand(program, ctx);
  registerSourcesCommand(program, ctx);
  registerAppsCommand(program, ctx);
  registerServiceCommand(program, ctx);
  registerDiagnoseCommand(program, ctx);
  registerClientTokenCommand(program, ctx);
  applyExitOverride(program);
  return program;
}

/** Usage errors at any depth (e.g. `token set --bogus`) must reach main() to become exit 2. */
function applyExitOverride(command: Command): void {
  for (const sub of command.commands) {
    sub.exitOverride();
    applyExitOverride(sub);
  }
}

/** Runs the CLI and resolves with the exit code; never throws, never prints a stack unless --debug. */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? processIO();
  // The context reads global options lazily: commander fills them in while parsing.
  const holder: { program?: Command } = {};
  const globals = (): GlobalOptions => holder.program?.opts<GlobalOptions>() ?? {};
  const ctx = createContext(io, globals, options.makeClient, options.autostart ?? options.io === undefined);
  const program = buildProgram(ctx, options.runDaemon);
  holder.program = program;
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      // commander already printed the problem and the help pointer.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isClosedPipe(err)) return ExitCode.ok;
    reportError(err, io, globals().debug === true || argv.includes('--debug'));
    return exitCodeFor(err);
  } finally {
    await ctx.closeClient();
  }
}

export { UsageError };
