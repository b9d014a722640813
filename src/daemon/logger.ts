import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { REDACTED } from '../broker/secret-scrubber.js';

export type { Logger } from 'pino';

const CENSOR = REDACTED;
/**
 * Keys whose values are secrets wherever they appear, compared without regard to case: the one
 * redaction of log objects (log calls and child-logger bindings alike; a list of fixed pino redact
 * paths would only repeat a subset of it). The token is never put into a log object on purpose;
 * this is the safety net, and the SecretScrubber on every line is the last one.
 */
const SECRET_KEY = /^(token|secret|password|authorization|proxy-authorization|cookie|set-cookie|x-jfrog-art-api)$/i;
/** Deeper than any object we log; a cycle or a huge structure stops here. */
const MAX_DEPTH = 8;

/**
 * A copy of a log object with every secret-named key censored, at any depth and in any case
 * (`Authorization`, `headers.Cookie`, `a.b.c.authorization`). Only plain objects and arrays are
 * walked: errors and buffers keep their own serializers.
 */
export function redactSecretKeys(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactSecretKeys(item, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = SECRET_KEY.test(key) ? CENSOR : redactSecretKeys(item, depth + 1);
  return copy;
}

export interface LoggerOptions {
  level: LevelWithSilent;
  /** Defaults to stderr (human-readable lines on a terminal, JSON otherwise); tests pass an in-memory stream. */
  destination?: DestinationStream;
  /**
   * Applied to every serialized line (the SecretScrubber): a token inside a message or an error
   * text, where no redact path reaches, becomes `[redacted]`.
   */
  scrub?: (line: string) => string;
}

/** JSON lines (or readable lines on a terminal) to stderr, with redaction set once here for every child logger. */
export function createLogger(options: LoggerOptions): Logger {
  return redactingChildBindings(pino(
    {
      level: options.level,
      base: { pid: process.pid },
      formatters: {
        log: (object) => redactSecretKeys(object) as Record<string, unknown>,
        bindings: (bindings) => redactSecretKeys(bindings) as Record<string, unknown>,
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(options.scrub === undefined ? {} : { hooks: { streamWrite: options.scrub } }),
    },
    options.destination ?? (process.stderr.isTTY ? humanDestination(process.stderr) : pino.destination({ fd: 2, sync: false })),
  ));
}

/**
 * pino serialises a child's bindings once, without the `bindings` formatter: they get the same
 * any-depth redaction here. A child is created from its parent's prototype chain, so every
 * descendant (fastify's request loggers included) inherits this `child`.
 */
function redactingChildBindings(logger: Logger): Logger {
  const original = logger.child;
  logger.child = function child(this: Logger, bindings, childOptions) {
    return original.call(this, redactSecretKeys(bindings) as typeof bindings, childOptions);
  } as Logger['child'];
  return logger;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has; the human form shows them in its own way. */
const FIXED_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/**
 * One pino JSON line as a person reads it on a terminal: `12:03:04 WARN  message key=value ...`.
 * Redaction already happened: this only reformats.
 */
export function formatHumanLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const level = (LEVEL_NAMES[entry.level as number] ?? String(entry.level)).padEnd(5);
  const fields = Object.entries(entry)
    .filter(([key]) => !FIXED_FIELDS.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? (/\s/.test(value) ? JSON.stringify(value) : value) : JSON.stringify(value)}`);
  return [time, level, String(entry.msg ?? ''), ...fields].filter((part) => part !== '').join(' ');
}

/** A pino destination that writes human-readable lines to a terminal stream. */
export function humanDestination(stream: NodeJS.WritableStream): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') stream.write(`${formatHumanLine(line)}\n`);
    },
  };
}
