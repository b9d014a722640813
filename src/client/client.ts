import { Agent, Pool, WebSocket, errors as undiciErrors } from 'undici';
import { join as joinPath, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { isSafeFileName } from '../protocol/artifact-url.js';
import { BrokerError, isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { currentPathInputs, resolvePaths } from '../protocol/paths.js';
import { BrokerEventSchema, type BrokerEvent } from '../protocol/events.js';
import {
  AppDetailSchema,
  AppListSchema,
  SourceListSchema,
  SourceRefreshResultListSchema,
  SourceAddedSchema,
  SourceRemovedSchema,
  type AppDetail,
  type AppView,
  type SourceAdded,
  type SourceRefreshResult,
  type SourceRemoved,
  type SourceView,
} from '../protocol/sources.js';
import { StatusSchema, type Status } from '../protocol/status.js';
import { ConfigViewSchema, type ConfigView } from '../protocol/config-api.js';
import { FetchRecordSchema, REQUEST_ID_HEADER, type FetchRecord } from '../protocol/fetch.js';
import { daemonDownload, wantsDaemonWrite } from './daemon-download.js';
import { DownloadOutcomeSchema, DownloadProgressSchema, type DownloadOutcome, type DownloadProgressView, type DownloadRequest } from '../protocol/downloads.js';
import { downloadFile, typedBody, type DownloadOptions, type DownloadResult, type FetchOptions, type FetchResult } from './fetch.js';
import {
  ClientTokenListSchema,
  CreatedClientTokenSchema,
  RevokedClientTokenSchema,
  type ClientTokenView,
  type CreateClientTokenBody,
  type CreatedClientToken,
  type RevokedClientToken,
} from '../protocol/client-tokens.js';
import { TokenRemovedSchema, TokenViewSchema, type TokenRemoved, type TokenView } from '../protocol/token.js';
import { VERSION, VERSION_HEADER } from '../protocol/version.js';
import { verifyOwnerSocket } from './socket-trust.js';

export interface TokenBrokerClientOptions {
  /** Defaults to the platform's socket path (TOKENBROKER_SOCKET / TOKENBROKER_HOME / XDG). */
  socketPath?: string;
  /** Time to wait for the daemon's response headers. Default 30 s. */
  timeoutMs?: number;
  /** Called once when the daemon's version differs from this library's; default: a process warning. */
  onVersionMismatch?: (daemonVersion: string, clientVersion: string) => void;
  /**
   * A scoped client token (`tbk_...`) for an extra listener, sent as `Authorization: Bearer`. The
   * owner's own socket needs none (and ignores it).
   */
  clientToken?: string;
}

/** The daemon cannot be reached: not running, or the socket is not ours to use. */
export class DaemonUnavailableError extends Error {
  readonly code = 'DAEMON_UNAVAILABLE';
  readonly hint: string;
  constructor(
    readonly socketPath: string,
    options: { cause?: unknown; reason?: string } = {},
  ) {
    super(`The tokenbroker daemon is not reachable at ${socketPath}${options.reason ? ` (${options.reason})` : ''}.`, { cause: options.cause });
    this.name = 'DaemonUnavailableError';
    this.hint =
      options.reason === 'permission denied'
        ? 'The socket belongs to another user; use your own daemon (check TOKENBROKER_SOCKET).'
        : 'Start it with `tokenbroker daemon`, or install it as a login service with `tokenbroker service install`.';
  }
}

export function isDaemonUnavailable(err: unknown): err is DaemonUnavailableError {
  return err instanceof DaemonUnavailableError;
}

export interface RequestOptions<S extends z.ZodType> {
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Extra request headers (e.g. If-Match). */
  headers?: Record<string, string>;
  /** Validates the response body; the daemon and client share the schema. */
  schema: S;
  signal?: AbortSignal;
}

/**
 * Thin typed client of the daemon's socket API. Every call goes through one private `request()`
 * that speaks HTTP over the socket and turns the error envelope into a typed `BrokerError`.
 */
export class TokenBrokerClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly onVersionMismatch: (daemonVersion: string, clientVersion: string) => void;
  private versionChecked = false;
  // A pool: a streaming fetch holds its connection, and other calls must not queue behind it.
  private dispatcher: Pool | undefined;
  private readonly authHeaders: Record<string, string>;
  /** The owner's socket (no client token): checked before anything is sent. */
  private readonly ownerSocket: boolean;

  constructor(options: TokenBrokerClientOptions = {}) {
    this.socketPath = options.socketPath ?? resolvePaths(currentPathInputs()).socketPath;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.authHeaders = options.clientToken === undefined ? {} : { authorization: `Bearer ${options.clientToken}` };
    // An extra listener is shared on purpose (group, container) and guarded by the client token.
    this.ownerSocket = options.clientToken === undefined;
    this.onVersionMismatch =
      options.onVersionMismatch ??
      ((daemon, client) => process.emitWarning(`tokenbroker daemon is version ${daemon} but this client is ${client}; restart the daemon after upgrading.`, 'TokenBrokerVersionWarning'));
  }

  /** Daemon version, pid, uptime, socket and the state of everything it manages. */
  async status(options: { signal?: AbortSignal } = {}): Promise<Status> {
    return this.request('GET', '/v1/status', { schema: StatusSchema, ...options });
  }

  /**
   * Streams an allowed URL through the daemon, which adds the token where the policy says so. With
   * `sha1`/`sha256` the daemon verifies while streaming; a body that breaks off errors with a
   * BrokerError: BROKER_CHECKSUM_MISMATCH (verification failed) or BROKER_UPSTREAM_UNREACHABLE.
   */
  async fetch(url: string, options: FetchOptions = {}): Promise<FetchResult> {
    const headers: Record<string, string> = {};
    if (options.range !== undefined) headers.range = options.range;
    if (options.ifRange !== undefined) headers['if-range'] = options.ifRange;
    if (options.ifNoneMatch !== undefined) headers['if-none-match'] = options.ifNoneMatch;
    if (options.ifModifiedSince !== undefined) headers['if-modified-since'] = options.ifModifiedSince;
    const response = await this.send('GET', '/v1/fetch', {
      query: { url, sha1: options.sha1, sha256: options.sha256 },
      headers,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      // Upstream redirects and slow servers take longer than a local call.
      headersTimeout: Math.max(this.timeoutMs, 300_000),
    });
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, await response.body.text());
    const flat: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
    const requestId = flat[REQUEST_ID_HEADER] ?? '';
    return { status: response.statusCode, headers: flat, requestId, body: typedBody(response.body as Readable, requestId, this) };
  }

  /** How a recent fetch ended (`ok`, `checksum-mismatch`, `upstream-aborted`, ...), by request id. */
  async fetchOutcome(requestId: string, options: { signal?: AbortSignal } = {}): Promise<FetchRecord> {
    return this.request('GET', `/v1/fetches/${encodeURIComponent(requestId)}`, { schema: FetchRecordSchema, ...options });
  }

  /**
   * Downloads to `dest` through `dest.part` (resumed with Range + If-Range when a previous attempt
   * left one), verifies the whole file, and renames it into place. On the owner's socket the daemon
   * writes the file itself (`POST /v1/downloads`); with a client token (an extra listener) the body
   * is streamed and written here, or, for a token with `download` but not `fetch`, written by the
   * daemon under the listener's `downloadDirs`. A digest mismatch leaves nothing (BROKER_CHECKSUM_MISMATCH); a
   * broken connection or a cancel keeps the `.part` for the next try.
   */
  async download(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
    const digests = { ...(options.sha1 === undefined ? {} : { sha1: options.sha1 }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) };
    const byDaemon = (): Promise<DownloadResult> => daemonDownload(this, { url, path: resolvePath(dest), ...digests }, options);
    if (this.ownerSocket) return byDaemon();
    // A `download`-only token cannot stream: the daemon writes the file (under the listener's downloadDirs).
    return downloadFile(this, url, dest, options).catch((err: unknown) => (wantsDaemonWrite(err) ? byDaemon() : Promise.reject(err)));
  }

  /** `POST /v1/downloads` as is: resolves with the outcome once the daemon wrote the file. */
  async postDownload(body: DownloadRequest, options: { signal?: AbortSignal } = {}): Promise<DownloadOutcome> {
    // No headers timeout: the answer comes when the whole file is written.
    const response = await this.send('POST', '/v1/downloads', { body, headersTimeout: 0, ...signalOf(options) });
    return this.parse(response, 'POST', '/v1/downloads', DownloadOutcomeSchema);
  }

  /** Progress of a daemon-written download: `{id, path, received, total, resumedFrom, state}`. */
  async downloadProgress(id: string, options: { signal?: AbortSignal } = {}): Promise<DownloadProgressView> {
    return this.request('GET', `/v1/downloads/${encodeURIComponent(id)}`, { schema: DownloadProgressSchema, ...signalOf(options) });
  }

  /** Cancels a daemon-written download; its `.part` is kept, so the same download resumes. */
  async cancelDownload(id: string, options: { signal?: AbortSignal } = {}): Promise<DownloadProgressView> {
    return this.request('DELETE', `/v1/downloads/${encodeURIComponent(id)}`, { schema: DownloadProgressSchema, ...signalOf(options) });
  }

  /** One app and the tarball of `version` (default: the latest): URL, shasum, file name. */
  async app(source: string, name: string, options: { version?: string; signal?: AbortSignal } = {}): Promise<AppDetail> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(source)}/${encodeURIComponent(name)}`, { schema: AppDetailSchema, query: { version: options.version }, ...signalOf(options) });
  }

  /**
   * Downloads an app's tarball into `dir` under the tarball URL's file name (e.g.
   * `pc-nrfconnect-ble-4.0.4.tgz`), verified against the index's sha1, resumable like `download`.
   */
  async downloadApp(source: string, name: string, dir: string, options: Omit<DownloadOptions, 'sha1' | 'sha256'> & { version?: string } = {}): Promise<DownloadResult & { app: AppDetail; path: string }> {
    const { version, ...download } = options;
    const app = await this.app(source, name, { ...(version === undefined ? {} : { version }), ...(download.signal === undefined ? {} : { signal: download.signal }) });
    // The daemon names the file; still never let a name step out of `dir`.
    if (!isSafeFileName(app.tarball.fileName)) {
      throw new BrokerError('BROKER_INTERNAL', { message: `The daemon proposed an unsafe file name for ${source}/${name}.` });
    }
    const dest = joinPath(resolvePath(dir), app.tarball.fileName);
    // The owner's socket: the daemon writes the file itself; an extra listener streams it to us.
    const byDaemon = (): Promise<DownloadResult> => daemonDownload(this, { source, app: name, version: app.tarball.version, path: dest }, download);
    const result = this.ownerSocket
      ? await byDaemon()
      : await downloadFile(this, app.tarball.tarballUrl, dest, { ...download, ...(app.tarball.shasum === undefined ? {} : { sha1: app.tarball.shasum }) }).catch((err: unknown) => (wantsDaemonWrite(err) ? byDaemon() : Promise.reject(err)));
    return { ...result, app, path: dest };
  }

  /** Token metadata for a server (default: the first configured) — never the token itself. */
  async token(options: { server?: string; signal?: AbortSignal } = {}): Promise<TokenView> {
    return this.request('GET', '/v1/token', { schema: TokenViewSchema, query: { server: options.server }, ...signalOf(options) });
  }

  /**
   * Validates the token with the server, then stores it (set or replace). With `verify: false` it
   * is stored as `unverified` and checked in the background.
   */
  async setToken(token: string, options: { server?: string; verify?: boolean; signal?: AbortSignal } = {}): Promise<TokenView> {
    const body = { token, ...(options.server === undefined ? {} : { server: options.server }), ...(options.verify === undefined ? {} : { verify: options.verify }) };
    return this.request('PUT', '/v1/token', { schema: TokenViewSchema, body, ...signalOf(options) });
  }

  /** Removes the token from the daemon and the keychain; the answer lists the consequences. */
  async removeToken(options: { server?: string; signal?: AbortSignal } = {}): Promise<TokenRemoved> {
    return this.request('DELETE', '/v1/token', { schema: TokenRemovedSchema, query: { server: options.server }, ...signalOf(options) });
  }

  /** Every app source with its state, app count, last refresh and last error. */
  async sources(options: { signal?: AbortSignal } = {}): Promise<SourceView[]> {
    return this.request('GET', '/v1/sources', { schema: SourceListSchema, ...signalOf(options) });
  }

  /**
   * Adds a source by the URL of its source.json (any URL form; fetched and validated by the
   * daemon). Answers like the launcher's add: the source (with its id) and its apps.
   */
  async addSource(url: string, options: { signal?: AbortSignal } = {}): Promise<SourceAdded> {
    return this.request('POST', '/v1/sources', { schema: SourceAddedSchema, body: { url }, ...signalOf(options) });
  }

  /** Removes a user source by id or exact display name (the official source cannot be removed). */
  async removeSource(source: string, options: { signal?: AbortSignal } = {}): Promise<SourceRemoved> {
    return this.request('DELETE', `/v1/sources/${encodeURIComponent(source)}`, { schema: SourceRemovedSchema, ...signalOf(options) });
  }

  /** Refreshes one source (id or exact display name), or all, now; resolves with each source's result. */
  async refreshSources(options: { id?: string; signal?: AbortSignal } = {}): Promise<SourceRefreshResult[]> {
    const body = options.id === undefined ? {} : { id: options.id };
    return this.request('POST', '/v1/sources/refresh', { schema: SourceRefreshResultListSchema, body, ...signalOf(options) });
  }

  /**
   * An app's icon or release notes as the daemon kept them at its last refresh (served offline):
   * the bytes and their Content-Type (`image/png`, `text/markdown; charset=utf-8`, ...).
   */
  async appAsset(source: string, name: string, kind: 'icon' | 'release-notes', options: { signal?: AbortSignal } = {}): Promise<{ contentType: string; bytes: Buffer }> {
    const response = await this.send('GET', `/v1/apps/${encodeURIComponent(source)}/${encodeURIComponent(name)}/${kind}`, signalOf(options));
    const bytes = Buffer.from(await response.body.arrayBuffer());
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, bytes.toString('utf8'));
    const type = response.headers['content-type'];
    return { contentType: typeof type === 'string' ? type : 'application/octet-stream', bytes };
  }

  /** The app index: every app of every source, or of one source. */
  async apps(options: { source?: string; signal?: AbortSignal } = {}): Promise<AppView[]> {
    return this.request('GET', '/v1/apps', { schema: AppListSchema, query: { source: options.source }, ...signalOf(options) });
  }

  /**
   * The daemon's events (`token.expiring`, `sources.refreshed`, ...) as an async iterator. Ends
   * when the daemon closes the stream (e.g. `daemon.stopping`) or `signal` aborts.
   */
  async *events(options: { signal?: AbortSignal; onOpen?: () => void } = {}): AsyncGenerator<BrokerEvent, void, undefined> {
    await this.verifySocket();
    const dispatcher = new Agent({ connect: { socketPath: this.socketPath } });
    const socket = new WebSocket('ws://localhost/v1/events', { dispatcher, headers: this.authHeaders });
    // The daemon subscribes before it answers the upgrade: from `open` on, no event is missed.
    if (options.onOpen !== undefined) socket.addEventListener('open', options.onOpen, { once: true });
    const queue: BrokerEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };
    socket.addEventListener('message', (message) => {
      try {
        const parsed = BrokerEventSchema.safeParse(JSON.parse(String(message.data)));
        if (parsed.success) queue.push(parsed.data as BrokerEvent);
      } catch {
        // Not JSON: ignore; the daemon only sends JSON.
      }
      notify();
    });
    socket.addEventListener('close', () => {
      ended = true;
      notify();
    });
    socket.addEventListener('error', (event) => {
      if (socket.readyState !== WebSocket.OPEN) failure = new DaemonUnavailableError(this.socketPath, { cause: (event as { error?: unknown }).error, reason: 'event stream failed' });
      ended = true;
      notify();
    });
    const onAbort = (): void => socket.close(1000);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (ended) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (failure !== undefined) throw failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000);
      await dispatcher.close().catch(() => undefined);
    }
  }

  /**
   * Creates a scoped client token for an extra listener (owner's socket only). The answer is the
   * only time the token is ever shown: the daemon keeps just its hash.
   */
  async createClientToken(body: CreateClientTokenBody, options: { signal?: AbortSignal } = {}): Promise<CreatedClientToken> {
    return this.request('POST', '/v1/client-tokens', { schema: CreatedClientTokenSchema, body, ...signalOf(options) });
  }

  /** Every client token: ID, description, subject, dates, scope, last use. Never the token. */
  async listClientTokens(options: { signal?: AbortSignal } = {}): Promise<ClientTokenView[]> {
    return this.request('GET', '/v1/client-tokens', { schema: ClientTokenListSchema, ...signalOf(options) });
  }

  /** Revokes a client token at once; BROKER_NOT_FOUND for an unknown ID. */
  async revokeClientToken(id: string, options: { signal?: AbortSignal } = {}): Promise<RevokedClientToken> {
    return this.request('DELETE', `/v1/client-tokens/${encodeURIComponent(id)}`, { schema: RevokedClientTokenSchema, ...signalOf(options) });
  }

  /** Closes the connection to the daemon; the client can still be used afterwards (it reconnects). */
  /**
   * The daemon's config (owner socket only): `file` is the config file's own content, `effective`
   * the config in force with every default, `etag` what `patchConfig()` needs, `restartRequired`
   * the changed keys that wait for a daemon restart.
   */
  async getConfig(options: { signal?: AbortSignal } = {}): Promise<ConfigView> {
    return this.request('GET', '/v1/config', { schema: ConfigViewSchema, ...signalOf(options) });
  }

  /**
   * Changes settings at run time (owner socket only): a JSON merge patch (RFC 7396) on the config
   * file's own content — `{"logLevel": "debug"}` sets a key, `{"proxy": null}` removes it —
   * validated like the file, written, and applied at once as SIGHUP applies it. `ifMatch` is the
   * `etag` of the `getConfig()` the change was based on; if the config changed since, this throws
   * BROKER_CONFIG_CHANGED and writes nothing: read it again and redo the change.
   *
   * Arrays are replaced whole, `servers` included: to change one server, read
   * `getConfig()`, copy its `servers` (from `file`, else `effective`), change that entry, and
   * patch the whole list with that read's etag — or call `updateServer()`, which does exactly this.
   */
  async patchConfig(patch: Record<string, unknown>, options: { ifMatch: string; signal?: AbortSignal }): Promise<ConfigView> {
    return this.request('PATCH', '/v1/config', { schema: ConfigViewSchema, body: patch, headers: { 'if-match': options.ifMatch }, ...signalOf(options) });
  }

  /**
   * Sets fields of one configured server, e.g. the launcher's "Mainland China server" switch:
   * `updateServer('nordic', { publicMirrorOrigin: 'https://files.nordicsemi.cn' })` (null turns it
   * off). Read-modify-write of `servers` under If-Match, tried again (up to 3 times) when another
   * program changed the config in between; other servers and fields stay as they are.
   */
  async updateServer(name: string, fields: Record<string, unknown>, options: { signal?: AbortSignal } = {}): Promise<ConfigView> {
    for (let attempt = 1; ; attempt++) {
      const view = await this.getConfig(options);
      const fromFile = view.file?.servers;
      const servers = (Array.isArray(fromFile) ? fromFile : (view.effective.servers as unknown[])) as Record<string, unknown>[];
      if (!servers.some((server) => server.name === name)) {
        throw new BrokerError('BROKER_BAD_REQUEST', { message: `No server named "${name}" is configured.`, hint: `Configured servers: ${servers.map((server) => String(server.name)).join(', ')}.`, details: { field: 'servers' } });
      }
      const changed = servers.map((server) => (server.name === name ? { ...server, ...fields } : server));
      try {
        return await this.patchConfig({ servers: changed }, { ifMatch: view.etag, ...signalOf(options) });
      } catch (err) {
        if (!(err instanceof BrokerError && err.code === 'BROKER_CONFIG_CHANGED') || attempt >= 3) throw err;
      }
    }
  }

  async close(): Promise<void> {
    const dispatcher = this.dispatcher;
    this.dispatcher = undefined;
    await dispatcher?.close();
  }

  /** The one place where requests are sent and errors are turned into typed errors. */
  protected async request<S extends z.ZodType>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, options: RequestOptions<S>): Promise<z.output<S>> {
    const response = await this.send(method, path, options);
    return this.parse(response, method, path, options.schema);
  }

  /** Turns a response into the schema's shape, or its error envelope into a typed BrokerError. */
  private async parse<S extends z.ZodType>(response: Awaited<ReturnType<TokenBrokerClient['send']>>, method: string, path: string, schema: S): Promise<z.output<S>> {
    const text = await response.body.text();
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, text);
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new BrokerError('BROKER_INTERNAL', { message: `The daemon sent a response that is not JSON for ${method} ${path}.` });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new BrokerError('BROKER_INTERNAL', {
        message: `The daemon's response to ${method} ${path} has an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}).`,
        hint: 'The daemon and this client may be different versions; restart the daemon.',
      });
    }
    return parsed.data;
  }

  /** Sends one request; connection failures become DaemonUnavailableError. */
  protected async send(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    options: { query?: Record<string, string | undefined>; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal; headersTimeout?: number },
  ) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) search.set(key, value);
    const fullPath = search.size > 0 ? `${path}?${search.toString()}` : path;
    const headers: Record<string, string> = { host: 'localhost', ...this.authHeaders, ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    await this.verifySocket();
    try {
      const response = await this.getDispatcher().request({
        method,
        path: fullPath,
        headers,
        body,
        signal: options.signal,
        headersTimeout: options.headersTimeout ?? this.timeoutMs,
        bodyTimeout: 0,
      });
      this.checkVersion(response.headers[VERSION_HEADER]);
      return response;
    } catch (err) {
      throw this.connectionError(err);
    }
  }

  /**
   * Every time, not once: the check is two lstat calls, and a directory removed (a /tmp cleaner)
   * could be recreated by someone else between two requests.
   */
  private async verifySocket(): Promise<void> {
    if (this.ownerSocket) await verifyOwnerSocket(this.socketPath);
  }

  private getDispatcher(): Pool {
    this.dispatcher ??= new Pool('http://localhost', { socketPath: this.socketPath, connect: { timeout: 5_000 }, keepAliveTimeout: 4_000 });
    return this.dispatcher;
  }

  private checkVersion(header: string | string[] | undefined): void {
    if (this.versionChecked || typeof header !== 'string') return;
    this.versionChecked = true;
    if (header !== VERSION) this.onVersionMismatch(header, VERSION);
  }

  private connectionError(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: code === 'ENOENT' ? 'no socket' : 'nobody is listening' });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'permission denied' });
    }
    if (err instanceof undiciErrors.ConnectTimeoutError) {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'connection timed out' });
    }
    if (err instanceof undiciErrors.HeadersTimeoutError) {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'the daemon did not answer in time' });
    }
    return err;
  }
}

function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

/** Rebuilds the daemon's error envelope as a typed BrokerError. */
export function toBrokerError(status: number, text: string): BrokerError {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown } };
    const error = parsed.error;
    if (error && isErrorCode(error.code)) {
      return new BrokerError(error.code as ErrorCode, {
        message: typeof error.message === 'string' ? error.message : undefined,
        hint: typeof error.hint === 'string' ? error.hint : undefined,
        details: typeof error.details === 'object' && error.details !== null ? (error.details as Record<string, unknown>) : undefined,
      });
    }
  } catch {
    // Not an envelope: fall through.
  }
  return new BrokerError('BROKER_INTERNAL', { message: `The daemon answered HTTP ${status} without an error envelope.` });
}
