import { randomUUID } from 'node:crypto';
import { DEFAULT_UMASK, downloadCancelled, isDownloadCancelled, type DownloadOutcome, type DownloadProgressView, type DownloadRequestInput, type DownloadState } from '../protocol/downloads.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { partKey } from '../protocol/resume-decisions.js';
import { describeArtifactUrl as describeUrl } from '../protocol/artifact-url.js';
import type { EventBus } from './event-bus.js';
import type { Clock, DomainLog, DownloadFiles, DownloadTarget } from './ports.js';
import { judgeUrl, openTransfer } from './transfer.js';
import type { TokenUse, UpstreamExchange } from './upstream-exchange.js';

export interface DownloadServiceDeps {
  /** The daemon's one upstream exchange (policy, token, redirects, error mapping), built in main.ts. */
  exchange: UpstreamExchange;
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

/** Who asks: the owner's socket, or one client token (by its id) on an extra listener. */
export type DownloadPrincipal = typeof OWNER | `client-token:${string}`;
export const OWNER = 'owner';

export function clientTokenPrincipal(tokenId: string): DownloadPrincipal {
  return `client-token:${tokenId}`;
}

/** Where the request came from: an extra listener may only write under its `downloadDirs`. */
export interface DownloadCaller {
  /** The owner's socket sees every download; a client token only those it started. */
  principal: DownloadPrincipal;
  allowedDirs?: readonly string[] | undefined;
  /** Aborted when the caller's connection closes: the download stops, its `.part` is kept. */
  signal: AbortSignal;
}

/** At most this many `download.progress` events per second per download. */
export const PROGRESS_EVENTS_PER_SECOND = 10;
/** Finished downloads stay visible to `GET /v1/downloads/:id` for the last this many. */
const FINISHED_KEPT = 200;
/** A client token's umask is combined with this: its files are never group/world-writable. */
const CLIENT_TOKEN_UMASK = 0o022;

interface Running {
  view: DownloadProgressView;
  principal: DownloadPrincipal;
  controller: AbortController;
  lastEventAt: number;
}

/**
 * `POST /v1/downloads`: the daemon writes the file itself. The URL goes through the one transfer
 * (src/broker/transfer.ts: the upstream exchange's policy, token, redirects and error mapping),
 * the bytes through the DownloadFiles port's one writer (`resumeToFile`: resume, hash, verify,
 * fsync, rename). Progress has one channel: `download.progress`/`download.done` events, and
 * `GET /v1/downloads/:id` for a reader that comes late. A download is visible to the owner's
 * socket and to the client token that started it, no other.
 */
export class DownloadService {
  private readonly downloads = new Map<string, Running>();
  private readonly busyTargets = new Map<string, string>();

  constructor(private readonly deps: DownloadServiceDeps) {}

  /** Whether `principal` may see download `id` (route and events). */
  visibleTo(id: string, principal: DownloadPrincipal): boolean {
    const found = this.downloads.get(id);
    return found !== undefined && (principal === OWNER || found.principal === principal);
  }

  /** Progress of a running or recent download, when `principal` may see it. */
  get(id: string, principal: DownloadPrincipal): DownloadProgressView | undefined {
    const found = this.downloads.get(id);
    return found === undefined || !this.visibleTo(id, principal) ? undefined : { ...found.view };
  }

  /** Cancels a running download (its `.part` is kept); undefined when the id is unknown to `principal`. */
  cancel(id: string, principal: DownloadPrincipal): DownloadProgressView | undefined {
    const found = this.downloads.get(id);
    if (found === undefined || !this.visibleTo(id, principal)) return undefined;
    if (found.view.state === 'running') {
      found.controller.abort(downloadCancelled());
      found.view.state = 'cancelled';
    }
    return { ...found.view };
  }

  /** Runs one download to its end; rejects with a BrokerError (the `.part` is kept unless the bytes were wrong). */
  async download(request: DownloadRequestInput, caller: DownloadCaller): Promise<DownloadOutcome> {
    const id = request.id ?? randomUUID();
    if (this.downloads.has(id) && (this.downloads.get(id)?.view.state === 'running' || !this.visibleTo(id, caller.principal))) {
      throw new BrokerError('BROKER_BAD_REQUEST', { message: `The download id ${id} is in use.`, hint: 'Use a new id for each download.', details: { field: 'body.id' } });
    }
    const resolved = this.source(request);
    // Checked once, here, before anything goes upstream; the writer works in the directory opened now.
    const target = await this.deps.files.target(request.path, { allowedDirs: caller.allowedDirs });
    try {
      return await this.runChecked(id, target, resolved, request, caller);
    } finally {
      await target.release();
    }
  }

  private async runChecked(id: string, target: DownloadTarget, resolved: DownloadSource, request: DownloadRequestInput, caller: DownloadCaller): Promise<DownloadOutcome> {
    const other = this.busyTargets.get(target.path);
    if (other !== undefined) {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: `${target.path} is already being downloaded${this.visibleTo(other, caller.principal) ? ` (download ${other})` : ''}.`,
        hint: 'Wait for it to finish, or cancel it with DELETE /v1/downloads/<id>.',
        details: { field: 'body.path', reason: 'busy' },
      });
    }
    const umask = (request.umask ?? DEFAULT_UMASK) | (caller.principal === OWNER ? 0 : CLIENT_TOKEN_UMASK);
    const controller = new AbortController();
    const onCallerGone = (): void => controller.abort(downloadCancelled('The client went away; the download stopped and its .part file is kept.'));
    if (caller.signal.aborted) onCallerGone();
    caller.signal.addEventListener('abort', onCallerGone, { once: true });
    const running: Running = { view: { id, path: target.path, received: 0, total: null, resumedFrom: 0, state: 'running' }, principal: caller.principal, controller, lastEventAt: -Infinity };
    this.remember(id, running);
    this.busyTargets.set(target.path, id);
    try {
      const outcome = await this.run(id, target, resolved, request, running, umask);
      this.end(running, 'done', { bytes: outcome.bytes, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed });
      return outcome;
    } catch (err) {
      const error = isBrokerError(err) ? err : new BrokerError('BROKER_INTERNAL', { cause: err });
      if (error.code === 'BROKER_CHECKSUM_MISMATCH') this.deps.log.warn({ url: describeUrl(resolved.url), ...error.details }, 'checksum mismatch: download discarded');
      this.end(running, isDownloadCancelled(error) ? 'cancelled' : 'failed', { error: { code: error.code, message: error.message } });
      throw error;
    } finally {
      caller.signal.removeEventListener('abort', onCallerGone);
      this.busyTargets.delete(target.path);
    }
  }

  private source(request: DownloadRequestInput): DownloadSource {
    if (request.url !== undefined) return { url: request.url };
    return this.deps.resolveApp(request.source as string, request.app as string, request.version);
  }

  private async run(id: string, target: DownloadTarget, source: DownloadSource, request: DownloadRequestInput, running: Running, umask: number): Promise<DownloadOutcome> {
    const judged = judgeUrl(this.deps.exchange, source.url, source.token);
    const outcome = await this.deps.files.resumeToFile(target, {
      key: partKey(source.url),
      describe: describeUrl(source.url),
      expected: { sha1: request.sha1 ?? source.shasum?.toLowerCase(), sha256: request.sha256 },
      mode: 0o666 & ~umask,
      open: (range, signal) => openTransfer(this.deps.exchange, judged, { headers: rangeHeaders(range), signal }),
      onStart: ({ resumedFrom, total }) => {
        running.view.resumedFrom = resumedFrom;
        running.view.received = resumedFrom;
        running.view.total = total ?? null;
      },
      onBytes: (bytes) => this.progress(running, bytes),
      signal: running.controller.signal,
    });
    return { id, path: target.path, bytes: outcome.bytes, sha1: outcome.sha1, sha256: outcome.sha256, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed };
  }

  private progress(running: Running, bytes: number): void {
    running.view.received += bytes;
    const now = this.deps.clock.now();
    if (now - running.lastEventAt < 1000 / PROGRESS_EVENTS_PER_SECOND) return;
    // Pace by the emitted event's own `at` (the bus reads the clock again): consumers measure the rate by it.
    running.lastEventAt = Date.parse(this.deps.events.emit('download.progress', { id: running.view.id, path: running.view.path, received: running.view.received, total: running.view.total, resumedFrom: running.view.resumedFrom }).at);
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

function rangeHeaders(request: { range?: string; ifRange?: string }): Record<string, string> {
  return request.range === undefined ? {} : { range: request.range, ...(request.ifRange === undefined ? {} : { 'if-range': request.ifRange }) };
}
