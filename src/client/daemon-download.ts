import { randomUUID } from 'node:crypto';
import { downloadCancelled, type DownloadOutcome, type DownloadProgressView, type DownloadRequest } from '../protocol/downloads.js';
import { isBrokerError } from '../protocol/errors.js';
import type { BrokerEvent } from '../protocol/events.js';
import type { DownloadOptions, DownloadResult } from './fetch.js';

/** What `daemonDownload` needs of the client. */
export interface DaemonDownloadClient {
  postDownload(body: DownloadRequest, options?: { signal?: AbortSignal }): Promise<DownloadOutcome>;
  cancelDownload(id: string): Promise<DownloadProgressView>;
  events(options?: { signal?: AbortSignal; onOpen?: () => void }): AsyncIterable<BrokerEvent>;
}

/**
 * `POST /v1/downloads`: the daemon writes the file (no body crosses the socket). Progress has one
 * channel, the daemon's `download.progress` events for this download's id (the stream is open
 * before the download starts, so none is missed; a `download`-only client token may open it for
 * its own downloads). Aborting `options.signal` cancels the download (its `.part` is kept) and
 * rejects with BROKER_UPSTREAM_UNREACHABLE, `details.reason: "client-aborted"`
 * (isDownloadCancelled). The file is created with the mode this process's umask gives
 * (`0666 & ~umask`), as if it had written the file itself.
 */
export async function daemonDownload(client: DaemonDownloadClient, body: Omit<DownloadRequest, 'id' | 'umask'>, options: Pick<DownloadOptions, 'onProgress' | 'signal'> = {}): Promise<DownloadResult> {
  const id = randomUUID();
  if (options.signal?.aborted) throw downloadCancelled('The download was cancelled before it started.');
  let resumedFrom = 0;
  const stopEvents = new AbortController();
  if (options.onProgress !== undefined) await followProgress(client, id, stopEvents.signal, (p) => {
    resumedFrom = p.resumedFrom;
    options.onProgress?.(p);
  });
  const onAbort = (): void => {
    void client.cancelDownload(id).catch(() => undefined);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const outcome = await client.postDownload({ ...body, id, umask: currentUmask() });
    stopEvents.abort();
    // The last event may be a little behind: the caller's last report is the whole file.
    options.onProgress?.({ received: outcome.bytes, total: outcome.bytes, resumedFrom: outcome.resumed ? resumedFrom : 0 });
    return { path: outcome.path, size: outcome.bytes, sha1: outcome.sha1, sha256: outcome.sha256, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed, requestId: outcome.id };
  } finally {
    stopEvents.abort();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Reports this download's `download.progress` events until `signal` aborts; resolves once the
 * stream is open (or failed: progress is a nicety, the download goes on without it).
 */
async function followProgress(client: DaemonDownloadClient, id: string, signal: AbortSignal, report: NonNullable<DownloadOptions['onProgress']>): Promise<void> {
  let opened: () => void = () => undefined;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const reading = (async (): Promise<void> => {
    for await (const event of client.events({ signal, onOpen: () => opened() })) {
      if (event.type !== 'download.progress' || event.id !== id) continue;
      const { received, total, resumedFrom } = event as { received?: unknown; total?: unknown; resumedFrom?: unknown };
      if (typeof received !== 'number') continue;
      report({ received, total: typeof total === 'number' ? total : undefined, resumedFrom: typeof resumedFrom === 'number' ? resumedFrom : 0 });
    }
  })().catch(() => undefined);
  await Promise.race([open, reading]);
}

/**
 * On an extra listener the body is streamed and written by this process (scope `fetch`); a token
 * that has only `download` is refused there and has the daemon write the file instead (under the
 * listener's `downloadDirs`). This tells the two apart: the refusal names the missing scope.
 */
export function wantsDaemonWrite(err: unknown): boolean {
  return isBrokerError(err, 'BROKER_FORBIDDEN') && err.details?.requiredScope === 'fetch';
}

/** The umask of this process (reading it sets it back at once; Node offers no read-only call). */
export function currentUmask(): number {
  return process.umask();
}
