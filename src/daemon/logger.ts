import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/**
 * Every path where a secret could end up in a log object. Redaction is the safety net: the token
 * is never put into a log object on purpose, but a request or error object might carry one.
 */
export const REDACT_PATHS = [
  'token',
  'secret',
  'password',
  'authorization',
  '*.token',
  '*.secret',
  '*.password',
  '*.authorization',
  '*.*.token',
  '*.*.authorization',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  'res.headers["set-cookie"]',
  'upstream.headers.authorization',
];

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Defaults to stderr; tests pass an in-memory stream. */
  destination?: DestinationStream;
  /**
   * Applied to every serialized line (the SecretScrubber): a token inside a message or an error
   * text, where no redact path reaches, becomes `[redacted]`.
   */
  scrub?: (line: string) => string;
}

/** JSON lines to stderr, with redaction set once here for every child logger. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(options.scrub === undefined ? {} : { hooks: { streamWrite: options.scrub } }),
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
