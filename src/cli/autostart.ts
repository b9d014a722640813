/**
 * Autostart (DESIGN section 7): when no daemon answers and no service is installed, a CLI command
 * starts one in the background and retries once. Five CLIs racing start exactly one daemon: a
 * spawn lock next to the socket lets one spawn while the others wait for the socket to answer.
 */
import { pollUntil } from '../protocol/poll-until.js';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { DaemonUnavailableError } from '../client/client.js';
import { probeSocket } from '../node/socket-probe.js';
import { ensurePrivateDir } from '../node/private-dir.js';
import { DAEMON_NODE_FLAGS } from '../protocol/daemon-flags.js';
import { isWindowsPipe, resolvePaths } from '../protocol/paths.js';
import { installedService } from './service/service-manager.js';
import type { ServiceHost } from './service/service-host.js';
import { acquireSpawnLock, SpawnLockTimeout } from './spawn-lock.js';

/** How long a CLI waits for an autostarted daemon to answer (start-up is ~0.3 s; a busy machine is slower). */
export const AUTOSTART_TIMEOUT_MS = 10_000;
/** The autostarted daemon's stdout/stderr (JSON log lines, redacted) in the state dir. */
export const AUTOSTART_LOG = 'daemon.log';
const LOG_ROTATE_BYTES = 1024 * 1024;

/** `TOKENBROKER_NO_AUTOSTART=1` (any value but empty or "0") turns autostart off. */
export function autostartDisabled(env: NodeJS.ProcessEnv): boolean {
  const value = env.TOKENBROKER_NO_AUTOSTART;
  return value !== undefined && value !== '' && value !== '0';
}

/** Only a missing socket or one nobody listens on means "no daemon"; a timeout or EACCES does not. */
export function isStartable(err: unknown): err is DaemonUnavailableError {
  if (!(err instanceof DaemonUnavailableError)) return false;
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** The daemon could not be started, or should be started another way: exit 3 with this hint. */
export class AutostartError extends DaemonUnavailableError {
  constructor(socketPath: string, reason: string, hint: string, cause?: unknown) {
    super(socketPath, { reason, cause });
    this.name = 'AutostartError';
    Object.defineProperty(this, 'hint', { value: hint, enumerable: true });
  }
}

export interface AutostartOptions {
  /** The socket the client talks to (from --socket, TOKENBROKER_SOCKET, TOKENBROKER_HOME or the default). */
  socketPath: string;
  /** The CLI's environment; the daemon inherits it. */
  env: NodeJS.ProcessEnv;
  /** The node binary, entry script and service layout of this install. */
  host: ServiceHost;
  timeoutMs?: number;
  /** Told once when this process started the daemon (e.g. a line on a terminal). */
  onStarted?: (pid: number, logFile: string) => void;
}

/**
 * Makes a daemon answer on `socketPath`, or throws a DaemonUnavailableError that says why not.
 * `original` is the error that brought us here; it is rethrown as is when autostart is off.
 */
export async function ensureDaemon(original: DaemonUnavailableError, options: AutostartOptions): Promise<void> {
  const { socketPath, env, host } = options;
  if (autostartDisabled(env)) throw original;
  const service = await installedService(host);
  if (service !== undefined && service.socketPath === socketPath) {
    throw new AutostartError(
      socketPath,
      (original.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' ? 'no socket' : 'nobody is listening',
      `The tokenbroker service is installed (${service.manager}) but not running: start it with \`${service.startCommand}\`${service.manager === 'systemd' ? ' (where no user systemd runs, run `tokenbroker daemon` instead)' : ''}.`,
      original,
    );
  }

  const paths = resolvePaths({ env, platform: host.platform, homedir: host.homedir, uid: host.uid, username: host.username });
  const lockDir = isWindowsPipe(socketPath) ? paths.stateDir : path.dirname(socketPath);
  // The same checks the daemon makes: a directory we own, 0700, not a symlink.
  await ensurePrivateDir(lockDir, isWindowsPipe(socketPath) ? 'state' : 'socket');
  const lockPath = isWindowsPipe(socketPath) ? path.join(lockDir, 'spawn.lock') : `${socketPath}.lock`;
  const deadline = Date.now() + (options.timeoutMs ?? AUTOSTART_TIMEOUT_MS);
  const answers = async (): Promise<boolean> => (await probeSocket(socketPath)).kind === 'daemon';

  let lock;
  try {
    lock = await acquireSpawnLock(lockPath, { deadline, isDone: answers });
  } catch (err) {
    if (!(err instanceof SpawnLockTimeout)) throw err;
    throw new AutostartError(
      socketPath,
      'another tokenbroker command is still starting the daemon',
      `Wait a moment and retry. If it persists, remove ${lockPath}${err.holder === undefined ? '' : ` (held by pid ${err.holder})`}.`,
      err,
    );
  }
  if (lock === undefined) return;
  try {
    // Someone may have finished starting it between our failed request and the lock.
    if (await answers()) return;
    const started = await spawnDaemon(options, paths.stateDir);
    const outcome = await waitUntilAnswering(socketPath, started.exited, deadline);
    if (outcome.kind === 'ready') {
      options.onStarted?.(started.pid, started.logFile);
      return;
    }
    const detail = await lastErrorLine(started.logFile);
    throw new AutostartError(
      socketPath,
      outcome.kind === 'exited' ? `the daemon started for this command exited with code ${outcome.code ?? 'unknown'}${detail === undefined ? '' : `: ${detail}`}` : `the daemon started for this command did not answer within ${Math.round((options.timeoutMs ?? AUTOSTART_TIMEOUT_MS) / 1000)} s`,
      `See its log: ${started.logFile}. Or run \`tokenbroker daemon\` in a terminal to see why.`,
    );
  } finally {
    await lock.release();
  }
}

interface Started {
  pid: number;
  logFile: string;
  exited: Promise<number | null>;
}

async function spawnDaemon(options: AutostartOptions, stateDir: string): Promise<Started> {
  const { host, socketPath } = options;
  await ensurePrivateDir(stateDir, 'state');
  const logFile = path.join(stateDir, AUTOSTART_LOG);
  await rotateLog(logFile);
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const [command, args] = withoutCoreDumps(host.platform, host.node, [...DAEMON_NODE_FLAGS, host.entry, '--socket', socketPath, 'daemon']);
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: daemonEnv(options.env),
      // The daemon outlives this shell: it must not keep the shell's working directory busy.
      cwd: host.platform === 'win32' ? host.homedir : '/',
      windowsHide: true,
    });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(null));
    });
    child.unref();
    if (child.pid === undefined) throw new AutostartError(socketPath, `cannot run ${host.node}`, 'Check that node is installed and runnable.');
    return { pid: child.pid, logFile, exited };
  } finally {
    closeSync(fd);
  }
}

/**
 * A core file of the daemon holds the token; the service units set LimitCORE=0, and an autostarted
 * daemon must not inherit the shell's `ulimit -c unlimited`. Node cannot call setrlimit, so a
 * POSIX shell sets the limit and then `exec`s node in its place (same pid, no extra process).
 * Windows writes no core files of this kind.
 */
export function withoutCoreDumps(platform: NodeJS.Platform, command: string, args: readonly string[]): [string, string[]] {
  if (platform === 'win32') return [command, [...args]];
  return ['/bin/sh', ['-c', 'ulimit -c 0 && exec "$@"', 'tokenbroker', command, ...args]];
}

/** The CLI's environment, with relative TOKENBROKER_* paths made absolute (the daemon runs in /). */
function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...env };
  for (const key of ['TOKENBROKER_HOME', 'TOKENBROKER_CONFIG'] as const) {
    const value = result[key];
    if (value !== undefined && value !== '') result[key] = path.resolve(value);
  }
  // Socket activation variables belong to whoever started this CLI, never to our child.
  delete result.LISTEN_FDS;
  delete result.LISTEN_PID;
  delete result.LISTEN_FDNAMES;
  return result;
}

type Outcome = { kind: 'ready' } | { kind: 'exited'; code: number | null } | { kind: 'timeout' };

async function waitUntilAnswering(socketPath: string, exited: Promise<number | null>, deadline: number): Promise<Outcome> {
  let exit: { code: number | null } | undefined;
  void exited.then((code) => (exit = { code }));
  const outcome = await pollUntil<Outcome>(async () => {
    if ((await probeSocket(socketPath, 1_000)).kind === 'daemon') return { kind: 'ready' };
    return exit === undefined ? undefined : { kind: 'exited', code: exit.code };
  }, { deadline, intervalMs: 30 });
  return outcome ?? { kind: 'timeout' };
}

async function rotateLog(logFile: string): Promise<void> {
  try {
    if ((await stat(logFile)).size > LOG_ROTATE_BYTES) await rename(logFile, `${logFile}.1`);
  } catch {
    // No log yet.
  }
}

/** The daemon prints start-up failures as "tokenbroker: message" (no stack): the last one explains the exit. */
async function lastErrorLine(logFile: string): Promise<string | undefined> {
  try {
    const handle = await open(logFile, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, 4096);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      const lines = buffer.toString('utf8').split('\n');
      return lines
        .reverse()
        .find((line) => line.startsWith('tokenbroker: '))
        ?.slice('tokenbroker: '.length);
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}
