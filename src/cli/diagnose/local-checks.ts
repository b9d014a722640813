import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { isWindowsPipe } from '../../protocol/paths.js';
import { check, type Check } from './check.js';

/**
 * The socket and its directory: who can reach the daemon. The file mode is the whole access
 * check for the owner's socket (Node cannot read peer credentials), so it must be 0600 in a 0700
 * directory we own.
 */
export async function socketChecks(socketPath: string, uid: number | undefined): Promise<Check[]> {
  if (isWindowsPipe(socketPath)) return [check('socket', 'ok', `${socketPath}: a named pipe (Windows checks access to it, not file modes)`)];
  return [await socketDirCheck(path.dirname(socketPath), uid), await socketFileCheck(socketPath, uid)];
}

async function socketDirCheck(dir: string, uid: number | undefined): Promise<Check> {
  let info;
  try {
    info = await lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return check('socket-dir', 'warn', `${dir} does not exist yet`, 'The daemon creates it (0700) when it starts.');
    return check('socket-dir', 'fail', `${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Check the permissions of its parent directories.');
  }
  if (info.isSymbolicLink()) return check('socket-dir', 'fail', `${dir} is a symlink; the daemon refuses it`, `Remove the symlink (rm ${dir}); the daemon creates the directory itself.`);
  if (!info.isDirectory()) return check('socket-dir', 'fail', `${dir} is not a directory`, `Move ${dir} away; the daemon creates the directory itself.`);
  if (uid !== undefined && info.uid !== uid) {
    return check('socket-dir', 'fail', `${dir} is owned by uid ${info.uid}, not by you (uid ${uid})`, 'Another user may be trying to intercept tokenbroker; remove the directory or choose another socket path.');
  }
  const mode = modeText(info.mode);
  if ((info.mode & 0o022) !== 0) return check('socket-dir', 'fail', `${dir} is writable by group or others (mode ${mode}); the daemon refuses it`, `Run: chmod 700 ${dir}`);
  if ((info.mode & 0o077) !== 0) return check('socket-dir', 'warn', `${dir} is readable by group or others (mode ${mode})`, `The daemon tightens it to 0700 when it starts; or run: chmod 700 ${dir}`);
  return check('socket-dir', 'ok', `${dir}: mode ${mode}, owned by you`);
}

async function socketFileCheck(socketPath: string, uid: number | undefined): Promise<Check> {
  let info;
  try {
    info = await lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return check('socket', 'warn', `${socketPath} does not exist (no daemon is listening)`, 'The daemon creates it 0600 when it starts.');
    return check('socket', 'fail', `${socketPath} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'Check the permissions of the socket directory.');
  }
  if (!info.isSocket()) return check('socket', 'fail', `${socketPath} is not a socket`, `Move it away; the daemon refuses to replace it.`);
  if (uid !== undefined && info.uid !== uid) {
    return check('socket', 'fail', `${socketPath} is owned by uid ${info.uid}, not by you (uid ${uid})`, 'This is not your daemon; check TOKENBROKER_SOCKET / --socket.');
  }
  const mode = modeText(info.mode);
  // Connecting to a Unix socket needs write permission on it.
  if ((info.mode & 0o022) !== 0) {
    return check('socket', 'fail', `${socketPath} can be used by group or others (mode ${mode}): they would act as you`, 'Restart the daemon: it creates the socket 0600. Under systemd check SocketMode=0600 in tokenbroker.socket.');
  }
  if ((info.mode & 0o077) !== 0) return check('socket', 'warn', `${socketPath}: mode ${mode}, expected 0600`, 'Restart the daemon: it creates the socket 0600.');
  return check('socket', 'ok', `${socketPath}: mode ${mode}, owned by you`);
}

function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}
