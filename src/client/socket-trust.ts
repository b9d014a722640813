import { lstat } from 'node:fs/promises';
import { modeText, ownedPathProblem } from '../node/owned-path.js';
import path from 'node:path';
import { isWindowsPipe, privateDirHint } from '../protocol/paths.js';
import { UntrustedSocketError } from './client-errors.js';

/**
 * The owner's socket needs no client token: whoever can connect acts as the user. So before a
 * client sends anything (a token, a request whose answer it trusts) it checks what the daemon
 * checks when it creates the socket: a directory that is ours, not a symlink and not open to
 * group or others, holding a socket that is ours. Otherwise another local user may have put
 * their own daemon there (e.g. `/tmp/tokenbroker-UID/` made before our first start).
 * Node cannot read a Unix socket's peer credentials, so ownership on disk is what can be checked.
 */

/** What was found about one part: `missing` is fine (no daemon yet; autostart creates it). */
export interface SocketFinding {
  id: 'socket-dir' | 'socket';
  path: string;
  state: 'ok' | 'missing' | 'refused';
  message: string;
  hint?: string;
}

export { UntrustedSocketError, isUntrustedSocket } from './client-errors.js';

/**
 * Both parts, for `diagnose`. Windows named pipes and platforms without uids are not checked
 * (Windows checks access to a pipe itself); an empty list means nothing to check.
 */
export async function inspectOwnerSocket(socketPath: string, uid: number | undefined = process.getuid?.()): Promise<SocketFinding[]> {
  if (isWindowsPipe(socketPath) || uid === undefined) return [];
  const dir = await inspectDir(path.dirname(socketPath), uid);
  // A socket inside a directory we do not trust tells nothing.
  if (dir.state === 'refused') return [dir];
  return [dir, await inspectSocket(socketPath, uid)];
}

/** Throws UntrustedSocketError unless the owner's socket is safe to use (or not there yet). */
export async function verifyOwnerSocket(socketPath: string, uid: number | undefined = process.getuid?.()): Promise<void> {
  const refused = (await inspectOwnerSocket(socketPath, uid)).find((f) => f.state === 'refused');
  if (refused !== undefined) throw new UntrustedSocketError(socketPath, refused.message, refused.hint ?? '');
}

async function inspectDir(dir: string, uid: number): Promise<SocketFinding> {
  const found = (state: SocketFinding['state'], message: string, hint?: string): SocketFinding => ({ id: 'socket-dir', path: dir, state, message, ...(hint === undefined ? {} : { hint }) });
  let info;
  try {
    info = await lstat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return found('missing', `${dir} does not exist yet`, 'The daemon creates it (0700) when it starts.');
    return found('refused', `${dir} cannot be read (${code ?? 'error'})`, 'Check the permissions of its parent directories.');
  }
  const problem = ownedPathProblem(info, { kind: 'directory', closedBits: 0o077 }, uid);
  switch (problem?.problem) {
    case 'symlink':
      return found('refused', `${dir} is a symlink`, `Remove the symlink (rm ${dir}); the daemon creates the directory itself.`);
    case 'wrong-kind':
      return found('refused', `${dir} is not a directory`, `Move ${dir} away; the daemon creates the directory itself.`);
    case 'foreign-owner':
      return found('refused', `${dir} is owned by uid ${problem.owner}, not by you (uid ${uid})`, `Another user may be trying to intercept tokenbroker: choose another socket path. ${privateDirHint(dir, 'socket', uid)}`);
    case 'open-mode':
      return found('refused', `${dir} is open to group or others (mode ${problem.mode})`, privateDirHint(dir, 'socket', uid));
    case undefined:
      return found('ok', `${dir}: mode ${modeText(info.mode)}, owned by you`);
  }
}

async function inspectSocket(socketPath: string, uid: number): Promise<SocketFinding> {
  const found = (state: SocketFinding['state'], message: string, hint?: string): SocketFinding => ({ id: 'socket', path: socketPath, state, message, ...(hint === undefined ? {} : { hint }) });
  let info;
  try {
    info = await lstat(socketPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return found('missing', `${socketPath} does not exist (no daemon is listening)`, 'The daemon creates it 0600 when it starts.');
    return found('refused', `${socketPath} cannot be read (${code ?? 'error'})`, 'Check the permissions of the socket directory.');
  }
  // Connecting to a Unix socket needs write permission on it (a plain 0755 from node's default
  // umask lets nobody else in, and the directory is already closed to them).
  const problem = ownedPathProblem(info, { kind: 'socket', closedBits: 0o022 }, uid);
  switch (problem?.problem) {
    case 'symlink':
      return found('refused', `${socketPath} is a symlink`, `Remove it (rm ${socketPath}); the daemon creates the socket itself.`);
    case 'wrong-kind':
      return found('refused', `${socketPath} is not a socket`, 'Move it away; the daemon refuses to replace it.');
    case 'foreign-owner':
      return found('refused', `${socketPath} is owned by uid ${problem.owner}, not by you (uid ${uid})`, 'This is not your daemon; check TOKENBROKER_SOCKET / --socket.');
    case 'open-mode':
      return found('refused', `${socketPath} can be used by group or others (mode ${problem.mode}): they would act as you`, 'Restart the daemon: it creates the socket 0600. Under systemd check SocketMode=0600 in tokenbroker.socket.');
    case undefined:
      return found('ok', `${socketPath}: mode ${modeText(info.mode)}, owned by you`);
  }
}

