import type { ReadStream } from 'node:tty';
import { MAX_TOKEN_BYTES } from '../protocol/token.js';
import { UsageError } from './errors.js';
import type { IO } from './io.js';

/**
 * Reads a secret the safe way: a hidden prompt on a terminal, else all of stdin (a single trailing
 * newline is trimmed). Never from argv, where `ps` and shell history would see it.
 */
export async function readSecret(io: IO, prompt: string): Promise<string> {
  const secret = io.stdinIsTTY ? await promptHidden(io, prompt) : trimOneNewline(await readAll(io, MAX_TOKEN_BYTES * 2));
  if (secret === '') {
    throw new UsageError(
      io.stdinIsTTY ? 'No token entered.' : 'No token on standard input.',
      'Paste the identity token at the prompt, or pipe it in: `tokenbroker token set < token.txt`.',
    );
  }
  return secret;
}

export function trimOneNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

async function readAll(io: IO, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > limit) throw new UsageError('Standard input is too large to be an identity token.', 'Pipe in the token alone.');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Raw-mode prompt: nothing is echoed; backspace edits; Ctrl-C / Ctrl-D cancel. */
function promptHidden(io: IO, prompt: string): Promise<string> {
  const stdin = io.stdin as ReadStream;
  io.stderr.write(prompt);
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      stdin.off('data', onData);
      if (typeof stdin.setRawMode === 'function') stdin.setRawMode(false);
      stdin.pause();
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003' || ch === '\u0004') return finish(new UsageError('Cancelled.'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    if (typeof stdin.setRawMode === 'function') stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** A yes/no question on the terminal (default no). */
export function confirm(io: IO, question: string): Promise<boolean> {
  io.stderr.write(`${question} [y/N] `);
  return new Promise<boolean>((resolve) => {
    const onData = (chunk: Buffer | string): void => {
      io.stdin.off('data', onData);
      io.stdin.pause();
      resolve(/^\s*y(es)?\s*$/i.test(chunk.toString()));
    };
    io.stdin.on('data', onData);
    io.stdin.resume();
  });
}
