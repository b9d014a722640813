import { FileDigests } from '../protocol/file-digests.js';

/**
 * What the one file writer (resume-to-file.ts) needs of the sha1 + sha256 of a download. On this
 * thread by default (the client library's streaming download); the daemon passes the hash worker's
 * (src/node/hash-worker.ts), which hashes off the event loop and may fall behind the writes, so
 * the writer waits on `caughtUp()` to keep the bytes in flight bounded.
 */
export interface StreamDigests {
  /** The chunk is not copied at once: the caller must not reuse its memory afterwards. */
  update(chunk: Buffer): void;
  /** Bytes handed over and not hashed yet. */
  readonly backlog: number;
  /** Resolves once the backlog is at most `limit` bytes. */
  caughtUp(limit?: number): Promise<void>;
  digest(): Promise<{ sha1: string; sha256: string }>;
  /** The download gave up: forget its state. */
  discard(): void;
}

/** A source of digests, one per download. */
export type StreamDigestsFactory = () => StreamDigests;

/** FileDigests on the calling thread: never behind, so never waits. */
export function onThreadDigests(): StreamDigests {
  const digests = new FileDigests();
  return {
    update: (chunk) => digests.update(chunk),
    backlog: 0,
    caughtUp: () => Promise.resolve(),
    digest: () => Promise.resolve(digests.digest()),
    discard: () => undefined,
  };
}
