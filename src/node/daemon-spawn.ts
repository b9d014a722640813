/**
 * Starting a background daemon (autostart): the installed entry with the daemon's node flags,
 * core files off, stdout/stderr into `daemon.log` in the state directory, detached from the
 * program that started it.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { DAEMON_NODE_FLAGS } from '../protocol/daemon-flags.js';
import { ensurePrivateDir } from './private-dir.js';

/** The autostarted daemon's stdout/stderr (JSON log lines, redacted) in the state dir. */
export const AUTOSTART_LOG = 'daemon.log';
const LOG_ROTATE_BYTES = 1024 * 1024;

export interface DaemonCommand {
  /** The node binary (in Electron: its own binary with ELECTRON_RUN_AS_NODE=1 in `extraEnv`). */
  node: string;
  /** `bin/tokenbroker.js` of the install. */
  entry: string;
  /** Added to the environment for the node binary only (e.g. ELECTRON_RUN_AS_NODE). */
  extraEnv?: NodeJS.ProcessEnv;
}

export interface SpawnDaemonOptions {
  command: DaemonCommand;
  socketPath: string;
  stateDir: string;
  /** The starting program's environment; the daemon inherits it. */
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  homedir: string;
}

export interface SpawnedDaemon {
  pid: number;
  logFile: string;
  /** Resolves with the exit code if the daemon exits (null: killed, or could not run). */
  exited: Promise<number | null>;
}

export async function spawnDaemon(options: SpawnDaemonOptions): Promise<SpawnedDaemon | undefined> {
  const { command, platform } = options;
  await ensurePrivateDir(options.stateDir, 'state');
  const logFile = path.join(options.stateDir, AUTOSTART_LOG);
  await rotateLog(logFile);
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const [file, args] = withoutCoreDumps(platform, command.node, [...DAEMON_NODE_FLAGS, command.entry, '--socket', options.socketPath, 'daemon']);
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...daemonEnv(options.env), ...command.extraEnv },
      // The daemon outlives its starter: it must not keep the starter's working directory busy.
      cwd: platform === 'win32' ? options.homedir : '/',
      windowsHide: true,
    });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(null));
    });
    child.unref();
    return child.pid === undefined ? undefined : { pid: child.pid, logFile, exited };
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

/** The starter's environment, with relative TOKENBROKER_* paths made absolute (the daemon runs in /). */
function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...env };
  for (const key of ['TOKENBROKER_HOME', 'TOKENBROKER_CONFIG'] as const) {
    const value = result[key];
    if (value !== undefined && value !== '') result[key] = path.resolve(value);
  }
  // Socket activation variables belong to whoever started the starter, never to our child.
  delete result.LISTEN_FDS;
  delete result.LISTEN_PID;
  delete result.LISTEN_FDNAMES;
  // Electron's switch is for the node binary we choose, not inherited by accident from a parent.
  delete result.ELECTRON_RUN_AS_NODE;
  return result;
}

async function rotateLog(logFile: string): Promise<void> {
  try {
    if ((await stat(logFile)).size > LOG_ROTATE_BYTES) await rename(logFile, `${logFile}.1`);
  } catch {
    // No log yet.
  }
}

/** The daemon prints start-up failures as "tokenbroker: message" (no stack): the last one explains the exit. */
export async function lastErrorLine(logFile: string): Promise<string | undefined> {
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
