import { link, lstat, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Server as NetServer } from 'node:net';
import path from 'node:path';
import { isWindowsPipe, MAX_SOCKET_PATH_BYTES } from '../protocol/paths.js';
import { ensurePrivateDir } from '../node/private-dir.js';
import { probeSocket, PROBE_TIMEOUT_MS, type ProbeResult } from '../node/socket-probe.js';

export { probeSocket, PROBE_TIMEOUT_MS, type ProbeResult };

/** The daemon cannot take its socket; the message is for the user, one line, and exit is 1. */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

export interface SocketHandle {
  socketPath: string;
  activated: boolean;
  /** The socket file's inode when we created it (undefined for an inherited fd or a named pipe). */
  ino?: number;
  /** Removes the socket file if it is still the one we created (never under socket activation). */
  removeSocket(): Promise<void>;
}

/** `LISTEN_FDS`/`LISTEN_PID` from systemd (or systemd-socket-activate): the first passed fd is 3. */
export function socketActivationFd(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return undefined;
  if (Number(env.LISTEN_PID) !== pid) return undefined;
  const count = Number(env.LISTEN_FDS);
  return Number.isInteger(count) && count >= 1 ? 3 : undefined;
}

/**
 * Opens the raw server on the inherited fd, or on the socket path with every check of DESIGN
 * section 2: private directory, stale-socket probe, 0600 through the umask, second daemon refused.
 */
export async function openMainSocket(server: Server, socketPath: string, env: NodeJS.ProcessEnv = process.env): Promise<SocketHandle> {
  const fd = socketActivationFd(env, process.pid);
  if (fd !== undefined) {
    await listenOnce(server, { fd });
    // Children (e.g. an autostarted helper) must not think the fds are theirs.
    delete env.LISTEN_FDS;
    delete env.LISTEN_PID;
    delete env.LISTEN_FDNAMES;
    return { socketPath, activated: true, removeSocket: async () => undefined };
  }
  return openSocketPath(server, socketPath, 0o600);
}

export interface OpenSocketOptions {
  /**
   * Checks (and creates) the socket's directory. Default: ensurePrivateDir (0700, ours, not a
   * symlink). Extra listeners pass a check that allows a group- or world-searchable directory.
   */
  ensureDir?: (dir: string) => Promise<void>;
}

/**
 * Listens on a socket path with the given mode, applied through the umask at bind time. Any
 * net.Server works: the main socket is fastify's http.Server, extra listeners are plain net
 * servers that hand their connections to it.
 */
export async function openSocketPath(server: NetServer, socketPath: string, mode: number, options: OpenSocketOptions = {}): Promise<SocketHandle> {
  if (isWindowsPipe(socketPath)) {
    await listenOnce(server, { path: socketPath });
    return { socketPath, activated: false, removeSocket: async () => undefined };
  }
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new ListenError(`socket path is too long (${Buffer.byteLength(socketPath)} bytes, the limit is ${MAX_SOCKET_PATH_BYTES}): ${socketPath}`, 'Choose a shorter path with --socket or TOKENBROKER_SOCKET.');
  }
  await (options.ensureDir ?? ((dir: string) => ensurePrivateDir(dir, 'socket')))(path.dirname(socketPath));
  await clearStaleSocket(socketPath);
  const ino = await bindAndLink(server, socketPath, mode);
  return {
    socketPath,
    activated: false,
    ino,
    removeSocket: async () => {
      try {
        const now = await lstat(socketPath);
        // Another daemon may have replaced a socket we no longer own; leave theirs alone.
        if (now.ino === ino) await unlink(socketPath);
      } catch {
        // Already gone.
      }
    },
  };
}

/**
 * Binds under a private temporary name and hard-links the socket into place. libuv unlinks the path
 * a server was bound to when it closes, whatever file is there by then: bound to the final path, a
 * daemon whose socket was deleted and re-created by a successor would delete the successor's socket
 * at exit. Bound to the temporary name, only that (long gone) name is unlinked. link() also fails
 * when the path exists, so a socket that appeared meanwhile is never replaced.
 */
async function bindAndLink(server: NetServer, socketPath: string, mode: number): Promise<number> {
  const temp = path.join(path.dirname(socketPath), `.${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}.sock`);
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH_BYTES) {
    // A very short socket name in a very long directory: bind in place (no protection at close).
    await bindWithUmask(server, socketPath, mode);
    return (await lstat(socketPath)).ino;
  }
  await unlink(temp).catch(() => undefined);
  await bindWithUmask(server, temp, mode);
  try {
    try {
      await link(temp, socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Lost a race with another daemon starting at the same moment, or a leftover reappeared.
      await clearStaleSocket(socketPath);
      await link(temp, socketPath);
    }
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  return (await lstat(socketPath)).ino;
}

async function clearStaleSocket(socketPath: string): Promise<void> {
  const probe = await probeSocket(socketPath);
  switch (probe.kind) {
    case 'absent':
      return;
    case 'dead':
      await unlink(socketPath);
      return;
    case 'daemon':
      throw new ListenError(
        `already running (pid ${probe.pid ?? 'unknown'}) on ${socketPath}`,
        'Use the running daemon (`tokenbroker status`), or stop it first.',
      );
    case 'unresponsive':
      throw new ListenError(
        `socket ${socketPath} is held by a process that does not answer (a socket activator such as systemd?)`,
        'Check `systemctl --user status tokenbroker.socket`, or choose another path with --socket.',
      );
    case 'not-socket':
      throw new ListenError(`${socketPath} exists and is not a socket; refusing to replace it`, `Move ${socketPath} away or choose another path with --socket.`);
  }
}

/**
 * Node binds a Unix socket synchronously inside listen(), so the umask is in force exactly for
 * the bind and restored before anything else in the process can run (no await in between).
 */
function bindWithUmask(server: NetServer, socketPath: string, mode: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    const previous = process.umask(0o777 & ~mode);
    try {
      server.listen(socketPath);
    } finally {
      process.umask(previous);
    }
  });
}

function listenOnce(server: NetServer, options: { fd: number } | { path: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
