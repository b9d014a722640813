import { chmod, lstat, mkdir } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { createServer, type Server as NetServer } from 'node:net';
import path from 'node:path';
import type { Config } from '../protocol/config-schema.js';
import { tagExtraListener } from './listener-auth.js';
import { ListenError, openSocketPath, type SocketHandle } from './listen.js';
import type { DomainLog } from '../broker/ports.js';
import { assertOwnedDir, PrivateDirError } from '../node/private-dir.js';

type ListenerConfig = Config['listeners'][number];

/** An open extra listener (DESIGN section 8). */
export interface ExtraListener {
  path: string;
  /** The socket file's mode, e.g. 0o660. */
  mode: number;
  /** Stops accepting new connections; open ones belong to the main server and drain with it. */
  stopAccepting(): void;
  /** Removes the socket file (if it is still ours). */
  removeSocket(): Promise<void>;
}

export function parseMode(mode: string): number {
  return Number.parseInt(mode, 8);
}

/**
 * The directory mode for a listener: rwx for us, and search (x) for each class the socket mode
 * lets in. Connecting to a Unix socket needs write on the socket and search on every directory
 * above it, but never read (listing) or write on the directory.
 */
export function listenerDirMode(socketMode: number): number {
  let mode = 0o700;
  if ((socketMode & 0o060) !== 0) mode |= 0o010;
  if ((socketMode & 0o006) !== 0) mode |= 0o001;
  return mode;
}

/**
 * The directory of an extra listener must be safe to bind in, but, unlike the owner's socket
 * directory, it may be reachable by a group or everyone. So it must be a real directory (not a
 * symlink), owned by us, and not writable by group or others (nobody else can replace or plant
 * the socket). It is created with `listenerDirMode`; an existing one is never tightened, because
 * a shared directory's group or search bits are deliberate. A world-writable directory such as
 * /tmp is refused, sticky bit or not: put the socket in a directory of its own.
 * Returns warnings (e.g. the group cannot reach the socket through this directory).
 */
export async function ensureListenerDir(dir: string, socketMode: number): Promise<string[]> {
  const wanted = listenerDirMode(socketMode);
  const firstCreated = await mkdir(dir, { recursive: true, mode: wanted });
  if (firstCreated !== undefined) {
    // The umask (e.g. systemd's UMask=0077) trims mkdir's mode; set it on every directory we made.
    for (let current = dir; ; current = path.dirname(current)) {
      await chmod(current, wanted);
      if (current === firstCreated || path.dirname(current) === current) break;
    }
  }
  const info = await lstat(dir);
  assertOwnedDir(dir, info, 'listener directory', {
    symlink: `Point the listener at the real directory, or remove the symlink (rm ${dir}).`,
    notDirectory: `Move ${dir} away or choose another listener path.`,
    foreignOwner: 'Create a directory of your own for the shared socket (e.g. mkdir -m 0710 DIR).',
    openMode: (bits) => `Others could replace the socket. Use a directory of its own: chmod ${octal(bits & ~0o022)} ${dir}`,
  });
  const actual = info.mode & 0o777;
  const warnings: string[] = [];
  if ((socketMode & 0o060) !== 0 && (actual & 0o010) === 0) warnings.push(`the group cannot reach the socket: ${dir} has mode ${octal(actual)} (chmod g+x ${dir})`);
  if ((socketMode & 0o006) !== 0 && (actual & 0o001) === 0) warnings.push(`others cannot reach the socket: ${dir} has mode ${octal(actual)} (chmod o+x ${dir})`);
  return warnings;
}

/**
 * Opens every configured extra listener. Each is a plain net server whose connections are tagged
 * (so the auth hook knows where a request came from) and handed to the main HTTP server: one
 * handler, one set of connections for the drain on shutdown, the same header timeouts.
 * A listener that cannot be opened is a start-up error; the ones already open are closed again.
 */
export async function openExtraListeners(target: HttpServer, listeners: readonly ListenerConfig[], ownerSocketPath: string, log: DomainLog): Promise<ExtraListener[]> {
  checkListenerPaths(listeners, ownerSocketPath);
  const opened: ExtraListener[] = [];
  try {
    for (const listener of listeners) opened.push(await openExtraListener(target, listener, log));
  } catch (err) {
    for (const listener of opened) listener.stopAccepting();
    await Promise.all(opened.map((listener) => listener.removeSocket()));
    throw err;
  }
  return opened;
}

async function openExtraListener(target: HttpServer, listener: ListenerConfig, log: DomainLog): Promise<ExtraListener> {
  const mode = parseMode(listener.mode);
  const socketPath = listener.path;
  const server: NetServer = createServer((socket) => {
    tagExtraListener(socket, { path: socketPath });
    target.emit('connection', socket);
  });
  let handle: SocketHandle;
  try {
    handle = await openSocketPath(server, socketPath, mode, {
      ensureDir: async (dir) => {
        for (const warning of await ensureListenerDir(dir, mode)) log.warn({ listener: socketPath }, `listener ${socketPath}: ${warning}`);
      },
    });
  } catch (err) {
    server.close();
    if (err instanceof ListenError || err instanceof PrivateDirError) throw new ListenError(`extra listener ${socketPath}: ${err.message}`, err.hint);
    throw new ListenError(`extra listener ${socketPath}: ${(err as Error).message}`, 'Check the "listeners" entry in config.json.');
  }
  log.info({ listener: socketPath, mode: octal(mode) }, 'extra listener ready (client tokens required)');
  return {
    path: socketPath,
    mode,
    stopAccepting: () => {
      if (server.listening) server.close();
    },
    removeSocket: () => handle.removeSocket(),
  };
}

/**
 * Refused before anything is bound: duplicates, and the owner's own socket path. A listener may
 * sit in the owner's socket directory (reachable by the same user, or through a bind mount of the
 * socket file into a container); that directory stays 0700, so sharing with a group needs a
 * directory of its own, which the start-up warning says.
 */
function checkListenerPaths(listeners: readonly ListenerConfig[], ownerSocketPath: string): void {
  const seen = new Set<string>();
  for (const listener of listeners) {
    if (seen.has(listener.path)) throw new ListenError(`extra listener ${listener.path} is listed twice in "listeners"`, 'Remove the duplicate from config.json.');
    seen.add(listener.path);
    if (listener.path === ownerSocketPath) {
      throw new ListenError(`extra listener ${listener.path} is the owner's socket`, 'Give the shared socket a path of its own, in a directory of its own.');
    }
  }
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}
