import { randomUUID } from 'node:crypto';
import { downloadCancelled, type DownloadOutcome, type DownloadProgressView, type DownloadRequest } from '../protocol/downloads.js';
import type { DownloadOptions, DownloadResult } from './fetch.js';

/** How often progress is asked for while a daemon-written download runs (the daemon's own events are ≤ 10/s too). */
const PROGRESS_POLL_MS = 100;

/** What `daemonDownload` needs of the client. */
export interface DaemonDownloadClient {
  postDownload(body: DownloadRequest, options?: { signal?: AbortSignal }): Promise<DownloadOutcome>;
  downloadProgress(id: string): Promise<DownloadProgressView>;
  cancelDownload(id: string): Promise<DownloadProgressView>;
}

/**
 * `POST /v1/downloads` on the owner's socket: the daemon writes the file (no body crosses the
 * socket). Progress is polled while it runs; aborting `options.signal` cancels the download (its
 * `.part` is kept) and rejects with BROKER_UPSTREAM_UNREACHABLE, `details.reason: "client-aborted"` (isDownloadCancelled). The file is created with the mode
 * this process's umask gives (`0666 & ~umask`), as if it had written the file itself.
 */
export async function daemonDownload(client: DaemonDownloadClient, body: Omit<DownloadRequest, 'id' | 'umask'>, options: Pick<DownloadOptions, 'onProgress' | 'signal'> = {}): Promise<DownloadResult> {
  const id = randomUUID();
  if (options.signal?.aborted) throw downloadCancelled('The download was cancelled before it started.');
  let timer: NodeJS.Timeout | undefined;
  let resumedFrom = 0;
  if (options.onProgress !== undefined) {
    const onProgress = options.onProgress;
    let polling = false;
    timer = setInterval(() => {
      if (polling) return;
      polling = true;
      client
        .downloadProgress(id)
        .then((p) => {
          if (p.state !== 'running' || timer === undefined) return;
          resumedFrom = p.resumedFrom;
          onProgress({ received: p.received, total: p.total ?? undefined, resumedFrom: p.resumedFrom });
        })
        // Not registered yet, or finished meanwhile: the next poll or the answer tells.
        .catch(() => undefined)
        .finally(() => (polling = false));
    }, PROGRESS_POLL_MS);
  }
  const onAbort = (): void => {
    void client.cancelDownload(id).catch(() => undefined);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const outcome = await client.postDownload({ ...body, id, umask: currentUmask() });
    clearInterval(timer);
    timer = undefined;
    // The last poll may be a little behind: the caller's last report is the whole file.
    options.onProgress?.({ received: outcome.bytes, total: outcome.bytes, resumedFrom: outcome.resumed ? resumedFrom : 0 });
    return { path: outcome.path, size: outcome.bytes, sha1: outcome.sha1, sha256: outcome.sha256, verifiedBy: outcome.verifiedBy, resumed: outcome.resumed, requestId: outcome.id };
  } finally {
    if (timer !== undefined) clearInterval(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The umask of this process (reading it sets it back at once; Node offers no read-only call). */
export function currentUmask(): number {
  return process.umask();
}
