import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import path, { join as joinPath, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import { isSafeFileName } from '../protocol/artifact-url.js';
import { BrokerError, ClientError, isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { currentPathInputs, isWindowsPipe, resolvePaths } from '../protocol/paths.js';
import type { BrokerEvent } from '../protocol/events.js';
import type { AppDetail, AppView, SourceAdded, SourceRefreshResult, SourceRemoved, SourceView } from '../protocol/sources.js';
import type { Status } from '../protocol/status.js';
import type { ConfigView } from '../protocol/config-api.js';
import type { FetchRecord } from '../protocol/fetch.js';
import type { DownloadOutcome, DownloadProgressView, DownloadRequest } from '../protocol/downloads.js';
import type { DownloadOptions, DownloadResult, FetchOptions, FetchResult } from './fetch.js';
import type { ClientTokenView, CreateClientTokenBody, CreatedClientToken, RevokedClientToken } from '../protocol/client-tokens.js';
import type { TokenRemoved, TokenView } from '../protocol/token.js';
import { VERSION, VERSION_HEADER } from '../protocol/version.js';
import { readDaemonKey } from '../node/daemon-key.js';
import { readDaemonLock } from '../node/daemon-lock.js';
import { verifyOwnerSocket } from './socket-trust.js';
import type * as ResponseSchemas from './response-schemas.js';
import type { Socket } from 'node:net';
import { DaemonAgent } from './daemon-agent.js';
import { verifyDaemon } from './daemon-handshake.js';
import { DaemonNotAnsweringError, DaemonUnavailableError } from './client-errors.js';
import { ensureDaemon, isStartable, type AutostartOptions } from './autostart.js';

export { DaemonUnavailableError, isDaemonUnavailable } from './client-errors.js';

/** Requests that never wait on an upstream (hello, status, lists, metadata) answer within this. */
export const LOCAL_REQUEST_TIMEOUT_MS = 5_000;

export interface TokenBrokerClientOptions {
  /** Defaults to the platform's socket path (TOKENBROKER_SOCKET / TOKENBROKER_HOME / XDG). */
  socketPath?: string;
  /**
   * Bound on requests that never wait on an upstream (status, lists, token metadata, the hello
   * handshake): a daemon that accepts and does not answer within it is reported as not answering
   * (DaemonNotAnsweringError, with its pid). Default 5 s. Requests that wait on an upstream (fetch,
   * downloads, setToken, addSource, refreshSources) are bounded by the daemon's own timeouts.
   */
  timeoutMs?: number;
  /** Called once when the daemon's version differs from this library's; default: a process warning. */
  onVersionMismatch?: (daemonVersion: string, clientVersion: string) => void;
  /**
   * A scoped client token (`tbk_...`) for an extra listener, sent as `Authorization: Bearer`. The
   * owner's own socket needs none (and ignores it).
   */
  clientToken?: string;
  /**
   * The daemon's state directory, where it writes `daemon.key` (the hello handshake) and
   * `daemon.lock` (its pid). Default: derived from the environment as the daemon does; pass it when
   * this program's environment differs from the daemon's.
   */
  stateDir?: string;
  /**
   * Start the daemon when none answers (default false: the library never starts one unless asked).
   * `true` uses this library's own package and node; an object sets the node binary, entry, etc.
   */
  autostart?: boolean | AutostartOptions;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';

/** The schemas of response-schemas.ts, loaded on first use. */
type Schemas = typeof ResponseSchemas;
/** A schema by its name in response-schemas.ts (lazy), or a zod schema at hand. */
export type ResponseSchema = keyof Schemas | z.ZodType;
type Parsed<S extends ResponseSchema> = S extends keyof Schemas ? z.output<Schemas[S]> : S extends z.ZodType ? z.output<S> : never;

export interface RequestOptions<S extends ResponseSchema> {
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Validates the response body; the daemon and client share the schema. */
  schema: S;
  signal?: AbortSignal;
  /** `upstream`: the daemon waits on a server for this answer; no client-side bound (its own timeouts apply). */
  waits?: 'local' | 'upstream';
  /** Extra request headers (e.g. `if-match`). */
  headers?: Record<string, string>;
}

export interface SendOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  waits?: 'local' | 'upstream';
}

/** One answer of the daemon: status, headers and the body as a stream. */
export interface DaemonResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

/**
 * Thin typed client of the daemon's socket API. Every call goes through one private `request()`
 * that speaks HTTP (node:http) over the socket and turns the error envelope into a typed
 * `BrokerError`. On the owner's socket every new connection first passes the hello handshake.
 */
export class TokenBrokerClient {
  readonly socketPath: string;
  /** Where the daemon's key and lock are read from (the `stateDir` option, or the environment's). */
  readonly stateDir: string;
  /** Where else this socket's daemon keeps them: the TOKENBROKER_HOME layout around an explicit socket. */
  private readonly stateDirs: string[];
  private readonly timeoutMs: number;
  private readonly onVersionMismatch: (daemonVersion: string, clientVersion: string) => void;
  private versionChecked = false;
  private agent: DaemonAgent | undefined;
  private readonly authHeaders: Record<string, string>;
  /** The owner's socket (no client token): checked before anything is sent. */
  private readonly ownerSocket: boolean;
  private readonly autostart: AutostartOptions | undefined;
  /** One start at a time for all of this client's requests. */
  private starting: Promise<void> | undefined;

  constructor(options: TokenBrokerClientOptions = {}) {
    const env = (typeof options.autostart === 'object' ? options.autostart.env : undefined) ?? process.env;
    const paths = resolvePaths({ ...currentPathInputs(), env });
    this.socketPath = options.socketPath ?? paths.socketPath;
    this.stateDir = options.stateDir ?? paths.stateDir;
    this.stateDirs = options.stateDir !== undefined ? [options.stateDir] : [paths.stateDir, ...homeLayoutStateDir(this.socketPath)].filter((dir, i, all) => all.indexOf(dir) === i);
    this.timeoutMs = options.timeoutMs ?? LOCAL_REQUEST_TIMEOUT_MS;
    this.authHeaders = options.clientToken === undefined ? {} : { authorization: `Bearer ${options.clientToken}` };
    // An extra listener is shared on purpose (group, container) and guarded by the client token.
    this.ownerSocket = options.clientToken === undefined;
    // Never on an extra listener: that is somebody's running daemon, not ours to start.
    this.autostart = options.autostart === undefined || options.autostart === false || !this.ownerSocket ? undefined : options.autostart === true ? {} : options.autostart;
    this.onVersionMismatch =
      options.onVersionMismatch ??
      ((daemon, client) => process.emitWarning(`tokenbroker daemon is version ${daemon} but this client is ${client}; restart the daemon after upgrading.`, 'TokenBrokerVersionWarning'));
  }

  /** Daemon version, pid, uptime, socket and the state of everything it manages. */
  async status(options: { signal?: AbortSignal } = {}): Promise<Status> {
    return this.request('GET', '/v1/status', { schema: 'StatusSchema', ...signalOf(options) });
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
    const response = await this.send('GET', '/v1/fetch', { query: { url, sha1: options.sha1, sha256: options.sha256 }, headers, waits: 'upstream', ...signalOf(options) });
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, await readText(response.body));
    const [{ typedBody }, { REQUEST_ID_HEADER }] = await Promise.all([import('./fetch.js'), import('../protocol/fetch.js')]);
    const flat: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
    const requestId = flat[REQUEST_ID_HEADER] ?? '';
    return { status: response.statusCode, headers: flat, requestId, body: typedBody(response.body as Readable, requestId, this) };
  }

  /** How a recent fetch ended (`ok`, `checksum-mismatch`, `upstream-aborted`, ...), by request id. */
  async fetchOutcome(requestId: string, options: { signal?: AbortSignal } = {}): Promise<FetchRecord> {
    return this.request('GET', `/v1/fetches/${encodeURIComponent(requestId)}`, { schema: 'FetchRecordSchema', ...signalOf(options) });
  }

  /**
   * Downloads to `dest` through `dest.part` (resumed with Range + If-Range when a previous attempt
   * left one), verifies the whole file, and renames it into place. On the owner's socket the daemon
   * writes the file itself (`POST /v1/downloads`); with a client token (an extra listener) the body
   * is streamed and written here, or, for a token with `download` but not `fetch`, written by the
   * daemon under the listener's `downloadDirs`. A digest mismatch leaves nothing
   * (BROKER_CHECKSUM_MISMATCH); a broken connection or a cancel keeps the `.part` for the next try.
   */
  async download(url: string, dest: string, options: DownloadOptions = {}): Promise<DownloadResult> {
    const digests = { ...(options.sha1 === undefined ? {} : { sha1: options.sha1 }), ...(options.sha256 === undefined ? {} : { sha256: options.sha256 }) };
    const byDaemon = async (): Promise<DownloadResult> => (await import('./daemon-download.js')).daemonDownload(this, { url, path: resolvePath(dest), ...digests }, options);
    if (this.ownerSocket) return byDaemon();
    // A `download`-only token cannot stream: the daemon writes the file (under the listener's downloadDirs).
    const [{ downloadFile }, { wantsDaemonWrite }] = await Promise.all([import('./fetch.js'), import('./daemon-download.js')]);
    return downloadFile(this, url, dest, options).catch((err: unknown) => (wantsDaemonWrite(err) ? byDaemon() : Promise.reject(err)));
  }

  /** `POST /v1/downloads` as is: resolves with the outcome once the daemon wrote the file. */
  async postDownload(body: DownloadRequest, options: { signal?: AbortSignal } = {}): Promise<DownloadOutcome> {
    // The answer comes when the whole file is written: bounded by the daemon's upstream timeouts.
    return this.request('POST', '/v1/downloads', { schema: 'DownloadOutcomeSchema', body, waits: 'upstream', ...signalOf(options) });
  }

  /** Progress of a daemon-written download: `{id, path, received, total, resumedFrom, state}`. */
  async downloadProgress(id: string, options: { signal?: AbortSignal } = {}): Promise<DownloadProgressView> {
    return this.request('GET', `/v1/downloads/${encodeURIComponent(id)}`, { schema: 'DownloadProgressSchema', ...signalOf(options) });
  }

  /** Cancels a daemon-written download; its `.part` is kept, so the same download resumes. */
  async cancelDownload(id: string, options: { signal?: AbortSignal } = {}): Promise<DownloadProgressView> {
    return this.request('DELETE', `/v1/downloads/${encodeURIComponent(id)}`, { schema: 'DownloadProgressSchema', ...signalOf(options) });
  }

  /** One app and the tarball of `version` (default: the latest): URL, shasum, file name. */
  async app(source: string, name: string, options: { version?: string; signal?: AbortSignal } = {}): Promise<AppDetail> {
    return this.request('GET', `/v1/apps/${encodeURIComponent(source)}/${encodeURIComponent(name)}`, { schema: 'AppDetailSchema', query: { version: options.version }, ...signalOf(options) });
  }

  /**
   * Downloads an app's tarball into `dir` under the tarball URL's file name (e.g.
   * `pc-nrfconnect-ble-4.0.4.tgz`), verified against the index's sha1, resumable like `download`.
   */
  async downloadApp(source: string, name: string, dir: string, options: Omit<DownloadOptions, 'sha1' | 'sha256'> & { version?: string } = {}): Promise<DownloadResult & { app: AppDetail; path: string }> {
    const { version, ...download } = options;
    const app = await this.app(source, name, { ...(version === undefined ? {} : { version }), ...signalOf(download) });
    // The daemon names the file; still never let a name step out of `dir`.
    if (!isSafeFileName(app.tarball.fileName)) {
      throw new BrokerError('BROKER_INTERNAL', { message: `The daemon proposed an unsafe file name for ${source}/${name}.` });
    }
    const dest = joinPath(resolvePath(dir), app.tarball.fileName);
    // The owner's socket: the daemon writes the file itself; an extra listener streams it to us.
    const byDaemon = async (): Promise<DownloadResult> => (await import('./daemon-download.js')).daemonDownload(this, { source, app: name, version: app.tarball.version, path: dest }, download);
    const byStream = async (): Promise<DownloadResult> => {
      const [{ downloadFile }, { wantsDaemonWrite }] = await Promise.all([import('./fetch.js'), import('./daemon-download.js')]);
      return downloadFile(this, app.tarball.tarballUrl, dest, { ...download, ...(app.tarball.shasum === undefined ? {} : { sha1: app.tarball.shasum }) }).catch((err: unknown) => (wantsDaemonWrite(err) ? byDaemon() : Promise.reject(err)));
    };
    const result = this.ownerSocket ? await byDaemon() : await byStream();
    return { ...result, app, path: dest };
  }

  /** Token metadata for a server (default: the first configured) — never the token itself. */
  async token(options: { server?: string; signal?: AbortSignal } = {}): Promise<TokenView> {
    return this.request('GET', '/v1/token', { schema: 'TokenViewSchema', query: { server: options.server }, ...signalOf(options) });
  }

  /**
   * Validates the token with the server, then stores it (set or replace). With `verify: false` it
   * is stored as `unverified` and checked in the background.
   */
  async setToken(token: string, options: { server?: string; verify?: boolean; signal?: AbortSignal } = {}): Promise<TokenView> {
    const body = { token, ...(options.server === undefined ? {} : { server: options.server }), ...(options.verify === undefined ? {} : { verify: options.verify }) };
    return this.request('PUT', '/v1/token', { schema: 'TokenViewSchema', body, waits: 'upstream', ...signalOf(options) });
  }

  /** Removes the token from the daemon and the keychain; the answer lists the consequences. */
  async removeToken(options: { server?: string; signal?: AbortSignal } = {}): Promise<TokenRemoved> {
    return this.request('DELETE', '/v1/token', { schema: 'TokenRemovedSchema', query: { server: options.server }, ...signalOf(options) });
  }

  /** Every app source with its state, app count, last refresh and last error. */
  async sources(options: { signal?: AbortSignal } = {}): Promise<SourceView[]> {
    return this.request('GET', '/v1/sources', { schema: 'SourceListSchema', ...signalOf(options) });
  }

  /**
   * Adds a source by the URL of its source.json (any URL form; fetched and validated by the
   * daemon). Answers like the launcher's add: the source (with its id) and its apps.
   */
  async addSource(url: string, options: { signal?: AbortSignal } = {}): Promise<SourceAdded> {
    return this.request('POST', '/v1/sources', { schema: 'SourceAddedSchema', body: { url }, waits: 'upstream', ...signalOf(options) });
  }

  /** Removes a user source by id or exact display name (the official source cannot be removed). */
  async removeSource(source: string, options: { signal?: AbortSignal } = {}): Promise<SourceRemoved> {
    return this.request('DELETE', `/v1/sources/${encodeURIComponent(source)}`, { schema: 'SourceRemovedSchema', ...signalOf(options) });
  }

  /** Refreshes one source (id or exact display name), or all, now; resolves with each source's result. */
  async refreshSources(options: { id?: string; signal?: AbortSignal } = {}): Promise<SourceRefreshResult[]> {
    const body = options.id === undefined ? {} : { id: options.id };
    return this.request('POST', '/v1/sources/refresh', { schema: 'SourceRefreshResultListSchema', body, waits: 'upstream', ...signalOf(options) });
  }

  /**
   * An app's icon or release notes as the daemon kept them at its last refresh (served offline):
   * the bytes and their Content-Type (`image/png`, `text/markdown; charset=utf-8`, ...).
   */
  async appAsset(source: string, name: string, kind: 'icon' | 'release-notes', options: { signal?: AbortSignal } = {}): Promise<{ contentType: string; bytes: Buffer }> {
    const response = await this.send('GET', `/v1/apps/${encodeURIComponent(source)}/${encodeURIComponent(name)}/${kind}`, signalOf(options));
    const bytes = await readBytes(response.body);
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, bytes.toString('utf8'));
    const type = response.headers['content-type'];
    return { contentType: typeof type === 'string' ? type : 'application/octet-stream', bytes };
  }

  /** The app index: every app of every source, or of one source. */
  async apps(options: { source?: string; signal?: AbortSignal } = {}): Promise<AppView[]> {
    return this.request('GET', '/v1/apps', { schema: 'AppListSchema', query: { source: options.source }, ...signalOf(options) });
  }

  /**
   * The daemon's events (`token.expiring`, `sources.refreshed`, ...) as an async iterator. Ends
   * when the daemon closes the stream (e.g. after `daemon.stopping`) or `signal` aborts; a caller
   * that wants to follow a restarted daemon calls `events()` again.
   */
  async *events(options: { signal?: AbortSignal; onOpen?: () => void } = {}): AsyncGenerator<BrokerEvent, void, undefined> {
    // With autostart, a plain request first: it starts the daemon when none answers.
    if (this.autostart !== undefined) await this.status(signalOf(options));
    await this.verifySocket();
    const [{ WebSocket }, { BrokerEventSchema }] = await Promise.all([import('ws'), this.schemas()]);
    const agent = new DaemonAgent({ socketPath: this.socketPath, keepAlive: false, ...this.verifier() });
    const socket = new WebSocket('ws://localhost/v1/events', { agent, headers: { host: 'localhost', ...this.authHeaders }, perMessageDeflate: false, handshakeTimeout: this.timeoutMs });
    // The daemon subscribes before it answers the upgrade: from `open` on, no event is missed.
    if (options.onOpen !== undefined) socket.once('open', options.onOpen);
    const queue: BrokerEvent[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };
    socket.on('message', (data) => {
      try {
        const parsed = BrokerEventSchema.safeParse(JSON.parse(String(data)));
        if (parsed.success) queue.push(parsed.data as BrokerEvent);
      } catch {
        // Not JSON: ignore; the daemon only sends JSON.
      }
      notify();
    });
    socket.on('close', () => {
      ended = true;
      notify();
    });
    // A refusal (401/403 on an extra listener) is an envelope like any other answer.
    socket.on('unexpected-response', (_request, response) => {
      void readText(response).then((text) => {
        failure ??= toBrokerError(response.statusCode ?? 0, text);
        ended = true;
        socket.terminate();
        notify();
      });
    });
    socket.on('error', (err: Error) => {
      if (socket.readyState !== WebSocket.OPEN) failure ??= this.streamError(err);
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
      if (failure !== undefined) throw await failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000);
      agent.destroy();
    }
  }

  /**
   * Creates a scoped client token for an extra listener (owner's socket only). The answer is the
   * only time the token is ever shown: the daemon keeps just its hash.
   */
  async createClientToken(body: CreateClientTokenBody, options: { signal?: AbortSignal } = {}): Promise<CreatedClientToken> {
    return this.request('POST', '/v1/client-tokens', { schema: 'CreatedClientTokenSchema', body, ...signalOf(options) });
  }

  /** Every client token: ID, description, subject, dates, scope, last use. Never the token. */
  async listClientTokens(options: { signal?: AbortSignal } = {}): Promise<ClientTokenView[]> {
    return this.request('GET', '/v1/client-tokens', { schema: 'ClientTokenListSchema', ...signalOf(options) });
  }

  /** Revokes a client token at once; BROKER_NOT_FOUND for an unknown ID. */
  async revokeClientToken(id: string, options: { signal?: AbortSignal } = {}): Promise<RevokedClientToken> {
    return this.request('DELETE', `/v1/client-tokens/${encodeURIComponent(id)}`, { schema: 'RevokedClientTokenSchema', ...signalOf(options) });
  }

  /**
   * The daemon's config (owner socket only): `file` is the config file's own content, `effective`
   * the config in force with every default, `etag` what `patchConfig()` needs, `restartRequired`
   * the changed keys that wait for a daemon restart.
   */
  async getConfig(options: { signal?: AbortSignal } = {}): Promise<ConfigView> {
    return this.request('GET', '/v1/config', { schema: 'ConfigViewSchema', ...signalOf(options) });
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
    return this.request('PATCH', '/v1/config', { schema: 'ConfigViewSchema', body: patch, headers: { 'if-match': options.ifMatch }, ...signalOf(options) });
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

  /** Closes the connections to the daemon; the client can still be used afterwards (it reconnects). */
  async close(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    agent?.destroy();
  }

  /**
   * The one place where requests are sent and answers checked: `schema` names a schema of
   * response-schemas.ts (loaded on first use) or is a zod schema; `waits: 'upstream'` for calls
   * whose answer waits on a server (no client-side bound).
   */
  protected async request<S extends ResponseSchema>(method: Method, path: string, options: RequestOptions<S>): Promise<Parsed<S>> {
    const response = await this.send(method, path, options);
    return this.parse(response, method, path, options.schema);
  }

  /** Turns a response into the schema's shape, or its error envelope into a typed BrokerError. */
  private async parse<S extends ResponseSchema>(response: DaemonResponse, method: string, path: string, schemaRef: S): Promise<Parsed<S>> {
    const text = await readText(response.body);
    if (response.statusCode >= 400) throw toBrokerError(response.statusCode, text);
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new BrokerError('BROKER_INTERNAL', { message: `The daemon sent a response that is not JSON for ${method} ${path}.` });
    }
    const schema: z.ZodType = typeof schemaRef === 'string' ? (await this.schemas())[schemaRef as keyof Schemas] : (schemaRef as z.ZodType);
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new BrokerError('BROKER_INTERNAL', {
        message: `The daemon's response to ${method} ${path} has an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}).`,
        hint: 'The daemon and this client may be different versions; restart the daemon.',
      });
    }
    return parsed.data as Parsed<S>;
  }

  private schemas(): Promise<Schemas> {
    return import('./response-schemas.js');
  }

  /**
   * Sends one request. Connection failures become DaemonUnavailableError; with `autostart`, a
   * request that found no daemon starts one and is sent again, once (it never reached a daemon,
   * so repeating it is safe).
   */
  protected async send(method: Method, path: string, options: SendOptions = {}): Promise<DaemonResponse> {
    try {
      return await this.sendOnce(method, path, options);
    } catch (err) {
      if (this.autostart === undefined || !isStartable(err)) throw err;
      this.starting ??= ensureDaemon(err, this.socketPath, this.autostart).finally(() => (this.starting = undefined));
      await this.starting;
      return this.sendOnce(method, path, options);
    }
  }

  private async sendOnce(method: Method, path: string, options: SendOptions): Promise<DaemonResponse> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) search.set(key, value);
    const fullPath = search.size > 0 ? `${path}?${search.toString()}` : path;
    const headers: Record<string, string> = { host: 'localhost', ...this.authHeaders, ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    await this.verifySocket();
    const bounded = options.waits !== 'upstream';
    return new Promise<DaemonResponse>((resolve, reject) => {
      const request = httpRequest({ agent: this.getAgent(), method, path: fullPath, headers, ...signalOf(options) });
      let response: IncomingMessage | undefined;
      // Local requests: the whole exchange, body included, within timeoutMs.
      const timer = bounded
        ? setTimeout(() => {
            void this.notAnswering().then((err) => {
              if (response !== undefined) response.destroy(err);
              else request.destroy(err);
            });
          }, this.timeoutMs)
        : undefined;
      request.once('response', (res) => {
        response = res;
        if (timer !== undefined) res.once('close', () => clearTimeout(timer));
        this.checkVersion(res.headers[VERSION_HEADER]);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      request.once('error', (err) => {
        clearTimeout(timer);
        reject(this.connectionError(err));
      });
      request.end(body);
    });
  }

  /**
   * Every time, not once: the check is two lstat calls, and a directory removed (a /tmp cleaner)
   * could be recreated by someone else between two requests.
   */
  private async verifySocket(): Promise<void> {
    if (this.ownerSocket) await verifyOwnerSocket(this.socketPath);
  }

  /** The hello handshake for new connections to the owner's socket; extra listeners skip it. */
  private verifier(): { verify?: (socket: Socket) => Promise<void> } {
    if (!this.ownerSocket) return {};
    return {
      verify: (socket) =>
        verifyDaemon(socket, {
          socketPath: this.socketPath,
          readKeys: () => Promise.all(this.stateDirs.map((dir) => readDaemonKey(dir))),
          daemonPid: () => this.daemonPid(),
          timeoutMs: this.timeoutMs,
        }),
    };
  }

  private getAgent(): DaemonAgent {
    this.agent ??= new DaemonAgent({ socketPath: this.socketPath, ...this.verifier() });
    return this.agent;
  }

  /** The pid of the daemon that owns this socket, from its state-dir lock. */
  private async daemonPid(): Promise<number | undefined> {
    for (const dir of this.stateDirs) {
      const lock = await readDaemonLock(dir).catch(() => undefined);
      if (lock !== undefined && (lock.socket === '' || lock.socket === this.socketPath)) return lock.pid;
    }
    return undefined;
  }

  private async notAnswering(): Promise<DaemonNotAnsweringError> {
    return new DaemonNotAnsweringError(this.socketPath, await this.daemonPid(), this.timeoutMs);
  }

  private checkVersion(header: string | string[] | undefined): void {
    if (this.versionChecked || typeof header !== 'string') return;
    this.versionChecked = true;
    if (header !== VERSION) this.onVersionMismatch(header, VERSION);
  }

  /** The event stream's connection failed before it opened. */
  private async streamError(err: Error): Promise<unknown> {
    if (/handshake has timed out/i.test(err.message)) return this.notAnswering();
    const mapped = this.connectionError(err);
    // Our own typed errors (an impostor refused, a daemon not answering) stay what they are.
    return mapped === err && !(err instanceof ClientError) && !(err instanceof BrokerError) ? new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'event stream failed' }) : mapped;
  }

  private connectionError(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: code === 'ENOENT' ? 'no socket' : 'nobody is listening' });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'permission denied' });
    }
    if (code === 'EAGAIN') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'its connection queue is full' });
    }
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      return new DaemonUnavailableError(this.socketPath, { cause: err, reason: 'the daemon closed the connection' });
    }
    return err;
  }
}

/**
 * `DIR/run/broker.sock` is the socket of a daemon with TOKENBROKER_HOME=DIR, whose state is
 * `DIR/state`: a client given such a socket finds that daemon's key without being told. Safe to
 * try: a key only counts when the file is this user's and private (readDaemonKey).
 */
function homeLayoutStateDir(socketPath: string): string[] {
  if (isWindowsPipe(socketPath) || path.basename(socketPath) !== 'broker.sock' || path.basename(path.dirname(socketPath)) !== 'run') return [];
  return [path.join(path.dirname(path.dirname(socketPath)), 'state')];
}

function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

async function readBytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readText(stream: Readable): Promise<string> {
  return (await readBytes(stream)).toString('utf8');
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
