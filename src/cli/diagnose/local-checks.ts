import { inspectOwnerSocket } from '../../client/socket-trust.js';
import { isWindowsPipe } from '../../protocol/paths.js';
import { check, type Check } from './check.js';

/**
 * The socket and its directory: who can reach the daemon. The same inspection the client library
 * and the CLI make before sending anything (src/client/socket-trust.ts): what they refuse fails here.
 */
export async function socketChecks(socketPath: string, uid: number | undefined): Promise<Check[]> {
  if (isWindowsPipe(socketPath)) return [check('socket', 'ok', `${socketPath}: a named pipe (Windows checks access to it, not file modes)`)];
  const findings = await inspectOwnerSocket(socketPath, uid);
  return findings.map((f) => check(f.id, f.state === 'ok' ? 'ok' : f.state === 'missing' ? 'warn' : 'fail', f.state === 'refused' ? `${f.message}; clients refuse to use it` : f.message, f.hint));
}
