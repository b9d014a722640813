import type { ErrorDetailsOf } from './error-details.js';

/**
 * The one error registry shared by the daemon (to answer), the client (to rebuild typed errors)
 * and the CLI (to pick an exit code). Codes are stable API; `docs/errors.md` documents each one
 * and a test keeps the two in step. Callers branch on `code`, never on message text.
 */

/** CLI exit codes (DESIGN section 7). */
export const ExitCode = {
  ok: 0,
  error: 1,
  usage: 2,
  daemonUnreachable: 3,
  token: 4,
  upstream: 5,
  checksum: 6,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

interface ErrorSpec {
  readonly status: number;
  /** Default message; call sites usually pass a more specific one. */
  readonly message: string;
  /** What the user can do about it. */
  readonly hint: string;
  readonly exit: ExitCodeValue;
}

export const ERRORS = {
  BROKER_BAD_REQUEST: {
    status: 400,
    message: 'The request is not valid.',
    hint: 'Check the request against the socket API in the README.',
    exit: ExitCode.usage,
  },
  BROKER_UNAUTHORIZED: {
    status: 401,
    message: 'This socket needs a valid client token.',
    hint: 'Send "Authorization: Bearer tbk_..." with a client token from `tokenbroker client-token create`.',
    exit: ExitCode.error,
  },
  BROKER_FORBIDDEN: {
    status: 403,
    message: 'The request is not allowed.',
    hint: 'Browsers cannot talk to the daemon; local programs must not send an Origin header and must use Host: localhost.',
    exit: ExitCode.error,
  },
  BROKER_URL_NOT_ALLOWED: {
    status: 403,
    message: 'The URL is not under any configured server prefix.',
    hint: 'Only URLs under a server\'s authenticatedPrefixes or publicPrefixes in config.json can be fetched.',
    exit: ExitCode.error,
  },
  BROKER_UPSTREAM_FORBIDDEN: {
    status: 403,
    message: 'The server refused access to this resource.',
    hint: 'Your account may lack permission for it; ask your Nordic Semiconductor contact.',
    exit: ExitCode.upstream,
  },
  BROKER_NOT_FOUND: {
    status: 404,
    message: 'No such route or resource.',
    hint: 'Check the path; every route is under /v1.',
    exit: ExitCode.error,
  },
  BROKER_UPSTREAM_NOT_FOUND: {
    status: 404,
    message: 'The server has no such file.',
    hint: 'Check the URL, or refresh the sources if it came from an app index.',
    exit: ExitCode.upstream,
  },
  BROKER_TOKEN_MISSING: {
    status: 409,
    message: 'No identity token is set.',
    hint: 'Set one with `tokenbroker token set` (generate it under User Profile on the server).',
    exit: ExitCode.token,
  },
  BROKER_TOKEN_INVALID: {
    status: 409,
    message: 'The server rejected the identity token.',
    hint: 'Generate a new identity token and run `tokenbroker token replace`.',
    exit: ExitCode.token,
  },
  BROKER_TOKEN_EXPIRED: {
    status: 409,
    message: 'The identity token has expired.',
    hint: 'Generate a new identity token and run `tokenbroker token replace`.',
    exit: ExitCode.token,
  },
  BROKER_SOURCE_EXISTS: {
    status: 409,
    message: 'A source with that name already exists.',
    hint: 'Remove it first with `tokenbroker sources remove NAME`, or list them with `tokenbroker sources list`.',
    exit: ExitCode.error,
  },
  BROKER_SOURCE_OFFICIAL: {
    status: 409,
    message: 'The official source cannot be changed or removed.',
    hint: 'The official source is always present; set `officialSource` in config.json to point it elsewhere.',
    exit: ExitCode.error,
  },
  BROKER_CONFIG_CHANGED: {
    status: 412,
    message: 'The config changed since it was read.',
    hint: 'Read it again (GET /v1/config, or the client\'s getConfig()), apply your change to what it says now, and send it with the new ETag in If-Match.',
    exit: ExitCode.error,
  },
  BROKER_SOURCE_INVALID: {
    status: 422,
    message: 'The source document is not valid.',
    hint: 'Check that the URL points to a source.json with "name" and "apps".',
    exit: ExitCode.error,
  },
  BROKER_INTERNAL: {
    status: 500,
    message: 'The daemon failed unexpectedly.',
    hint: 'See the daemon log (journalctl --user -u tokenbroker, or its stderr) and report the problem.',
    exit: ExitCode.error,
  },
  BROKER_UPSTREAM_UNREACHABLE: {
    status: 502,
    message: 'The server could not be reached.',
    hint: 'Check your internet connection and proxy settings, then try again (`tokenbroker diagnose` helps).',
    exit: ExitCode.upstream,
  },
  BROKER_UPSTREAM_ERROR: {
    status: 502,
    message: 'The server answered with an error.',
    hint: 'Try again later; details.retryAfter says when the server asked you to retry.',
    exit: ExitCode.upstream,
  },
  BROKER_CHECKSUM_MISMATCH: {
    status: 502,
    message: 'The downloaded content does not match the expected checksum.',
    hint: 'Nothing was kept. Try again; if it persists, the file on the server or the expected digest is wrong.',
    exit: ExitCode.checksum,
  },
  BROKER_SECRET_STORE_UNAVAILABLE: {
    status: 503,
    message: 'The OS keychain is not available.',
    hint: 'Unlock your keychain (login keyring) and retry, or set "secretStore": "memory" in config.json.',
    exit: ExitCode.error,
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

export interface BrokerErrorOptions<C extends ErrorCode = ErrorCode> {
  message?: string;
  hint?: string;
  /** Declared per code in error-details.ts. */
  details?: ErrorDetailsOf<C>;
  cause?: unknown;
}

/**
 * The typed error every layer throws and catches. The daemon serialises it into the envelope,
 * the client rebuilds it from the envelope, the CLI maps `code` to an exit code.
 */
export class BrokerError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly status: number;
  readonly hint: string;
  readonly details: ErrorDetailsOf<C> | undefined;

  constructor(code: C, options: BrokerErrorOptions<C> = {}) {
    const spec = ERRORS[code];
    super(options.message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BrokerError';
    this.code = code;
    this.status = spec.status;
    this.hint = options.hint ?? spec.hint;
    this.details = options.details;
  }

  get exitCode(): ExitCodeValue {
    return ERRORS[this.code].exit;
  }

  toEnvelope(): ErrorEnvelope {
    return {
      error: {
        code: this.code,
        message: this.message,
        hint: this.hint,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export function isBrokerError<C extends ErrorCode = ErrorCode>(err: unknown, code?: C): err is BrokerError<C> {
  return err instanceof BrokerError && (code === undefined || err.code === code);
}

export interface ErrorEnvelope {
  error: {
    code: ErrorCode;
    message: string;
    hint: string;
    details?: Record<string, unknown>;
  };
}

/** Whole seconds to send as `Retry-After` with this error's envelope, if its details carry them. */
export function retryAfterOf(err: BrokerError): number | undefined {
  const value = (err.details as { retryAfter?: unknown } | undefined)?.retryAfter;
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/**
 * Conditions the client library and the CLI detect themselves: no envelope, no HTTP status, but
 * the same registry shape (message, hint, exit code), so that the CLI's exit code is one lookup
 * (`exitCodeOf`) whichever side found the problem. `docs/errors.md` lists them in their own table.
 */
interface ClientErrorSpec {
  readonly message: string;
  readonly hint: string;
  readonly exit: ExitCodeValue;
}

export const CLIENT_ERRORS = {
  DAEMON_UNAVAILABLE: {
    message: 'The tokenbroker daemon is not reachable.',
    hint: 'Start it with `tokenbroker daemon`, or install it as a login service with `tokenbroker service install`.',
    exit: ExitCode.daemonUnreachable,
  },
  DAEMON_NOT_ANSWERING: {
    message: 'The tokenbroker daemon accepted the connection but did not answer.',
    hint: 'It may be stopped (SIGSTOP, a debugger) or stuck: `kill -CONT PID` resumes a stopped one, `tokenbroker daemon restart` or `kill PID` replaces it.',
    exit: ExitCode.daemonUnreachable,
  },
  DAEMON_START_FAILED: {
    message: 'The tokenbroker daemon could not be started.',
    hint: 'See the daemon log in the state directory (daemon.log), or run `tokenbroker daemon` in a terminal to see why.',
    exit: ExitCode.daemonUnreachable,
  },
  SOCKET_UNTRUSTED: {
    message: 'Refusing to talk to the tokenbroker socket: it is not safe to use.',
    hint: 'Another user may be trying to intercept tokenbroker; remove the socket directory or choose another socket path.',
    exit: ExitCode.error,
  },
  DAEMON_UNVERIFIED: {
    message: 'Refusing to talk to the process on the tokenbroker socket: it could not prove it is your daemon.',
    hint: 'Another process may be posing as the daemon: stop whatever listens on the socket and start `tokenbroker daemon`; a client in another environment can pass `stateDir`.',
    exit: ExitCode.error,
  },
  CLI_USAGE: {
    message: 'The command line is not valid.',
    hint: 'See `tokenbroker --help` or `tokenbroker COMMAND --help`.',
    exit: ExitCode.usage,
  },
} as const satisfies Record<string, ClientErrorSpec>;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

export const CLIENT_ERROR_CODES = Object.keys(CLIENT_ERRORS) as ClientErrorCode[];

/** The exit code of any registered code (daemon envelope or client-side); 1 for anything else. */
export function exitCodeOf(code: unknown): ExitCodeValue {
  if (isErrorCode(code)) return ERRORS[code].exit;
  if (typeof code === 'string' && Object.hasOwn(CLIENT_ERRORS, code)) return CLIENT_ERRORS[code as ClientErrorCode].exit;
  return ExitCode.error;
}

/** The base of the client-side errors: code, message, hint like a BrokerError, without a status. */
export class ClientError<C extends ClientErrorCode = ClientErrorCode> extends Error {
  readonly code: C;
  readonly hint: string;

  constructor(code: C, options: { message?: string; hint?: string; cause?: unknown } = {}) {
    super(options.message ?? CLIENT_ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.code = code;
    this.hint = options.hint ?? CLIENT_ERRORS[code].hint;
  }

  get exitCode(): ExitCodeValue {
    return CLIENT_ERRORS[this.code].exit;
  }
}
