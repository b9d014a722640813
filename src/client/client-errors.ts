import { ClientError, CLIENT_ERRORS } from '../protocol/errors.js';

/**
 * The errors the client library finds on its own side of the socket. Each carries a registered
 * code (src/protocol/errors.ts, CLIENT_ERRORS) with its exit code, a message and a hint.
 */

type UnavailableCode = 'DAEMON_UNAVAILABLE' | 'DAEMON_NOT_ANSWERING' | 'DAEMON_START_FAILED';

/**
 * The daemon cannot be used: nobody listens (`DAEMON_UNAVAILABLE`), it accepted and did not
 * answer (`DAEMON_NOT_ANSWERING`, a DaemonNotAnsweringError), or autostart could not start it
 * (`DAEMON_START_FAILED`). CLI exit code 3.
 */
export class DaemonUnavailableError extends ClientError<UnavailableCode> {
  constructor(
    readonly socketPath: string,
    options: { cause?: unknown; reason?: string; code?: UnavailableCode; message?: string; hint?: string } = {},
  ) {
    const code = options.code ?? 'DAEMON_UNAVAILABLE';
    super(code, {
      message: options.message ?? `The tokenbroker daemon is not reachable at ${socketPath}${options.reason ? ` (${options.reason})` : ''}.`,
      hint: options.hint ?? (options.reason === 'permission denied' ? 'The socket belongs to another user; use your own daemon (check TOKENBROKER_SOCKET).' : CLIENT_ERRORS[code].hint),
      cause: options.cause,
    });
    this.name = 'DaemonUnavailableError';
  }
}

export function isDaemonUnavailable(err: unknown): err is DaemonUnavailableError {
  return err instanceof DaemonUnavailableError;
}

/**
 * A process accepted the connection and did not answer a request that never waits on an upstream
 * (hello, status, lists) in time: a stopped (SIGSTOP) or stuck daemon. Starting another cannot
 * help while it holds the socket, so the message names it. The one place this text is built: the
 * library, the CLI's commands and autostart all report it through here.
 */
export class DaemonNotAnsweringError extends DaemonUnavailableError {
  constructor(
    socketPath: string,
    readonly pid: number | undefined,
    readonly waitedMs: number,
    cause?: unknown,
  ) {
    const seconds = Math.max(1, Math.round(waitedMs / 1000));
    super(socketPath, {
      code: 'DAEMON_NOT_ANSWERING',
      message: `The tokenbroker daemon${pid === undefined ? '' : ` (pid ${pid})`} accepted the connection on ${socketPath} but did not answer within ${seconds} s.`,
      hint:
        pid === undefined
          ? `Something holds the socket without answering; find it with \`lsof ${socketPath}\` (or \`ss -xlp\`), end it, and try again.`
          : `It may be stopped (SIGSTOP, a debugger) or stuck: \`kill -CONT ${pid}\` resumes a stopped one; \`kill ${pid}\` ends it (the next command starts a new one).`,
      cause,
    });
    this.name = 'DaemonNotAnsweringError';
  }
}

/** Autostart could not start the daemon, or found a reason not to (exit 3, with a hint saying why). */
export class AutostartError extends DaemonUnavailableError {
  constructor(socketPath: string, reason: string, hint: string, cause?: unknown) {
    super(socketPath, { code: 'DAEMON_START_FAILED', reason, hint, cause });
    this.name = 'AutostartError';
  }
}

/** The owner's socket (or its directory) is not safe to talk to. CLI exit code 1. */
export class UntrustedSocketError extends ClientError<'SOCKET_UNTRUSTED' | 'DAEMON_UNVERIFIED'> {
  constructor(
    readonly socketPath: string,
    message: string,
    hint: string,
    code: 'SOCKET_UNTRUSTED' | 'DAEMON_UNVERIFIED' = 'SOCKET_UNTRUSTED',
    cause?: unknown,
  ) {
    super(code, { message: `refusing to talk to the tokenbroker socket: ${message}`, hint: hint === '' ? CLIENT_ERRORS[code].hint : hint, cause });
    this.name = 'UntrustedSocketError';
  }
}

export function isUntrustedSocket(err: unknown): err is UntrustedSocketError {
  return err instanceof UntrustedSocketError;
}

/**
 * What answered on the owner's socket could not prove it holds this start's key (hello
 * handshake): not our daemon, or a client whose state dir differs from the daemon's.
 */
export class UnverifiedDaemonError extends UntrustedSocketError {
  constructor(socketPath: string, message: string, hint?: string, cause?: unknown) {
    super(socketPath, message, hint ?? CLIENT_ERRORS.DAEMON_UNVERIFIED.hint, 'DAEMON_UNVERIFIED', cause);
    this.name = 'UnverifiedDaemonError';
  }
}
