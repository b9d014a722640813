/**
 * Ports of the fetch pipeline beyond those in ports.ts: the verified-content cache and a logger.
 * The filesystem cache is an adapter in src/daemon (fs-content-cache.ts); tests may pass fakes.
 */
import type { Readable } from 'node:stream';

/** What is known about a verified body in the cache. */
export interface CachedContentInfo {
  sha1: string;
  sha256: string;
  size: number;
  contentType?: string | undefined;
  etag?: string | undefined;
  lastModified?: string | undefined;
}

export interface CachedContent extends CachedContentInfo {
  /** Streams the stored bytes (the caller verifies them again while streaming). */
  open(): Readable;
}

/** A body on its way into the cache; nothing is visible to `lookup` before `commit`. */
export interface CacheWriter {
  /** Resolves when the chunk is written: the stream waits for it (backpressure, flat memory). */
  write(chunk: Buffer): Promise<void>;
  /** The body was verified: make it visible under its digests for `url` (atomic rename). */
  commit(entry: CachedContentInfo & { url: string }): Promise<void>;
  /** Throws the partial body away. Safe to call more than once and after commit. */
  abort(): Promise<void>;
}

/**
 * Content-addressed store of verified bodies. A body is found only by the URL it was fetched from
 * together with one of its digests, so the cache never serves content for a URL that did not
 * itself produce it (policy and token checks happen before `lookup`, in the fetch service).
 */
export interface ContentCache {
  lookup(query: { url: string; sha1?: string | undefined; sha256?: string | undefined }): Promise<CachedContent | undefined>;
  /** A writer for a new body, or undefined when caching is off or the body would not fit. */
  begin(expectedSize: number | undefined): Promise<CacheWriter | undefined>;
  /** Drops a stored body (it failed verification when read back). */
  remove(sha256: string): Promise<void>;
}

/** The subset of pino's Logger the domain uses (pino's Logger satisfies it). */
export interface DomainLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
}
