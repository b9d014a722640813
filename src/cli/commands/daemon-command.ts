import os from 'node:os';
import type { Command } from 'commander';
import { DaemonUnavailableError, TokenBrokerClient } from '../../client/client.js';
import { readDaemonLock } from '../../node/daemon-lock.js';
import { resolvePaths } from '../../protocol/paths.js';
import { ensureDaemon } from '../../client/autostart.js';
import type { CliContext } from '../context.js';
import { SilentExit, UsageError } from '../errors.js';
import { writeLine } from '../io.js';
import { isProcessAlive, waitForExit } from '../process-util.js';

/** Runs the daemon in this process; injected by the binary's entry (src/entry.ts). */
export type DaemonRunner = (options: { socket?: string | undefined }) => Promise<number>;

/** Longest drain the daemon may take (shutdownGraceSeconds is at most 300) plus its shutdown. */
const STOP_TIMEOUT_MS = 310_000;

export function registerDaemonCommand(program: Command, ctx: CliContext, runDaemon: DaemonRunner | undefined): void {
  const daemon = program
    .command('daemon')
    .description('run the broker in the foreground (service managers run this); `daemon stop|restart` manage a running one')
    .action(async () => {
      if (runDaemon === undefined) throw new UsageError('This build of the CLI cannot run the daemon.');
      const code = await runDaemon({ socket: ctx.globals().socket });
      if (code !== 0) throw new SilentExit(1);
    });
  daemon
    .command('stop')
    .description('stop the running daemon (in-flight requests finish first)')
    .action(async () => runDaemonStop({ restart: false }, ctx));
  daemon
    .command('restart')
    .description('stop the running daemon, then start it again the way it was started')
    .action(async () => runDaemonStop({ restart: true }, ctx));
}

interface Running {
  pid: number;
  socketPath: string;
  /** Socket-activated: the service manager starts it again on the next request. */
  activated: boolean;
}

/**
 * `daemon stop` / `daemon restart`: SIGTERM drains in-flight requests and exits; restart then
 * starts it again as it was started (socket activation: the next request; otherwise the same
 * background start the CLI's autostart uses, on the same socket).
 */
export async function runDaemonStop(options: { restart: boolean }, ctx: CliContext): Promise<void> {
  const { io } = ctx;
  const paths = resolvePaths({ env: io.env, platform: process.platform, homedir: os.homedir(), uid: process.getuid?.() ?? -1, username: os.userInfo().username, socketFlag: ctx.globals().socket });
  const running = await findRunning(paths.socketPath, paths.stateDir);
  if (running === undefined) {
    if (!options.restart) {
      writeLine(io.stderr, `tokenbroker: no daemon is running (socket ${paths.socketPath}).`);
      return;
    }
  } else {
    writeLine(io.stderr, `stopping the daemon (pid ${running.pid}, socket ${running.socketPath}): in-flight requests finish first`);
    try {
      process.kill(running.pid, 'SIGTERM');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    if (!(await waitForExit(running.pid, STOP_TIMEOUT_MS))) {
      throw new DaemonStopError(`the daemon (pid ${running.pid}) did not exit`, `Check its log; \`kill -9 ${running.pid}\` ends it at once (in-flight downloads are cut off).`);
    }
    writeLine(io.stderr, 'stopped');
  }
  const socketPath = running?.socketPath ?? paths.socketPath;
  if (!options.restart) {
    if (running?.activated === true) writeLine(io.stderr, 'note: the service manager starts it again on the next request; `tokenbroker service uninstall` (or `systemctl --user stop tokenbroker.socket`) stops that.');
    return;
  }
  const client = new TokenBrokerClient({ socketPath, onVersionMismatch: () => undefined });
  try {
    if (running?.activated !== true) {
      // An explicit restart starts it even where autostart is turned off.
      const env = { ...io.env };
      delete env.TOKENBROKER_NO_AUTOSTART;
      await ensureDaemon(new DaemonUnavailableError(socketPath, { reason: 'restarting' }), socketPath, { env });
    }
    // Under socket activation this request is what starts it.
    const status = await client.status();
    writeLine(io.stderr, `started (pid ${status.pid}, socket ${status.socket.path})`);
  } finally {
    await client.close();
  }
}

/** The daemon answering on the socket, else the one holding the state directory (on another socket, or not answering). */
async function findRunning(socketPath: string, stateDir: string): Promise<Running | undefined> {
  const client = new TokenBrokerClient({ socketPath, onVersionMismatch: () => undefined });
  try {
    const status = await client.status();
    return { pid: status.pid, socketPath: status.socket.path, activated: status.socket.activated };
  } catch (err) {
    if (!(err instanceof DaemonUnavailableError)) throw err;
  } finally {
    await client.close();
  }
  const lock = await readDaemonLock(stateDir);
  if (lock === undefined || !isProcessAlive(lock.pid)) return undefined;
  return { pid: lock.pid, socketPath: lock.socket, activated: false };
}

/** The daemon would not stop: exit 1 with a hint. */
class DaemonStopError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'DaemonStopError';
  }
}
