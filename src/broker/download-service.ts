import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { DEFAULT_UMASK, downloadCancelled, isDownloadCancelled, type DownloadOutcome, type DownloadProgressView, type DownloadRequestInput, type DownloadState, type PartInfo, type VerifiedBy } from '../protocol/downloads.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { FileDigests, serverChecksums } from '../protocol/file-digests.js';
import type { EventBus } from './event-bus.js';
import type { FetchResponse, FetchService } from './fetch-service.js';
import type { TokenUse } from './upstream-exchange.js';
import type { Clock, DomainLog, DownloadFiles, PartFile } from './ports.js';
import { describeArtifactUrl as describeUrl } from '../protocol/artifact-url.js';

export interface DownloadServiceDeps {
  fetch: Pick<FetchService, 'fetch'>;
  files: DownloadFiles;
  events: EventBus;
  clock: Clock;
  log: DomainLog;
  /** `{source, app, version?}` → the tarball URL and the index's sha1 (one small function in main.ts). */
  resolveApp(source: string, app: string, version: string | undefined): DownloadSource;
}

/** What to download: a URL, or an app's tarball (with the index's sha1, and no token for a third party's). */
export interface DownloadSource {
  url: string;
  shasum?: string | undefined;
  token?: TokenUse | undefined;
}

/** Where the request came from: an extra listener may only write under its `downloadDirs`. */
export interface DownloadCaller {
  allowedDirs?: readonly string[] | undefined;
  /** Aborted when the caller's connection closes: the download stops, its `.part` is kept. */
  signal: AbortSignal;
}

/** At most this many `download.progress` events per second per download. */
export const PROGRESS_EVENTS_PER_SECOND = 10;
/** Finished downloads stay visible to `GET /v1/downloads/:id` for the last this many. */
const FINISHED_KEPT = 200;
/** The sink accepts this much before it pushes back; writes batch up to it (one writev each). */
const SINK_HIGH_WATER = 1024 * 1024;
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

interface Running {
  view: DownloadProgressView;
  controller: AbortController;
  lastEventAt: number;
}

/**
 * `POST /v1/downloads`: the daemon writes the file itself, on top of FetchService.fetch() (the
 * same policy, token and upstream handling as `/v1/fetch`). It resumes a trusted `.part` with
 * Range + If-Range, hashes sha1 and sha256 once over every byte (the resumed prefix included)
 * while writing in batches, verifies, fsyncs and renames. The fetch is asked for no digest: a
 * digest cannot be combined with a Range, and hashing here avoids a second pass.
 */
export class DownloadService {
  private readonly downloads = new Map<string, Running>();
  private readonly busyTargets = new Map<string, string>();

  constructor(private readonly deps: DownloadServiceDeps) {}

  /** Progress of a running or recent download. */
  get(id: string): DownloadProgressView | undefined {
    const found = this.downloads.get(id);
    return found === undefined ? undefined : { ...found.view };
  }

  /** Cancels a running download (its `.part` is kept); undefined when the id is unknown. */
  cancel(id: string): DownloadProgressView | undefined {
    const found = this.downloads.get(id);
    if (found === undefined) return undefined;
    if (found.view.state === 'running') {
      found.controller.abort(downloadCancelled());
      found.view.state = 'cancelled';
    }
    return { ...found.view };
  }

  /** Runs one download to its end; rejects with a BrokerError (the `.part` is kept unless the bytes were wrong). */
  async download(request: DownloadRequestInput, caller: DownloadCaller): Promise<DownloadOutcome> {
    const id = request.id ?? randomUUID();
    if (this.downloads.get(id)?.view.state === 'running') {
      throw new BrokerError('BROKER_BAD_REQUEST', { message: `A download with the id ${id} is already running.`, hint: 'Use a new id for each download.', details: { field: 'body.id' } });
    }
    const resolved = this.source(request);
    const target = await this.deps.files.target(request.path, caller.allowedDirs);
    const other = this.busyTargets.get(target);
    if (other !== undefined) {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: `${target} is already being downloaded (download ${other}).`,
        hint: 'Wait for it to finish, or cancel it with DELETE /v1/downloads/<id>.',
        details: { field: 'body.path', reason: 'busy' },
      });
    }
    const controller = new AbortController();
    const onCallerGone = (): void => controller.abort(downloadCancelled('The client went away; the download stopped and its .part file is kept.'));
    if (caller.signal.aborted) onCallerGone();
    caller.signal.addEventListener('abort', onCallerGone, { once: true });
    const running: Running = { view: { id, path: target, received: 0, total: null, resumedFrom: 0, state: 'running' }, controller, lastEventAt: -Infinity };
    this.remember(id, running);
    this.busyTargets.set(target, id);
    try {
      const outcome = await this.run(id, target, resolved, request, running);
      this.end(running, 'done', { bytes: outcome.bytes, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed });
      return outcome;
    } catch (err) {
      const error = isBrokerError(err) ? err : new BrokerError('BROKER_INTERNAL', { cause: err });
      this.end(running, isDownloadCancelled(error) ? 'cancelled' : 'failed', { error: { code: error.code, message: error.message } });
      throw error;
    } finally {
      caller.signal.removeEventListener('abort', onCallerGone);
      this.busyTargets.delete(target);
    }
  }

  private source(request: DownloadRequestInput): DownloadSource {
    if (request.url !== undefined) return { url: request.url };
    return this.deps.resolveApp(request.source as string, request.app as string, request.version);
  }

  private async run(id: string, target: string, source: DownloadSource, request: DownloadRequestInput, running: Running): Promise<DownloadOutcome> {
    const { files } = this.deps;
    const signal = running.controller.signal;
    const expected = { sha1: request.sha1 ?? source.shasum?.toLowerCase(), sha256: request.sha256 };
    const key = partKey(source.url);

    let existing = await files.resumable(target);
    if (existing !== undefined && (existing.info.url !== key || validatorOf(existing.info) === undefined || existing.part.size === 0)) {
      // Not ours to continue (another URL, nothing to check the server's copy against): start over.
      await existing.part.close();
      await files.discard(target);
      existing = undefined;
    }

    let resumeFrom = existing?.part.size ?? 0;
    let response: FetchResponse;
    try {
      response = await this.open(source, resumeFrom > 0 ? { range: `bytes=${resumeFrom}-`, 'if-range': validatorOf(existing?.info) as string } : {}, signal);
    } catch (err) {
      // 416: the `.part` is no prefix of the file any more (or all of it): start over.
      if (resumeFrom === 0 || !isBrokerError(err, 'BROKER_UPSTREAM_ERROR') || err.details?.status !== 416) throw await this.keep(existing?.part, err, signal);
      await existing?.part.close();
      await files.discard(target);
      existing = undefined;
      resumeFrom = 0;
      response = await this.open(source, {}, signal);
    }

    let total: number | undefined;
    if (response.status === 206 && resumeFrom > 0) {
      const range = CONTENT_RANGE.exec(response.headers['content-range'] ?? '');
      if (range === null || Number(range[1]) !== resumeFrom) {
        response.clientGone();
        await existing?.part.close();
        await files.discard(target);
        throw new BrokerError('BROKER_UPSTREAM_ERROR', {
          message: `The server resumed ${describeUrl(source.url)} at the wrong place (${response.headers['content-range'] ?? 'no Content-Range'}); the partial file was removed.`,
          hint: 'Run the download again to start from the beginning.',
          details: { status: 206, reason: 'partial-content' },
        });
      }
      total = range[3] === '*' ? undefined : Number(range[3]);
    } else if (response.status === 200) {
      if (existing !== undefined) {
        // If-Range said the file changed: the `.part` is worthless.
        await existing.part.close();
        await files.discard(target);
        existing = undefined;
      }
      resumeFrom = 0;
      const length = response.headers['content-length'];
      total = length === undefined ? undefined : Number(length);
    } else {
      response.clientGone();
      throw await this.keep(existing?.part, new BrokerError('BROKER_UPSTREAM_ERROR', { message: `Unexpected status ${response.status} for a download.`, details: { status: response.status } }), signal);
    }

    const serverDigests = serverChecksums(response.headers);
    const early = firstMismatch(expected, serverDigests);
    if (early !== undefined) {
      // The server's own checksum already disagrees with the expected one: not a byte is written.
      response.clientGone();
      await existing?.part.close();
      await files.discard(target);
      throw this.mismatch(early, source.url, 'nothing was written');
    }

    const info: PartInfo = {
      url: key,
      ...(response.headers.etag === undefined ? {} : { etag: response.headers.etag }),
      ...(response.headers['last-modified'] === undefined ? {} : { lastModified: response.headers['last-modified'] }),
      ...(total === undefined ? {} : { total }),
    };
    let part: PartFile;
    try {
      if (existing !== undefined) {
        await files.writeInfo(target, info);
        part = existing.part;
      } else {
        part = await files.create(target, info);
      }
    } catch (err) {
      response.clientGone();
      await existing?.part.close();
      throw err;
    }

    running.view.resumedFrom = resumeFrom;
    running.view.received = resumeFrom;
    running.view.total = total ?? null;
    const hashes = new FileDigests();
    try {
      if (resumeFrom > 0) await part.readExisting((chunk) => hashes.update(chunk));
      await this.stream(response, part, hashes, running, signal);
    } catch (err) {
      throw await this.keep(part, err, signal);
    }

    const received = running.view.received;
    if (total !== undefined && received !== total) {
      throw await this.keep(part, new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: `The download of ${describeUrl(source.url)} ended after ${received} of ${total} bytes.`, hint: 'Run it again to resume.', details: { reason: 'short-body' } }), signal);
    }
    const digests = hashes.digest();
    const verifiedBy: VerifiedBy = expected.sha1 !== undefined || expected.sha256 !== undefined ? 'shasum' : serverDigests.sha1 !== undefined || serverDigests.sha256 !== undefined ? 'server-checksum' : 'none';
    const wrong = firstMismatch(verifiedBy === 'shasum' ? expected : serverDigests, digests);
    if (wrong !== undefined) {
      await part.close();
      await files.discard(target);
      throw this.mismatch(wrong, source.url, 'the partial file was removed');
    }
    await part.commit(0o666 & ~(request.umask ?? DEFAULT_UMASK));
    return { id, path: target, bytes: received, sha1: digests.sha1, sha256: digests.sha256, verifiedBy, resumed: resumeFrom > 0 };
  }

  private async open(source: DownloadSource, headers: Record<string, string>, signal: AbortSignal): Promise<FetchResponse> {
    try {
      return await this.deps.fetch.fetch({ requestId: randomUUID(), url: source.url, headers, signal, token: source.token });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    }
  }

  /** Streams the body into the part file; resolves once every byte is written. */
  private stream(response: FetchResponse, part: PartFile, hashes: FileDigests, running: Running, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const sink = new PartSink(part, hashes, (bytes) => this.progress(running, bytes));
      const onAbort = (): void => {
        response.clientGone();
        sink.destroy(signal.reason as Error);
      };
      if (signal.aborted) {
        onAbort();
      } else {
        signal.addEventListener('abort', onAbort, { once: true });
      }
      sink.once('finish', () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      sink.once('close', () => {
        signal.removeEventListener('abort', onAbort);
        if (!sink.writableFinished) reject(signal.aborted ? signal.reason : (sink.failure ?? new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: 'The connection to the server broke during the download.', hint: 'Run it again to resume.', details: { reason: 'upstream-aborted' } })));
      });
      sink.on('error', () => undefined);
      response.send(sink);
    });
  }

  /** Keeps the `.part` for a resume and turns `err` into the error to answer with. */
  private async keep(part: PartFile | undefined, err: unknown, signal: AbortSignal): Promise<BrokerError> {
    await part?.close().catch(() => undefined);
    const cause = signal.aborted ? signal.reason : err;
    if (isBrokerError(cause)) return cause;
    const code = (cause as { code?: string } | undefined)?.code;
    if (code === 'ENOSPC' || code === 'EIO' || code === 'EDQUOT' || code === 'EROFS') {
      return new BrokerError('BROKER_INTERNAL', { message: `Writing the download failed (${code}); the .part file is kept.`, hint: 'Free some space, then run the download again to resume.', cause });
    }
    return new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { message: 'The download broke off; the .part file is kept.', hint: 'Run it again to resume.', details: { reason: 'upstream-aborted' }, cause });
  }

  private mismatch(m: { algorithm: 'sha1' | 'sha256'; expected: string; actual: string }, url: string, what: string): BrokerError {
    this.deps.log.warn({ url: describeUrl(url), algorithm: m.algorithm, expected: m.expected, actual: m.actual }, 'checksum mismatch: download discarded');
    return new BrokerError('BROKER_CHECKSUM_MISMATCH', {
      message: `The ${m.algorithm} of ${describeUrl(url)} (${m.actual}) does not match the expected ${m.expected}; ${what}.`,
      details: { algorithm: m.algorithm, expected: m.expected, actual: m.actual },
    });
  }

  private progress(running: Running, bytes: number): void {
    running.view.received += bytes;
    const now = this.deps.clock.now();
    if (now - running.lastEventAt < 1000 / PROGRESS_EVENTS_PER_SECOND) return;
    // Pace by the emitted event's own `at` (the bus reads the clock again): consumers measure the rate by it.
    running.lastEventAt = Date.parse(this.deps.events.emit('download.progress', { id: running.view.id, path: running.view.path, received: running.view.received, total: running.view.total }).at);
  }

  private end(running: Running, state: DownloadState, extra: Record<string, unknown>): void {
    running.view.state = state;
    const { id, path, received, total } = running.view;
    this.deps.events.emit('download.done', { id, path, state, received, total, ...extra });
  }

  private remember(id: string, running: Running): void {
    this.downloads.delete(id);
    this.downloads.set(id, running);
    for (const [oldId, old] of this.downloads) {
      if (this.downloads.size <= FINISHED_KEPT) break;
      if (old.view.state !== 'running') this.downloads.delete(oldId);
    }
  }
}

/**
 * A Writable over the part file: each chunk is hashed once as it arrives; chunks that arrive while
 * a write is under way are handed over together (`_writev`: one writev system call per batch).
 */
class PartSink extends Writable {
  failure: Error | undefined;

  constructor(
    private readonly part: PartFile,
    private readonly hashes: FileDigests,
    private readonly onBytes: (bytes: number) => void,
  ) {
    super({ highWaterMark: SINK_HIGH_WATER });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.hashes.update(chunk);
    this.part.writev([chunk], (err) => this.written(err, chunk.length, callback));
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
    this.part.writev(buffers, (err) => this.written(err, bytes, callback));
  }

  private written(err: Error | null | undefined, bytes: number, callback: (error?: Error | null) => void): void {
    if (err) {
      this.failure = err;
      callback(err);
      return;
    }
    this.onBytes(bytes);
    callback();
  }
}

/** What `.part.json` records as the URL: one small function, to re-point at the canonical URL. */
export function partKey(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

function validatorOf(info: PartInfo | undefined): string | undefined {
  return info?.etag ?? info?.lastModified;
}

/** The first digest both sides know that differs (sha256 first). */
function firstMismatch(expected: { sha1?: string | undefined; sha256?: string | undefined }, actual: { sha1?: string | undefined; sha256?: string | undefined }): { algorithm: 'sha1' | 'sha256'; expected: string; actual: string } | undefined {
  for (const algorithm of ['sha256', 'sha1'] as const) {
    const want = expected[algorithm];
    const got = actual[algorithm];
    if (want !== undefined && got !== undefined && want !== got) return { algorithm, expected: want, actual: got };
  }
  return undefined;
}
