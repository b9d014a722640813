/**
 * Ports: the only ways the domain (src/broker) touches the world, all of them in this one file,
 * and TokenAccess, the one seam between its services (TokenService implements it). Adapters live
 * in src/daemon and src/node and are wired in src/daemon/main.ts; tests pass in-memory fakes
 * that implement a port fully (tests/helpers). Nothing under src/broker may import
 * fastify, undici, @napi-rs/keyring, node:fs, node:net or node:http (a test checks it).
 */
import type { Readable } from 'node:stream';
import type { VerifiedBy } from '../protocol/downloads.js';

export interface TimerHandle {
  cancel(): void;
}

/** Time, injectable so expiry, refresh and backoff can be tested with a fake clock. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` after `ms`; the timer never keeps the process alive. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

export type SecretStoreKind = 'keychain' | 'memory' | 'file';
/** How the store answered its last call. */
export type SecretStoreState = 'ok' | 'locked' | 'unavailable' | 'timeout';

/**
 * Where the identity token is kept at rest. Failing calls throw a BrokerError
 * `BROKER_SECRET_STORE_UNAVAILABLE` whose details carry `{ state }`.
 */
export interface SecretStore {
  readonly kind: SecretStoreKind;
  /** True when a secret survives a daemon restart. */
  readonly persistent: boolean;
  /** True for the opt-in file store: the secret is readable on disk. */
  readonly plaintextAtRest: boolean;
  /** How the store answered its last call (status shows it); null before the first call. */
  readonly lastState: SecretStoreState | null;
  get(account: string): Promise<string | null>;
  set(account: string, secret: string): Promise<void>;
  /** Resolves true when something was removed. */
  delete(account: string): Promise<boolean>;
  /** Checks the store is usable now, without touching any secret. */
  probe(): Promise<SecretStoreState>;
}

/**
 * Small JSON documents under the state dir (token metadata, sources, indexes, client tokens).
 * Writes are atomic (temp file + fsync + rename): a crash leaves the old or the new file whole.
 */
export interface StateStore {
  /** The parsed document, or undefined when it does not exist. Callers validate it with zod. */
  read(name: string): Promise<unknown>;
  write(name: string, value: unknown): Promise<void>;
  remove(name: string): Promise<void>;
}

export interface UpstreamRequest {
  method: 'GET' | 'HEAD';
  url: string;
  headers: Record<string, string>;
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  /** Streamed, never buffered; destroy it to abort the request. */
  body: Readable;
}

/**
 * One HTTP exchange with an upstream server. It never follows redirects (the domain does, so the
 * token policy applies at every hop). Network failures and timeouts throw a BrokerError
 * `BROKER_UPSTREAM_UNREACHABLE` with `details.reason`.
 */
export interface Upstream {
  request(request: UpstreamRequest): Promise<UpstreamResponse>;
}

/**
 * The one logger type of the domain: the slice of a pino logger it uses (pino's Logger, and a
 * request's `request.log` child, satisfy it). Never log a secret.
 */
export interface DomainLog {
  debug(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

// ---- the fetch pipeline's verified-content cache (adapter: src/daemon/fs-content-cache.ts) ----

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

// ---- the token lifecycle, as the fetch, source and download pipelines see it (implemented by TokenService) ----

/**
 * What the fetch and source pipelines need from the token lifecycle. The token lifecycle
 * implements it; nothing else ever sees the raw token.
 */
export interface TokenAccess {
  /**
   * The token to put in `Authorization: Bearer` for a request to `server` that needs it. Throws a
   * BrokerError when there is none to use: BROKER_TOKEN_MISSING, BROKER_TOKEN_INVALID (an
   * upstream said 401; no retry until replaced), BROKER_TOKEN_EXPIRED (never sent upstream).
   */
  tokenFor(server: string): string;
  /**
   * An upstream answered 401 to a request that carried the token: mark it invalid. `usedToken` is
   * the token that request carried: a 401 for a token that was replaced meanwhile is ignored.
   */
  rejected(server: string, upstreamMessage: string, usedToken?: string): void;
}

// ---- daemon-written downloads (adapter: src/node/download-files.ts) ----

/** An answer to write into a file: what the transfer (src/broker/transfer.ts) or a client fetch gives. */
export interface FileTransferAnswer {
  status: number;
  /** Lower-case names. */
  headers: Readonly<Record<string, string | undefined>>;
  /** Destroy it to abort the request. */
  body: Readable;
}

/** One resumable download into a checked target (the decisions are src/protocol/resume-decisions.ts). */
export interface ResumeJob {
  /** What `.part.json` records as the URL (partKey of the URL). */
  key: string;
  /** The URL as errors may show it. */
  describe: string;
  /** Digests the whole file must have; without any, the server's own checksums are used. */
  expected: { sha1?: string | undefined; sha256?: string | undefined };
  /** The finished file's mode (`0666 & ~umask`). */
  mode: number;
  /** Opens the transfer, with Range + If-Range when a `.part` is continued. Rejects with a BrokerError. */
  open(request: { range?: string; ifRange?: string }, signal: AbortSignal): Promise<FileTransferAnswer>;
  /** The answer was accepted: where the file starts (bytes kept from an earlier attempt) and its size. */
  onStart?(start: { resumedFrom: number; total: number | undefined }): void;
  /** More bytes are on disk. */
  onBytes?(bytes: number): void;
  /** Stops the download; the `.part` is kept. */
  signal: AbortSignal;
}

export interface ResumeOutcome {
  bytes: number;
  sha1: string;
  sha256: string;
  verifiedBy: VerifiedBy;
  resumed: boolean;
  resumedFrom: number;
  total: number | undefined;
}

/**
 * A download target, checked once and held open: the parent directory is opened and every later
 * step (the `.part`, `.part.json`, the rename) works relative to that open directory, so a path
 * component swapped for a symlink after the check cannot redirect the write.
 */
export interface DownloadTarget {
  /** The resolved path (the opened directory's real path + the file name). */
  readonly path: string;
  /** Closes the directory; call once the download ended. */
  release(): Promise<void>;
}

/**
 * The file side of a daemon-written download (src/node/download-files.ts). Every rule about what
 * may be opened (regular files only, O_NOFOLLOW, O_EXCL, own files, daemon-owned paths,
 * group/world-writable directories) lives there.
 */
export interface DownloadFiles {
  /**
   * The checked target (DESIGN section 5, download targets). With `allowedDirs` (an extra
   * listener's `downloadDirs`) the opened directory must be one of them or below one. Throws
   * BROKER_BAD_REQUEST with `details.reason` (`not-a-regular-file`, `daemon-owned`,
   * `unsafe-directory`, ...) or BROKER_FORBIDDEN, before anything is requested upstream.
   */
  target(path: string, rules: { allowedDirs?: readonly string[] | undefined }): Promise<DownloadTarget>;
  /** Runs the download into `target` via `.part` (resume, verify, fsync, rename); rejects with a BrokerError. */
  resumeToFile(target: DownloadTarget, job: ResumeJob): Promise<ResumeOutcome>;
}
