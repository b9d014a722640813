/**
 * Autostart (DESIGN sections 2 and 7): when no daemon answers, a client with `autostart` starts
 * one and sends its request again, once. Racing clients (five CLIs, or an app and a CLI) start
 * exactly one: a spawn lock next to the socket lets one spawn while the others wait for the socket
 * to answer. When the login service is installed for this socket, the service is started instead
 * (`systemctl --user start`, `launchctl kickstart`), never a second kind of daemon; when the
 * state directory's lock names a live daemon on another socket, autostart says so.
 */
import os from 'node:os';
import path from 'node:path';
import { isWindowsPipe, resolvePaths } from '../protocol/paths.js';
import { pollUntil } from '../protocol/poll-until.js';
import { readDaemonLock } from '../node/daemon-lock.js';
import { lastErrorLine, spawnDaemon, type DaemonCommand } from '../node/daemon-spawn.js';
import { installedLoginService, startCommandText, startLoginService, type LoginServiceHost } from '../node/login-service.js';
import { cliEntry, packageRoot } from '../node/package-root.js';
import { ensurePrivateDir } from '../node/private-dir.js';
import { probeSocket } from '../node/socket-probe.js';
import { acquireSpawnLock, SpawnLockTimeout } from '../node/spawn-lock.js';
import { AutostartError, DaemonNotAnsweringError, DaemonUnavailableError } from './client-errors.js';

/** How long a client waits for a started daemon to answer (start-up is ~0.3 s; a busy machine is slower). */
export const AUTOSTART_TIMEOUT_MS = 10_000;

/** `autostart` of TokenBrokerClientOptions, when more than `true` is needed. */
export interface AutostartOptions {
  /**
   * The node binary that runs the daemon. Default: `process.execPath`; inside Electron (where that
   * is the app's own binary) the same binary with `ELECTRON_RUN_AS_NODE=1`. Pass a real node when
   * the app's fuses disable run-as-node.
   */
  nodePath?: string;
  /** The tokenbroker entry script (`bin/tokenbroker.js`). Default: the one of this library's package. */
  entry?: string;
  /** The daemon's environment (it inherits the paths it finds there). Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the started daemon to answer. Default 10 s. */
  timeoutMs?: number;
  /** Told once when this client started the daemon (e.g. to show a line). */
  onStarted?: (started: DaemonStarted) => void;
}

export interface DaemonStarted {
  how: 'spawned' | 'service';
  /** The spawned daemon's pid. */
  pid?: number;
  /** Where the spawned daemon logs (`<state>/daemon.log`). */
  logFile?: string;
  /** The service manager command that was run. */
  command?: string;
}

/** `TOKENBROKER_NO_AUTOSTART=1` (any value but empty or "0") turns the CLI's autostart off. */
export function autostartDisabled(env: NodeJS.ProcessEnv): boolean {
  const value = env.TOKENBROKER_NO_AUTOSTART;
  return value !== undefined && value !== '' && value !== '0';
}

/** Only a missing socket or one nobody listens on means "no daemon"; a timeout, EACCES or an impostor does not. */
export function isStartable(err: unknown): err is DaemonUnavailableError {
  if (!(err instanceof DaemonUnavailableError) || err.code !== 'DAEMON_UNAVAILABLE') return false;
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** The daemon command: Electron runs itself as node, plain Node runs its own binary. */
export function daemonCommand(options: Pick<AutostartOptions, 'nodePath' | 'entry'>): DaemonCommand {
  const entry = options.entry ?? cliEntry(packageRoot());
  if (options.nodePath !== undefined) return { node: options.nodePath, entry };
  const inElectron = typeof process.versions.electron === 'string';
  return { node: process.execPath, entry, ...(inElectron ? { extraEnv: { ELECTRON_RUN_AS_NODE: '1' } } : {}) };
}

/**
 * Makes a daemon answer on `socketPath`, or throws a DaemonUnavailableError that says why not.
 * `original` is the error that brought us here.
 */
export async function ensureDaemon(original: DaemonUnavailableError, socketPath: string, options: AutostartOptions = {}): Promise<void> {
  const env = options.env ?? process.env;
  const host: LoginServiceHost = { platform: process.platform, env, homedir: os.homedir(), uid: process.getuid?.() ?? -1, username: os.userInfo().username };
  const timeoutMs = options.timeoutMs ?? AUTOSTART_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const paths = resolvePaths(host);

  // One daemon per state directory: a live one on another socket is named, not doubled.
  const lock = await readDaemonLock(paths.stateDir);
  if (lock !== undefined && lock.socket !== '' && lock.socket !== socketPath) {
    throw new AutostartError(
      socketPath,
      `a daemon (pid ${lock.pid}) already runs for the state directory ${paths.stateDir}, on ${lock.socket}`,
      `Use its socket (--socket ${lock.socket}, or TOKENBROKER_SOCKET=${lock.socket}), or stop it first (\`tokenbroker daemon stop\`).`,
      original,
    );
  }
  if (lock !== undefined) {
    // Ours, alive, and not answering here: it re-creates a lost socket within seconds.
    const outcome = await waitUntilAnswering(socketPath, undefined, deadline);
    if (outcome.kind === 'ready') return;
    throw new DaemonNotAnsweringError(socketPath, lock.pid, timeoutMs, original);
  }

  const service = await installedLoginService(host);
  if (service !== undefined && service.socketPath === socketPath) {
    const command = startCommandText(service);
    const started = await startLoginService(service, env);
    if (started.code !== 0) {
      throw new AutostartError(
        socketPath,
        `the tokenbroker service is installed (${service.manager}) but \`${command}\` failed${started.output === '' ? '' : `: ${started.output.split('\n')[0]}`}`,
        service.manager === 'systemd' ? 'Where no user systemd runs (a container, ssh without lingering), run `tokenbroker daemon` instead.' : `Check the agent with \`launchctl print gui/${host.uid}\`.`,
        original,
      );
    }
    const outcome = await waitUntilAnswering(socketPath, undefined, deadline);
    if (outcome.kind !== 'ready') {
      throw new AutostartError(socketPath, `the tokenbroker service was started (\`${command}\`) but did not answer within ${Math.round(timeoutMs / 1000)} s`, service.manager === 'systemd' ? 'See `journalctl --user -u tokenbroker`.' : 'See ~/Library/Logs/tokenbroker/.');
    }
    options.onStarted?.({ how: 'service', command });
    return;
  }

  const lockDir = isWindowsPipe(socketPath) ? paths.stateDir : path.dirname(socketPath);
  // The same checks the daemon makes: a directory we own, 0700, not a symlink.
  await ensurePrivateDir(lockDir, isWindowsPipe(socketPath) ? 'state' : 'socket');
  const lockPath = isWindowsPipe(socketPath) ? path.join(lockDir, 'spawn.lock') : `${socketPath}.lock`;
  const answers = async (): Promise<boolean> => (await probeSocket(socketPath)).kind === 'daemon';
  let spawnLock;
  try {
    spawnLock = await acquireSpawnLock(lockPath, { deadline, isDone: answers });
  } catch (err) {
    if (!(err instanceof SpawnLockTimeout)) throw err;
    throw new AutostartError(
      socketPath,
      'another program is still starting the daemon',
      `Wait a moment and retry. If it persists, remove ${lockPath}${err.holder === undefined ? '' : ` (held by pid ${err.holder})`}.`,
      err,
    );
  }
  if (spawnLock === undefined) return;
  try {
    // Someone may have finished starting it between our failed request and the lock.
    if (await answers()) return;
    const started = await spawnDaemon({ command: daemonCommand(options), socketPath, stateDir: paths.stateDir, env, platform: host.platform, homedir: host.homedir });
    if (started === undefined) throw new AutostartError(socketPath, `cannot run ${daemonCommand(options).node}`, 'Check that node is installed and runnable, or pass `nodePath`.');
    const outcome = await waitUntilAnswering(socketPath, started.exited, deadline);
    if (outcome.kind === 'ready') {
      options.onStarted?.({ how: 'spawned', pid: started.pid, logFile: started.logFile });
      return;
    }
    const detail = await lastErrorLine(started.logFile);
    throw new AutostartError(
      socketPath,
      outcome.kind === 'exited' ? `the daemon started for this command exited with code ${outcome.code ?? 'unknown'}${detail === undefined ? '' : `: ${detail}`}` : `the daemon started for this command did not answer within ${Math.round(timeoutMs / 1000)} s`,
      `See its log: ${started.logFile}. Or run \`tokenbroker daemon\` in a terminal to see why.`,
    );
  } finally {
    await spawnLock.release();
  }
}

type Outcome = { kind: 'ready' } | { kind: 'exited'; code: number | null } | { kind: 'timeout' };

async function waitUntilAnswering(socketPath: string, exited: Promise<number | null> | undefined, deadline: number): Promise<Outcome> {
  let exit: { code: number | null } | undefined;
  void exited?.then((code) => (exit = { code }));
  const outcome = await pollUntil<Outcome>(async () => {
    if ((await probeSocket(socketPath, 1_000)).kind === 'daemon') return { kind: 'ready' };
    return exit === undefined ? undefined : { kind: 'exited', code: exit.code };
  }, { deadline, intervalMs: 30 });
  return outcome ?? { kind: 'timeout' };
}
