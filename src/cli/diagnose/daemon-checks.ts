import { SOCKET_ACTIVATION_HINT, SOCKET_ACTIVATION_NOTE } from '../commands/status-command.js';
import { DaemonUnavailableError, type TokenBrokerClient } from '../../client/client.js';
import { isUntrustedSocket } from '../../client/socket-trust.js';
import { BrokerError } from '../../protocol/errors.js';
import type { CoreDumpsStatus, Status } from '../../protocol/status.js';
import type { SecretStoreStatus, TokenView } from '../../protocol/token.js';
import { VERSION } from '../../protocol/version.js';
import { check, type Check } from './check.js';
import { plural } from '../table.js';

export interface DaemonFindings {
  checks: Check[];
  /** The daemon's status when it answered. */
  status?: Status;
  /** Token views by server name, when the daemon reports them. */
  tokens: Map<string, TokenView>;
}

/** Asks the daemon (never starts one: diagnose reports what is). */
export async function daemonChecks(client: TokenBrokerClient): Promise<DaemonFindings> {
  let status: Status;
  try {
    status = await client.status();
  } catch (err) {
    // The socket checks above already say why; the daemon was not asked.
    if (isUntrustedSocket(err)) return { checks: [check('daemon', 'fail', 'not asked: the socket is not safe to use (see the socket checks)', err.hint)], tokens: new Map() };
    if (err instanceof DaemonUnavailableError) return { checks: [check('daemon', 'fail', err.message, err.hint)], tokens: new Map() };
    if (err instanceof BrokerError) return { checks: [check('daemon', 'fail', `The daemon answered with an error: ${err.message}`, err.hint)], tokens: new Map() };
    throw err;
  }
  const checks = [
    check('daemon', 'ok', `running, pid ${status.pid}, up ${status.uptimeSeconds} s${status.socket.activated ? ', started by socket activation' : ''}`),
    status.version === VERSION
      ? check('version', 'ok', `daemon ${status.version}, CLI ${VERSION}`)
      : check(
          'version',
          'warn',
          `daemon ${status.version}, CLI ${VERSION}`,
          'Restart the daemon so that it runs the installed version (`systemctl --user restart tokenbroker`, or stop it: the next command starts the new one).',
        ),
  ];
  if (status.socket.activated) checks.push(check('socket-owner', 'warn', SOCKET_ACTIVATION_NOTE, SOCKET_ACTIVATION_HINT));
  checks.push(secretStoreCheck(status.secretStore));
  if (status.coreDumps !== undefined) checks.push(coreDumpsCheck(status.coreDumps));
  const tokens = new Map<string, TokenView>();
  for (const view of status.tokens) tokens.set(view.server, view);
  return { checks, status, tokens };
}

function secretStoreCheck(store: SecretStoreStatus): Check {
  const what = `${store.kind} (${store.state}${store.persistent ? '' : ', not persistent'}${store.plaintextAtRest ? ', plaintext at rest' : ''})`;
  if (store.state === 'unavailable') {
    return check('secret-store', 'fail', `${what}${store.warning ? `: ${store.warning}` : ''}`, 'Unlock your login keyring (or start a Secret Service), then retry; or set "secretStore": "memory" in config.json.');
  }
  if (store.state === 'locked' || store.state === 'timeout') {
    return check('secret-store', 'warn', `${what}${store.warning ? `: ${store.warning}` : ''}`, 'Unlock your login keyring; the daemon retries on its own.');
  }
  if (store.plaintextAtRest && store.kind !== 'file') {
    return check(
      'secret-store',
      'fail',
      `${what}: a plaintext secrets file is left from "secretStore": "file"${store.plaintextPath === undefined ? '' : ` (${store.plaintextPath})`}`,
      'Run `tokenbroker token remove` (it deletes the file), then set the token again; or unlock the keychain and restart the daemon to move it there.',
    );
  }
  if (store.plaintextAtRest) return check('secret-store', 'warn', what, 'secretStore "file" keeps the token in plain text in the state directory; prefer "auto" or "keychain".');
  if (store.warning !== undefined) return check('secret-store', 'warn', `${what}: ${store.warning}`, 'Install and unlock a keychain (Secret Service on Linux) to keep the token across restarts, or set "secretStore": "memory" to accept that.');
  return check('secret-store', 'ok', what);
}

function coreDumpsCheck(core: CoreDumpsStatus): Check {
  if (core.limit === 0) return check('core-dumps', 'ok', 'the daemon writes no core files (limit 0)');
  if (core.limit === null) return check('core-dumps', 'ok', 'the daemon cannot tell its core-file limit on this platform');
  return check('core-dumps', 'warn', `the daemon's core-file limit is ${core.limit}: a crash could write the token to disk`, core.warning ?? 'Restart the daemon after `ulimit -c 0`, or run it as a service.');
}

/** The token of one server, as the daemon sees it. */
export function tokenCheck(view: TokenView | undefined): Check | undefined {
  if (view === undefined) return undefined;
  const id = view.tokenId === undefined ? '' : `, Token ID ${view.tokenId}`;
  const left = view.daysLeft === undefined ? '' : `, ${plural(view.daysLeft, 'day')} left`;
  const expires = view.expiresAt === undefined ? '' : `, expires ${view.expiresAt.slice(0, 10)}`;
  const text = `${view.state}${id}${expires}${left}`;
  switch (view.state) {
    case 'valid':
      return check('token', 'ok', text);
    case 'absent':
      return check('token', 'ok', 'no token set: public sources work, restricted ones need one', 'Set one with `tokenbroker token set` (generate it under User Profile on the server).');
    case 'expiring':
      return check('token', 'warn', text, 'Generate a new identity token and run `tokenbroker token replace` before it expires.');
    case 'unverified':
      return check('token', 'warn', `${text}${view.reason ? ` (${view.reason})` : ''}`, 'The server could not be asked yet; it is checked again in the background once the server is reachable.');
    case 'expired':
    case 'invalid':
      return check('token', 'fail', `${text}${view.reason ? ` (${view.reason})` : ''}`, 'Generate a new identity token and run `tokenbroker token replace`.');
  }
}
