import { BrokerError, exitCodeOf, type ExitCodeValue } from '../protocol/errors.js';
import { writeLine, type IO } from './io.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { currentPathInputs, resolvePaths } from '../protocol/paths.js';
import { AUTOSTART_LOG } from '../node/daemon-spawn.js';

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
  const { message, hint } = inCliWords(err, io.env);
  writeLine(io.stderr, `tokenbroker: ${message}`);
  if (hint !== undefined && hint !== '') writeLine(io.stderr, `hint: ${hint}`);
  if (err instanceof BrokerError) writeLine(io.stderr, `(${err.code})`);
  if (debug && err instanceof Error && err.stack) writeLine(io.stderr, err.stack);
  if (debug && err instanceof Error && err.cause !== undefined) writeLine(io.stderr, `cause: ${String((err.cause as Error)?.stack ?? err.cause)}`);
}

/**
 * The CLI speaks of commands and flags (DESIGN section 7). The socket API's refusals of a request
 * (BROKER_BAD_REQUEST) name request bodies, JSON paths and byte limits: those are retold here. A
 * very long value (a pasted 8 KB URL) is shortened wherever a message echoes it.
 */
export function inCliWords(err: unknown, env: NodeJS.ProcessEnv = {}): { message: string; hint: string | undefined } {
  let message = err instanceof Error ? err.message : String(err);
  const rawHint = (err as { hint?: unknown } | null)?.hint;
  let hint = typeof rawHint === 'string' ? rawHint : undefined;
  if (err instanceof BrokerError && err.code === 'BROKER_BAD_REQUEST') {
    const reason = (err.details as { reason?: unknown } | undefined)?.reason;
    if (reason === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'An argument is far too long to be right (a URL, a token or a description).';
    else {
      message = message
        .replace(/^Invalid request (?:body|query|params|headers): /, '')
        .replace(/"(?:body|query|params|headers)\.([\w.]+)"/g, (_all, field: string) => `the ${field.split('.').pop() ?? field}`)
        .replace(/^the /, 'The ')
        .replace(/\brequest body\b/g, 'input');
    }
    if (hint === undefined || /JSON|\bbod(y|ies)\b|\bbytes\b|Content-Type|\bquery\b/i.test(hint)) hint = "Check the command's arguments (`tokenbroker COMMAND --help` lists them).";
  }
  if (err instanceof BrokerError && err.code === 'BROKER_INTERNAL' && (hint === undefined || hint.includes('journalctl'))) hint = `See the daemon's log (${daemonLogs(env)}) and report the problem.`;
  return { message: shortenLongValues(message), hint: hint === undefined ? undefined : shortenLongValues(hint) };
}

/** Any run of more than 200 non-space characters keeps its first 120 and says how long it was. */
export function shortenLongValues(text: string): string {
  return text.replace(/\S{201,}/g, (value) => `${value.slice(0, 120)}… (${value.length} characters)`);
}

/**
 * Where this user's daemon logs: a daemon the CLI started writes state/daemon.log; one a service
 * manager runs logs to its journal.
 */
function daemonLogs(env: NodeJS.ProcessEnv): string {
  const paths = resolvePaths({ ...currentPathInputs(), env });
  const autostartLog = path.join(paths.stateDir, AUTOSTART_LOG);
  const journal = process.platform === 'darwin' ? 'the launchd agent\'s log files (`tokenbroker service status`)' : '`journalctl --user -u tokenbroker`';
  return existsSync(autostartLog) ? `${autostartLog}, or ${journal} when the service runs it` : journal;
}
