import type { Readable, Writable } from 'node:stream';
import type { Layout } from './table.js';

/**
 * The command's view of the terminal. Commands never touch process.stdout directly, so tests pass
 * buffers and check what a user would see; TTY flags decide colour, tables, prompts and progress.
 */
export interface IO {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  stdinIsTTY: boolean;
  env: NodeJS.ProcessEnv;
}

export function processIO(): IO {
  quietOnClosedPipe(process.stdout);
  quietOnClosedPipe(process.stderr);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    stdinIsTTY: process.stdin.isTTY === true,
    env: process.env,
  };
}

export function writeLine(stream: Writable, line = ''): void {
  stream.write(`${line}\n`);
}

/** Stable machine output for --json: two-space indented, newline-terminated. */
export function writeJson(stream: Writable, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * A reader that went away (`tokenbroker status | head -1`) ends the command quietly with exit 0,
 * like any Unix tool: nothing more can be shown, and a stack trace about it helps nobody.
 */
export function isClosedPipe(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
}

function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err) => {
    if (isClosedPipe(err)) process.exit(0);
    throw err;
  });
}

/**
 * The terminal's width: COLUMNS when set (the user's explicit choice), else what the terminal
 * reports, else 80.
 */
export function terminalWidth(io: IO): number {
  const fromEnv = Number(io.env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  const columns = (io.stdout as { columns?: unknown }).columns;
  return typeof columns === 'number' && columns > 0 ? columns : 80;
}

/** The one output layout of every command (DESIGN section 7). */
export function layoutOf(io: IO): Layout {
  return { tty: io.stdoutIsTTY, width: io.stdoutIsTTY ? terminalWidth(io) : Number.POSITIVE_INFINITY };
}

/**
 * Writes human text: on a terminal each line is wrapped at the terminal's width (continuations
 * indented under the line's own indentation); piped, lines go out whole.
 */
export function writeLines(io: IO, lines: readonly string[], stream: Writable = io.stdout): void {
  const layout = layoutOf(io);
  for (const line of lines) for (const part of layout.tty ? wrapLine(line, layout.width) : [line]) writeLine(stream, part);
}

/** Word-wraps one line at `width`; a word longer than the line is cut where it must be. */
export function wrapLine(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const indent = ' '.repeat(Math.min(/^ */.exec(line)?.[0].length ?? 0, Math.floor(width / 2)) + 2);
  const parts: string[] = [];
  let rest = line;
  let prefix = '';
  while ((prefix + rest).length > width) {
    const room = width - prefix.length;
    const space = rest.lastIndexOf(' ', room);
    const cut = space > (/^ */.exec(rest)?.[0].length ?? 0) ? space : room;
    parts.push((prefix + rest.slice(0, cut)).trimEnd());
    rest = rest.slice(cut).trimStart();
    prefix = indent;
  }
  if (rest !== '') parts.push(prefix + rest);
  return parts;
}
