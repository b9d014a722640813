import { PassThrough } from 'node:stream';
import type { IO } from '../../src/cli/io.js';

/** IO for in-process CLI runs: captured stdout/stderr, no TTY unless asked, the given environment. */
export function bufferIO(env: NodeJS.ProcessEnv = {}, tty: { stdout?: boolean; stderr?: boolean } = {}): IO & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { stdout, stderr, stdin: new PassThrough(), stdoutIsTTY: tty.stdout ?? false, stderrIsTTY: tty.stderr ?? false, stdinIsTTY: false, env, out: () => out, err: () => err };
}
