import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { SHA1_HEX, SHA256_HEX } from '../../protocol/fetch.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../errors.js';
import { writeLine } from '../io.js';
import { formatBytes, ProgressBar } from '../progress.js';

export interface FetchCommandOptions {
  output?: string;
  sha1?: string;
  sha256?: string;
}

const OptionsSchema = z.object({
  output: z.string().min(1, 'must be a file name').optional(),
  sha1: z.string().regex(SHA1_HEX, 'must be 40 hexadecimal characters').transform((v) => v.toLowerCase()).optional(),
  sha256: z.string().regex(SHA256_HEX, 'must be 64 hexadecimal characters').transform((v) => v.toLowerCase()).optional(),
});

export function registerFetchCommand(program: Command, ctx: CliContext): void {
  program
    .command('fetch')
    .description('download a URL through the daemon (the token is added where the policy allows)')
    .argument('<url>', 'absolute URL under a configured server prefix')
    .option('-o, --output <file>', 'save to FILE (via FILE.part: resumed on the next run, renamed when complete and verified)')
    .option('--sha1 <hex>', 'verify the SHA-1 of the whole file')
    .option('--sha256 <hex>', 'verify the SHA-256 of the whole file')
    .action(async (url: string, options: FetchCommandOptions) => runFetch(url, options, ctx));
}

/**
 * `tokenbroker fetch URL [-o FILE] [--sha1 H] [--sha256 H]`. Exit 4 (token), 5 (upstream) and
 * 6 (checksum) come from the error registry through the one exit-code mapping.
 */
export async function runFetch(url: string, raw: FetchCommandOptions, ctx: CliContext): Promise<void> {
  const parsed = OptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`--${String(issue?.path[0] ?? 'option')} ${issue?.message ?? 'is not valid'}.`, 'Copy the digest from the release notes or the X-Checksum-Sha256 header.');
  }
  const options = parsed.data;
  const digests = { ...(options.sha1 === undefined ? {} : { sha1: options.sha1 }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) };
  const { io } = ctx;
  const bar = io.stderrIsTTY ? new ProgressBar(io.stderr) : undefined;

  if (options.output !== undefined) {
    await downloadWithProgress(ctx, options.output, (onProgress) => ctx.client().download(url, path.resolve(options.output as string), { ...digests, onProgress }));
    return;
  }

  if (io.stdoutIsTTY) {
    throw new UsageError('Refusing to write the download to the terminal.', `Save it with -o FILE, or redirect it: tokenbroker fetch ${url} > FILE`);
  }
  const result = await ctx.client().fetch(url, digests);
  const total = result.headers['content-length'] === undefined ? undefined : Number(result.headers['content-length']);
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback) {
      received += chunk.length;
      bar?.update(received, total);
      callback(null, chunk);
    },
  });
  try {
    // stdout is not ours to end: the process does that when it exits.
    await pipeline(result.body, counter, io.stdout, { end: false });
    bar?.done(received, total);
  } catch (err) {
    bar?.abandon();
    throw err;
  }
}

/**
 * Runs a resumable download with the progress bar (bytes, rate, ETA) on stderr when it is a
 * terminal, and a one-line summary there afterwards. Shared by `fetch -o` and `apps download`.
 */
export async function downloadWithProgress<R extends { size: number; resumed: boolean; sha256: string }>(
  ctx: CliContext,
  label: string,
  run: (onProgress: (p: { received: number; total?: number | undefined; resumedFrom: number }) => void) => Promise<R>,
): Promise<R> {
  const { io } = ctx;
  const bar = io.stderrIsTTY ? new ProgressBar(io.stderr) : undefined;
  let last = { received: 0, total: undefined as number | undefined, resumedFrom: 0 };
  try {
    const result = await run((p) => {
      last = { received: p.received, total: p.total, resumedFrom: p.resumedFrom };
      bar?.update(p.received, p.total, p.resumedFrom);
    });
    bar?.done(result.size, last.total ?? result.size, last.resumedFrom);
    if (io.stderrIsTTY) writeLine(io.stderr, `saved ${label} (${formatBytes(result.size)}${result.resumed ? ', resumed' : ''}, sha256 ${result.sha256})`);
    return result;
  } catch (err) {
    bar?.abandon();
    throw err;
  }
}
