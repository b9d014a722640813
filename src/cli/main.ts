import { Command, CommanderError } from 'commander';
import { ExitCode } from '../protocol/errors.js';
import { VERSION } from '../protocol/version.js';
import type { DaemonRunner } from './commands/daemon-command.js';
import type { CliContext, GlobalOptions } from './context.js';
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

type Register = (program: Command, ctx: CliContext, runDaemon: DaemonRunner | undefined) => void;

/**
 * Each top-level command and how to load its module, in help order. A run loads only the command
 * it invokes (issue 23: every command paid for all of them, the client, undici and zod before);
 * help, `help <cmd>`, an unknown command or none at all load every one, so commander's help,
 * suggestions and errors are what they were.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Register>>> = {
  daemon: async () => (await import('./commands/daemon-command.js')).registerDaemonCommand,
  status: async () => (await import('./commands/status-command.js')).registerStatusCommand,
  token: async () => (await import('./commands/token-command.js')).registerTokenCommand,
  fetch: async () => (await import('./commands/fetch-command.js')).registerFetchCommand,
  sources: async () => (await import('./commands/sources-command.js')).registerSourcesCommand,
  apps: async () => (await import('./commands/apps-command.js')).registerAppsCommand,
  service: async () => (await import('./commands/service-command.js')).registerServiceCommand,
  diagnose: async () => (await import('./commands/diagnose-command.js')).registerDiagnoseCommand,
  'client-token': async () => (await import('./commands/client-token-command.js')).registerClientTokenCommand,
};

/** Global options that take a value (their value is not the command name). */
const VALUE_OPTIONS = new Set(['--socket']);

/**
 * The commands a run needs: the one named (the first operand after the global options), none for a
 * bare `--version`, all otherwise. `--` ends the options as commander has it.
 */
export function commandsFor(argv: readonly string[]): string[] {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return Object.keys(COMMANDS);
    if (VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith('-')) continue;
    return Object.hasOwn(COMMANDS, arg) ? [arg] : Object.keys(COMMANDS);
  }
  const help = argv.some((arg) => arg === '-h' || arg === '--help');
  return !help && argv.some((arg) => arg === '-V' || arg === '--version') ? [] : Object.keys(COMMANDS);
}

/** The program with the given commands (default: all) registered; their modules load here. */
export async function buildProgram(ctx: CliContext, runDaemon?: DaemonRunner, names: readonly string[] = Object.keys(COMMANDS)): Promise<Command> {
  const registers = await Promise.all(names.map((name) => (COMMANDS[name] as () => Promise<Register>)()));
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
  for (const register of registers) register(program, ctx, runDaemon);
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
  const names = commandsFor(argv);
  // The context (and with it the client library) loads only when a command may run.
  const contextModule = names.length === 0 ? undefined : await import('./context.js');
  const io = options.io ?? processIO();
  // The context reads global options lazily: commander fills them in while parsing.
  const holder: { program?: Command } = {};
  const globals = (): GlobalOptions => holder.program?.opts<GlobalOptions>() ?? {};
  const ctx = contextModule?.createContext(io, globals, options.makeClient, options.autostart ?? options.io === undefined) ?? versionOnlyContext(io, globals);
  try {
    const program = await buildProgram(ctx, options.runDaemon, names);
    holder.program = program;
    await program.parseAsync(argv as string[], { from: 'user' });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      // commander already printed the problem and the help pointer.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isClosedPipe(err)) return ExitCode.ok;
    const { exitCodeFor, reportError } = await import('./errors.js');
    reportError(err, io, globals().debug === true || argv.includes('--debug'));
    return exitCodeFor(err);
  } finally {
    await ctx.closeClient();
  }
}

/** `--version` alone registers no command, so nothing asks for a client. */
function versionOnlyContext(io: IO, globals: () => GlobalOptions): CliContext {
  return {
    io,
    globals,
    client: () => {
      throw new Error('no command is registered that could use a client');
    },
    closeClient: async () => undefined,
  };
}
