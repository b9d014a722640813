/**
 * The main socket heals (DESIGN section 2): a deleted socket path (a cleanup script, `rm -rf
 * $XDG_RUNTIME_DIR/...`) would leave a running daemon unreachable for ever, and the next CLI would
 * start a second one. Every few seconds the daemon checks that the path is still its socket and
 * binds a new one when the path is gone or a dead socket lies there. A live socket of somebody
 * else is never taken over. Not used under socket activation: the manager owns that socket.
 */
import { lstat } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { createServer, type Server as NetServer } from 'node:net';
import type { DomainLog } from '../broker/ports.js';
import { openSocketPath, type SocketHandle } from './listen.js';
import { probeSocket } from '../node/socket-probe.js';

/** How often the socket path is checked: "within seconds", and cheap (one lstat). */
export const SOCKET_CHECK_MS = 2_000;

export interface HealingSocket {
  /** Stops checking and stops accepting on re-created sockets (connections drain with the main server). */
  stop(): void;
  /** Removes the socket path if the file there is still the daemon's current socket. */
  removeSocket(): Promise<void>;
}

export function healSocket(target: HttpServer, first: SocketHandle, log: DomainLog, intervalMs = SOCKET_CHECK_MS): HealingSocket {
  let current = first;
  let replacement: NetServer | undefined;
  let busy = false;
  let warnedAbout: string | undefined;

  const recreate = async (): Promise<void> => {
    // Connections on the new socket go to the same HTTP server: same routes, same drain.
    const server = createServer((connection) => target.emit('connection', connection));
    try {
      const handle = await openSocketPath(server, first.socketPath, 0o600);
      if (replacement?.listening) replacement.close();
      replacement = server;
      current = handle;
      warnedAbout = undefined;
      log.warn({ socket: first.socketPath }, 'the socket was gone or dead; re-created it');
    } catch (err) {
      server.close();
      warnOnce('cannot re-create', `cannot re-create the socket ${first.socketPath}: ${(err as Error).message}`);
    }
  };
  const warnOnce = (key: string, message: string): void => {
    if (warnedAbout === key) return;
    warnedAbout = key;
    log.warn({ socket: first.socketPath }, message);
  };
  const check = async (): Promise<void> => {
    let ino: number | undefined;
    try {
      ino = (await lstat(first.socketPath)).ino;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    }
    if (ino !== undefined && ino === current.ino) return;
    if (ino === undefined) return recreate();
    const probe = await probeSocket(first.socketPath);
    if (probe.kind === 'dead' || probe.kind === 'absent') return recreate();
    warnOnce(`taken ${ino}`, `the socket path ${first.socketPath} now belongs to another process (${probe.kind === 'daemon' ? `a daemon, pid ${probe.pid ?? 'unknown'}` : probe.kind}); not taking it over. This daemon is unreachable there: stop it.`);
  };

  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void check()
      .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'socket check failed'))
      .finally(() => (busy = false));
  }, intervalMs);
  timer.unref();

  return {
    stop: () => {
      clearInterval(timer);
      if (replacement?.listening) replacement.close();
    },
    removeSocket: () => current.removeSocket(),
  };
}
