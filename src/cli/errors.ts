import { BrokerError, exitCodeOf, type ExitCodeValue } from '../protocol/errors.js';
import { writeLine, type IO } from './io.js';

/** The user asked for something the CLI cannot do as written: exit 2. */
export class UsageError extends Error {
  readonly code = 'CLI_USAGE';
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

/**
 * The documented exit code (DESIGN section 7) of any error: one lookup of its registered code
 * (daemon envelopes and client-side conditions alike, src/protocol/errors.ts); 1 for the rest.
 */
export function exitCodeFor(err: unknown): ExitCodeValue | 130 {
  if (err instanceof SilentExit) return err.exitCode;
  return exitCodeOf((err as { code?: unknown } | null | undefined)?.code);
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
