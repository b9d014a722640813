import type { ReadStream } from 'node:tty';
import { MAX_TOKEN_BYTES, TokenSecretSchema } from '../protocol/token.js';
import { UsageError } from './errors.js';
import type { IO } from './io.js';

/**
 * Reads a secret the safe way: a hidden prompt on a terminal, else all of stdin. Surrounding
 * whitespace and blank lines are trimmed (a pasted token often comes with them; tokens contain
 * none). Never from argv, where `ps` and shell history would see it. Checked here, so a problem is
 * told in the CLI's words, not the socket API's.
 */
export async function readSecret(io: IO, prompt: string): Promise<string> {
  const secret = (io.stdinIsTTY ? await promptHidden(io, prompt) : await readAll(io, MAX_TOKEN_BYTES * 2)).trim();
  const how = 'Paste the identity token at the prompt, or pipe it in: `tokenbroker token set < token.txt`.';
  if (secret === '') throw new UsageError(io.stdinIsTTY ? 'No token entered.' : 'No token on standard input.', how);
  const checked = TokenSecretSchema.safeParse(secret);
  if (!checked.success) throw new UsageError(`The token ${checked.error.issues[0]?.message ?? 'is not valid'}.`, how);
  return secret;
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
