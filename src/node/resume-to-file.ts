/**
 * The one resumable file writer: the daemon's `POST /v1/downloads` (through the DownloadFiles
 * port, src/node/download-files.ts) and the client library's streaming download both run it. It
 * carries out the pure decisions of src/protocol/resume-decisions.ts on the files of
 * src/node/part-files.ts: continue a trusted `.part` with Range + If-Range, start over on a 416
 * or a 200, hash sha1 and sha256 once over every byte (the resumed prefix included) while
 * writing in batches (one writev each), verify, fsync, and rename only the file it wrote. The
 * hashing is on this thread unless the caller passes other digests (the daemon: its hash worker).
 */
import { writev } from 'node:fs';
import { Writable } from 'node:stream';
import type { FileTransferAnswer, ResumeJob, ResumeOutcome } from '../broker/ports.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { serverChecksums } from '../protocol/file-digests.js';
import { firstMismatch, firstRequest, isShort, partInfoFor, planResponse, restartsAfter, verificationOf, type DigestMismatch } from '../protocol/resume-decisions.js';
import type { CheckedTarget } from './download-target.js';
import { commitPart, createPart, discardPart, openResumablePart, writePartInfo, type OpenPart } from './part-files.js';
import { onThreadDigests, type StreamDigests, type StreamDigestsFactory } from './stream-digests.js';

/** The sink accepts this much before it pushes back; writes batch up to it (one writev each). */
const SINK_HIGH_WATER = 1024 * 1024;
/** Reading back a resumed prefix for its digest: large reads, one buffer reused. */
const READ_BUFFER = 1024 * 1024;
/**
 * Bytes handed to the digests and not hashed yet before a write is acknowledged: digests that hash
 * elsewhere (the daemon's hash worker) may fall behind the disk, and the body must not pile up in
 * memory meanwhile.
 */
const HASH_BACKLOG_LIMIT = 8 * 1024 * 1024;

export async function resumeToFile(target: CheckedTarget, job: ResumeJob, newDigests: StreamDigestsFactory = onThreadDigests): Promise<ResumeOutcome> {
  const { signal } = job;
  const found = await openResumablePart(target);
  let existing: OpenPart | undefined = found?.part;
  const drop = async (): Promise<void> => {
    await existing?.handle.close().catch(() => undefined);
    existing = undefined;
    await discardPart(target);
  };
  const first = firstRequest(found === undefined ? undefined : { info: found.info, size: found.part.size }, job.key);
  if (first.discardExisting) await drop();
  let resumeFrom = first.resumeFrom;

  let answer: FileTransferAnswer;
  try {
    answer = await open(job, first.range === undefined ? {} : { range: first.range, ifRange: first.ifRange as string });
  } catch (err) {
    if (!restartsAfter(err, resumeFrom) || signal.aborted) {
      await existing?.handle.close().catch(() => undefined);
      throw err;
    }
    await drop();
    resumeFrom = 0;
    answer = await open(job, {});
  }

  // The body may break while the `.part` is being prepared: remember how, so the stream sees it.
  const early = watchBody(answer);
  const plan = planResponse(answer.status, answer.headers, resumeFrom);
  if (plan.kind === 'wrong-range') {
    answer.body.destroy();
    await drop();
    throw new BrokerError('BROKER_UPSTREAM_ERROR', {
      message: `The server resumed ${job.describe} at the wrong place (${plan.contentRange ?? 'no Content-Range'}); the partial file was removed.`,
      hint: 'Run the download again to start from the beginning.',
      details: { status: 206, reason: 'partial-content' },
    });
  }
  if (plan.kind === 'unexpected') {
    answer.body.destroy();
    await existing?.handle.close().catch(() => undefined);
    throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `Unexpected status ${plan.status} for a download.`, details: { status: plan.status } });
  }
  // A 200 after a resume request: If-Range said the file changed, the `.part` is worthless.
  if (plan.kind === 'fresh' && existing !== undefined) await drop();
  resumeFrom = plan.resumeFrom;
  const total = plan.total;

  const server = serverChecksums(answer.headers);
  const disagreeing = firstMismatch(job.expected, server);
  if (disagreeing !== undefined) {
    // The server's own checksum already disagrees with the expected one: not a byte is written.
    answer.body.destroy();
    await drop();
    throw mismatchError(disagreeing, job.describe, 'nothing was written');
  }

  const info = partInfoFor(job.key, answer.headers, total);
  let part: OpenPart;
  try {
    if (existing !== undefined) {
      await writePartInfo(target, info);
      part = existing;
    } else {
      part = await createPart(target, info);
    }
  } catch (err) {
    answer.body.destroy();
    await existing?.handle.close().catch(() => undefined);
    throw err;
  }

  job.onStart?.({ resumedFrom: resumeFrom, total });
  const hashes = newDigests();
  let received = resumeFrom;
  try {
    if (resumeFrom > 0) await readPrefix(part, resumeFrom, hashes);
    await stream(answer, early, part, hashes, signal, (bytes) => {
      received += bytes;
      job.onBytes?.(bytes);
    });
  } catch (err) {
    hashes.discard();
    await part.handle.close().catch(() => undefined);
    // A checksum abort (the daemon's relay on the client's path) means the bytes are wrong: keep nothing.
    if (isBrokerError(err, 'BROKER_CHECKSUM_MISMATCH')) await discardPart(target);
    throw keptError(signal.aborted ? signal.reason : err);
  }

  if (isShort(received, total)) {
    hashes.discard();
    await part.handle.close().catch(() => undefined);
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The download of ${job.describe} ended after ${received} of ${total} bytes.`, hint: 'Run it again to resume.', details: { reason: 'short-body' } });
  }
  let digests: { sha1: string; sha256: string };
  try {
    digests = await hashes.digest();
  } catch (err) {
    await part.handle.close().catch(() => undefined);
    throw hashingFailed(err);
  }
  const { verifiedBy, against } = verificationOf(job.expected, server);
  const wrong = firstMismatch(against, digests);
  if (wrong !== undefined) {
    await part.handle.close().catch(() => undefined);
    await discardPart(target);
    throw mismatchError(wrong, job.describe, 'the partial file was removed');
  }
  await commitPart(part, target, job.mode);
  return { bytes: received, sha1: digests.sha1, sha256: digests.sha256, verifiedBy, resumed: resumeFrom > 0, resumedFrom: resumeFrom, total };
}

async function open(job: ResumeJob, request: { range?: string; ifRange?: string }): Promise<FileTransferAnswer> {
  try {
    return await job.open(request, job.signal);
  } catch (err) {
    if (job.signal.aborted) throw job.signal.reason;
    throw err;
  }
}

export function mismatchError(m: DigestMismatch, url: string, what: string): BrokerError {
  return new BrokerError('BROKER_CHECKSUM_MISMATCH', {
    message: `The ${m.algorithm} of ${url} (${m.actual}) does not match the expected ${m.expected}; ${what}.`,
    details: { algorithm: m.algorithm, expected: m.expected, actual: m.actual },
  });
}

/** The error to answer with when the body broke off; the `.part` is kept for a resume. */
function keptError(cause: unknown): unknown {
  if (isBrokerError(cause)) return cause;
  const e = cause as { name?: string; code?: string } | undefined;
  // The caller's own abort (the client library's signal) stays what it was.
  if (e?.name === 'AbortError' || e?.code === 'ABORT_ERR') return cause;
  const code = e?.code;
  if (code === 'ENOSPC' || code === 'EIO' || code === 'EDQUOT' || code === 'EROFS') {
    return new BrokerError('BROKER_INTERNAL', { message: `Writing the download failed (${code}); the .part file is kept.`, hint: 'Free some space, then run the download again to resume.', cause });
  }
  return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: 'The download broke off; the .part file is kept.', hint: 'Run it again to resume.', details: { reason: 'upstream-aborted' }, cause });
}

/** The hashing itself failed (the daemon's hash worker stopped): the bytes on disk are fine. */
function hashingFailed(cause: unknown): BrokerError {
  if (isBrokerError(cause)) return cause;
  return new BrokerError('BROKER_INTERNAL', { message: 'Hashing the download failed; the .part file is kept.', hint: 'Run the download again to resume.', cause });
}

/** Hashes the first `size` bytes of the part file (a resumed download's prefix) before the new bytes. */
async function readPrefix(part: OpenPart, size: number, hashes: StreamDigests): Promise<void> {
  for (let position = 0; position < size; ) {
    // A buffer per read: digests may keep a chunk until they batch it, so none is reused.
    const buffer = Buffer.allocUnsafe(Math.min(READ_BUFFER, size - position));
    const { bytesRead } = await part.handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hashes.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
    if (hashes.backlog > HASH_BACKLOG_LIMIT) await hashes.caughtUp(HASH_BACKLOG_LIMIT).catch((err: unknown) => Promise.reject(hashingFailed(err)));
  }
}

/** Streams the body into the part file; resolves once every byte is written. */
function stream(answer: FileTransferAnswer, early: BodyWatch, part: OpenPart, hashes: StreamDigests, signal: AbortSignal, onBytes: (bytes: number) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sink = new PartSink(part.handle.fd, hashes, onBytes);
    let failure: unknown = early.failure;
    if (failure === undefined && early.broke) failure = brokeOff();
    const fail = (err: unknown): void => {
      failure ??= err;
      answer.body.unpipe(sink);
      answer.body.destroy();
      sink.destroy();
    };
    const onAbort = (): void => fail(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    if (failure !== undefined) {
      // Nothing was written: no writev can be under way.
      answer.body.destroy();
      sink.destroy();
      reject(failure);
      return;
    }
    answer.body.once('error', fail);
    answer.body.once('close', () => {
      // A body destroyed without an error (a dropped connection) must not look finished.
      if (!answer.body.readableEnded) fail(brokeOff());
    });
    sink.once('error', fail);
    sink.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      // The fd is closed after this: a writev still under way must finish first.
      void sink.settled().then(() => {
        if (failure === undefined && sink.writableFinished) resolve();
        else reject(failure ?? brokeOff());
      });
    });
    answer.body.pipe(sink);
  });
}

function brokeOff(): BrokerError {
  return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: 'The connection to the server broke during the download.', hint: 'Run it again to resume.', details: { reason: 'upstream-aborted' } });
}

interface BodyWatch {
  /** The body's error, if it failed before it was piped. */
  readonly failure: unknown;
  /** The body closed before its end, before it was piped. */
  readonly broke: boolean;
}

/** Records an error or an early close of the body until it is piped (and keeps an error from going unhandled). */
function watchBody(answer: FileTransferAnswer): BodyWatch {
  const watch = { failure: undefined as unknown, broke: false };
  answer.body.on('error', (err: unknown) => (watch.failure ??= err));
  answer.body.once('close', () => {
    if (!answer.body.readableEnded) watch.broke = true;
  });
  return watch;
}

/**
 * A Writable over the part file's fd: each chunk is hashed once as it arrives; chunks that arrive
 * while a write is under way are handed over together (`_writev`: one writev system call per batch).
 * A write is acknowledged once it is on disk and the digests are at most HASH_BACKLOG_LIMIT behind.
 */
class PartSink extends Writable {
  private pending = 0;
  private idle: (() => void) | undefined;

  constructor(
    private readonly fd: number,
    private readonly hashes: StreamDigests,
    private readonly onBytes: (bytes: number) => void,
  ) {
    super({ highWaterMark: SINK_HIGH_WATER, autoDestroy: true });
  }

  /** Resolves once no writev is under way. */
  settled(): Promise<void> {
    return this.pending === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.idle = resolve));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.hashes.update(chunk);
    this.pending += 1;
    writeAll(this.fd, [chunk], (err) => this.written(err, chunk.length, callback));
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    const buffers = new Array<Buffer>(chunks.length);
    let bytes = 0;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = (chunks[i] as { chunk: Buffer }).chunk;
      this.hashes.update(chunk);
      buffers[i] = chunk;
      bytes += chunk.length;
    }
    this.pending += 1;
    writeAll(this.fd, buffers, (err) => this.written(err, bytes, callback));
  }

  private written(err: Error | null, bytes: number, callback: (error?: Error | null) => void): void {
    this.pending -= 1;
    if (this.pending === 0) this.idle?.();
    if (err) {
      callback(err);
      return;
    }
    this.onBytes(bytes);
    if (this.hashes.backlog <= HASH_BACKLOG_LIMIT) {
      callback();
      return;
    }
    this.hashes.caughtUp(HASH_BACKLOG_LIMIT).then(
      () => callback(),
      (cause: unknown) => callback(hashingFailed(cause)),
    );
  }
}

/** writev may write less than asked (signals, some filesystems): continue with the rest. */
function writeAll(fd: number, chunks: Buffer[], done: (err: Error | null) => void): void {
  writev(fd, chunks, (err, written) => {
    if (err) {
      done(err);
      return;
    }
    let left = written;
    let i = 0;
    while (i < chunks.length && left >= (chunks[i] as Buffer).length) {
      left -= (chunks[i] as Buffer).length;
      i += 1;
    }
    if (i === chunks.length) {
      done(null);
      return;
    }
    const rest = chunks.slice(i);
    rest[0] = (rest[0] as Buffer).subarray(left);
    writeAll(fd, rest, done);
  });
}
