import { DaemonUnavailableError } from '../client/client.js';
import { BrokerError, ExitCode, type ExitCodeValue } from '../protocol/errors.js';
import { writeLine, type IO } from './io.js';

/** The user asked for something the CLI cannot do as written: exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A failure already explained to the user (the command printed it): only the exit code is left.
 */
export class SilentExit extends Error {
  /** 130 = interrupted by Ctrl-C (128 + SIGINT), the shell convention. */
  constructor(readonly exitCode: ExitCodeValue | 130) {
    super(`exit ${exitCode}`);
    this.name = 'SilentExit';
  }
}

/** The one mapping from error kinds to the documented exit codes (DESIGN section 7). */
export function exitCodeFor(err: unknown): ExitCodeValue | 130 {
  if (err instanceof SilentExit) return err.exitCode;
  if (err instanceof UsageError) return ExitCode.usage;
  if (err instanceof DaemonUnavailableError) return ExitCode.daemonUnreachable;
  if (err instanceof BrokerError) return err.exitCode;
  return ExitCode.error;
}

/** Message and hint, never a stack trace unless --debug. */
export function reportError(err: unknown, io: IO, debug: boolean): void {
  if (err instanceof SilentExit) return;
  const message = err instanceof Error ? err.message : String(err);
  const hint = (err as { hint?: unknown }).hint;
  writeLine(io.stderr, `tokenbroker: ${message}`);
  if (typeof hint === 'string' && hint !== '') writeLine(io.stderr, `hint: ${hint}`);
  if (err instanceof BrokerError) writeLine(io.stderr, `(${err.code})`);
  if (debug && err instanceof Error && err.stack) writeLine(io.stderr, err.stack);
  if (debug && err instanceof Error && err.cause !== undefined) writeLine(io.stderr, `cause: ${String((err.cause as Error)?.stack ?? err.cause)}`);
}
