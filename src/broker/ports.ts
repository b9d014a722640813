/**
 * Ports: the only ways the domain (src/broker) touches the world. Adapters live in src/daemon and
 * are wired in src/daemon/main.ts; tests pass in-memory fakes. Nothing under src/broker may import
 * fastify, undici, keytar, node:fs, node:net or node:http (a test checks it).
 */
import type { Readable } from 'node:stream';

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
