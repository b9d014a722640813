import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { SHA1_HEX, SHA256_HEX } from '../../protocol/fetch.js';
import { artifactFileName } from '../../protocol/artifact-url.js';
import type { VerifiedBy } from '../../protocol/downloads.js';
import { isBrokerError } from '../../protocol/errors.js';
import { openDownloadTarget } from '../../node/download-target.js';
import { partPathOf } from '../../node/part-files.js';
import { SilentExit } from '../errors.js';
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
    .option('-o, --output <file>', 'save to FILE (via FILE.part: resumed on the next run, renamed when complete and verified); an existing DIR saves inside it under the URL\'s file name; - is stdout')
    .option('--sha1 <hex>', 'verify the SHA-1 of the whole file')
    .option('--sha256 <hex>', 'verify the SHA-256 of the whole file')
    .action(async (url: string, options: FetchCommandOptions) => runFetch(url, options, ctx));
}

/**
 * `tokenbroker fetch URL [-o FILE] [--sha1 H] [--sha256 H]`. Exit 4 (token), 5 (upstream) and
 * 6 (checksum) come from the error registry through the one exit-code mapping.
 */
export async function runFetch(url: string, raw: FetchCommandOptions, ctx: CliContext): Promise<void> {
  checkUrlLength(url, MAX_FETCH_URL_CHARS);
  const parsed = OptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`--${String(issue?.path[0] ?? 'option')} ${issue?.message ?? 'is not valid'}.`, 'Copy the digest from the release notes or the X-Checksum-Sha256 header.');
  }
  const options = parsed.data;
  const digests = { ...(options.sha1 === undefined ? {} : { sha1: options.sha1 }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) };
  const { io } = ctx;

  if (options.output !== undefined && options.output !== '-') {
    // An existing FIFO or character device (-o /dev/null) is streamed into, as curl does: no .part, no rename, no resume.
    const device = await openStreamTarget(options.output);
    if (device !== undefined) {
      // The stream closes the descriptor when it ends (or fails).
      await streamBody(ctx, url, digests, device.createWriteStream(), true);
      return;
    }
    const dest = await outputFile(options.output, url);
    const result = await downloadWithProgress(ctx, dest, (onProgress, signal) => ctx.client().download(url, dest, { ...digests, ...(onProgress === undefined ? {} : { onProgress }), signal }), partPathOf(dest));
    // The result of the command, as `apps download` prints it: the saved file's path, piped or not.
    writeLine(io.stdout, result.path);
    return;
  }

  if (io.stdoutIsTTY) {
    throw new UsageError('Refusing to write the download to the terminal.', `Save it with -o FILE, or redirect it: tokenbroker fetch ${url} > FILE`);
  }
  // stdout is not ours to end: the process does that when it exits.
  await streamBody(ctx, url, digests, io.stdout, false);
}

/** Streams the (daemon-verified) body into `sink` with the progress bar on a terminal stderr. */
async function streamBody(ctx: CliContext, url: string, digests: { sha1?: string; sha256?: string }, sink: NodeJS.WritableStream, end: boolean): Promise<void> {
  const bar = ctx.io.stderrIsTTY ? new ProgressBar(ctx.io.stderr) : undefined;
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
    await pipeline(result.body, counter, sink, { end });
    bar?.done(received, total);
  } catch (err) {
    bar?.abandon();
    throw err;
  }
}

/** The socket API's limit on a fetched URL (FetchQuerySchema). */
const MAX_FETCH_URL_CHARS = 16_384;

/** A URL far beyond any real one is refused before it is sent, in the CLI's words. */
export function checkUrlLength(url: string, max: number): void {
  if (url.length > max) throw new UsageError(`The URL is ${url.length} characters long; tokenbroker accepts URLs of at most ${max}.`, 'Check what was pasted: an Artifactory file URL is a few hundred characters at most.');
}

/**
 * `-o OUTPUT` when it is an existing FIFO or character device: opened for writing (no create, no
 * truncate), and checked again on the open descriptor (a file swapped in meanwhile is refused, never
 * overwritten in place). Undefined for anything else (a regular file, a directory, nothing).
 */
export async function openStreamTarget(output: string): Promise<FileHandle | undefined> {
  const resolved = path.resolve(output);
  const before = await stat(resolved).catch(() => undefined);
  if (before === undefined || !(before.isFIFO() || before.isCharacterDevice())) return undefined;
  const handle = await open(resolved, constants.O_WRONLY);
  const opened = await handle.stat();
  if (!(opened.isFIFO() || opened.isCharacterDevice()) || opened.ino !== before.ino || opened.dev !== before.dev) {
    await handle.close();
    throw new UsageError(`${resolved} changed while it was opened; nothing was written.`, 'Run the command again.');
  }
  return handle;
}

/**
 * Where `fetch -o OUTPUT` writes: OUTPUT itself, or, when it is an existing directory (or ends in
 * a slash), OUTPUT/<the URL's canonical file name>. Checked before any byte is fetched: a missing
 * parent or an unwritable directory is an error with a hint, never a raw ENOENT/EISDIR.
 */
export async function outputFile(output: string, url: string): Promise<string> {
  const resolved = path.resolve(output);
  const isDir = output.endsWith('/') || (await stat(resolved).catch(() => undefined))?.isDirectory() === true;
  let dest = resolved;
  if (isDir) {
    const name = artifactFileName(url);
    if (name === undefined) throw new UsageError(`Cannot tell a file name from the URL to save it in ${resolved}.`, `Give the file name too: -o ${path.join(output, 'FILE')}`);
    dest = path.join(resolved, name);
  }
  try {
    await (await openDownloadTarget(dest)).release();
  } catch (err) {
    if (isBrokerError(err)) throw new UsageError(err.message, err.hint);
    throw err;
  }
  return dest;
}

/**
 * Runs a resumable download with the progress bar (bytes, rate, ETA) on stderr when it is a
 * terminal, and a one-line summary there afterwards. Shared by `fetch -o` and `apps download`.
 * Ctrl-C cancels the download, says that `partFile` is kept and how to resume, and exits 130.
 */
export async function downloadWithProgress<R extends { size: number; resumed: boolean; sha256: string; verifiedBy: VerifiedBy; path: string }>(
  ctx: CliContext,
  label: string,
  /** `onProgress` is undefined when nothing shows it (stderr not a terminal): no progress polling then. */
  run: (onProgress: ((p: { received: number; total?: number | undefined; resumedFrom: number }) => void) | undefined, signal: AbortSignal) => Promise<R>,
  partFile?: string,
): Promise<R> {
  const { io } = ctx;
  const bar = io.stderrIsTTY ? new ProgressBar(io.stderr) : undefined;
  let last = { received: 0, total: undefined as number | undefined, resumedFrom: 0 };
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  process.once('SIGINT', onInterrupt);
  try {
    const onProgress =
      bar === undefined
        ? undefined
        : (p: { received: number; total?: number | undefined; resumedFrom: number }): void => {
            last = { received: p.received, total: p.total, resumedFrom: p.resumedFrom };
            bar.update(p.received, p.total, p.resumedFrom);
          };
    const result = await run(onProgress, controller.signal);
    bar?.done(result.size, last.total ?? result.size, last.resumedFrom);
    if (io.stderrIsTTY) writeLine(io.stderr, `saved ${label} (${formatBytes(result.size)}${result.resumed ? ', resumed' : ''}, sha256 ${result.sha256})`);
    if (result.verifiedBy === 'none') writeLine(io.stderr, `warning: ${result.path} was not verified: no checksum was given and the server sent none (pass --sha256 to check it).`);
    return result;
  } catch (err) {
    bar?.abandon();
    if (controller.signal.aborted) {
      writeLine(io.stderr, `interrupted: ${partFile ?? 'the .part file'} is kept; run the same command again to resume.`);
      throw new SilentExit(130);
    }
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
