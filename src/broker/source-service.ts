import { z } from 'zod';
import type { Config } from '../protocol/config-schema.js';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import {
  OFFICIAL_SOURCE_NAME,
  SOURCE_NAME_PATTERN,
  type AppView,
  type RefreshOutcome,
  type SourceRefreshResult,
  type SourceState,
  type SourcesStatus,
  type SourceView,
} from '../protocol/sources.js';
import { describe, fetchDocument, type DocumentResult } from './document-fetch.js';
import type { EventBus } from './event-bus.js';
import { Limiter } from './limiter.js';
import type { DomainLog } from './ports.js';
import type { TokenPolicy } from './policy.js';
import type { Clock, StateStore, Upstream } from './ports.js';
import { parseRetryAfter, RefreshScheduler } from './refresh-scheduler.js';
import {
  APP_INFO_MAX_BYTES,
  AppInfoSchema,
  parseDocument,
  SOURCE_JSON_MAX_BYTES,
  SourceJsonSchema,
  WITHDRAWN_JSON_MAX_BYTES,
  WithdrawnJsonSchema,
  type AppInfo,
  type SourceJson,
} from './source-documents.js';
import {
  appViews,
  emptyIndex,
  findApp,
  indexDocumentName,
  MAX_PROBLEMS,
  SourceIndexSchema,
  toProblemView,
  type AppEntry,
  type ProblemRecord,
  type SourceIndex,
} from './source-index.js';
import type { TokenAccess } from './token-access.js';

/**
 * App sources (DESIGN sections 5 and 6): the official source (always present, never removable),
 * user sources added by the URL of their source.json, and the app index built from their
 * documents. Refreshes run at start and on the RefreshScheduler's timers, fetch every document
 * with If-None-Match, keep the last good copy of anything that fails, and never send a request
 * for a restricted source without a usable token.
 */

const SOURCES_DOCUMENT = 'sources.json';

const SourcesDocumentSchema = z.object({
  version: z.literal(1),
  sources: z.array(z.object({ name: z.string(), url: z.string(), addedAt: z.number() })),
});
type SourceRecord = z.output<typeof SourcesDocumentSchema>['sources'][number];

export interface SourceServiceDeps {
  config(): Readonly<Config>;
  /** The token policy for the current config. */
  policy(): TokenPolicy;
  tokens: TokenAccess;
  upstream: Upstream;
  state: StateStore;
  clock: Clock;
  events: EventBus;
  log: DomainLog;
  /** For jitter; injectable for tests. */
  random?: () => number;
}

interface Runtime {
  name: string;
  official: boolean;
  url: string;
  addedAt: number;
  index: SourceIndex;
  running?: Promise<SourceRefreshResult>;
  /** Set when the source is removed while a refresh runs: its result is then thrown away. */
  removed: boolean;
  /** Serialises index writes, so an older index can never overwrite a newer one. */
  persisting: Promise<void>;
}

interface AttemptState {
  problems: ProblemRecord[];
  problemCount: number;
  changed: boolean;
  retryAfterMs: number | undefined;
  tokenProblem: boolean;
}

const TOKEN_CODES: ReadonlySet<string> = new Set(['BROKER_TOKEN_MISSING', 'BROKER_TOKEN_INVALID', 'BROKER_TOKEN_EXPIRED']);

export class SourceService {
  private readonly sources = new Map<string, Runtime>();
  private readonly limiter: Limiter;
  private readonly scheduler: RefreshScheduler;
  private readonly random: () => number;
  private userSourcesPersisting: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  /** Aborted by stop(): shutdown never waits for a slow upstream. */
  private aborter = new AbortController();

  constructor(private readonly deps: SourceServiceDeps) {
    this.random = deps.random ?? Math.random;
    this.limiter = new Limiter(() => deps.config().refresh.concurrency);
    this.scheduler = new RefreshScheduler({
      clock: deps.clock,
      random: this.random,
      timing: () => deps.config().refresh,
      run: (name) => void this.refreshScheduled(name),
    });
    // The official source exists from the start, even before load().
    this.sources.set(OFFICIAL_SOURCE_NAME, this.newRuntime(OFFICIAL_SOURCE_NAME, this.officialUrl(), true, 0));
  }

  /** Loads the user sources and the last good indexes from the state dir (no network). */
  async load(): Promise<void> {
    for (const record of await this.readUserSources()) {
      if (this.sources.has(record.name.toLowerCase())) continue;
      this.sources.set(record.name.toLowerCase(), this.newRuntime(record.name, record.url, false, record.addedAt));
    }
    await Promise.all([...this.sources.values()].map(async (runtime) => {
      runtime.index = await this.readIndex(runtime);
    }));
  }

  /** Refreshes every source now, then on the schedule; refreshes a needs-token source when a token is set. */
  start(): void {
    this.stopped = false;
    if (this.aborter.signal.aborted) this.aborter = new AbortController();
    this.unsubscribe = this.deps.events.subscribe((event) => {
      if (event.type !== 'token.set' || typeof event.server !== 'string') return;
      for (const runtime of this.sources.values()) {
        if (this.stateOf(runtime) === 'needs-token' && this.serverOf(runtime.url) === event.server) this.scheduler.runNow(runtime.name);
      }
    });
    this.scheduler.start([...this.sources.values()].map((runtime) => runtime.name));
  }

  /** Cancels every timer and aborts refresh requests in flight; their results are not saved. */
  stop(): void {
    this.stopped = true;
    this.aborter.abort();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.scheduler.stop();
  }

  /** Resolves once no refresh is running (tests; shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.sources.values()].map((runtime) => runtime.running).filter((p) => p !== undefined);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  list(): SourceView[] {
    return this.ordered().map((runtime) => this.view(runtime));
  }

  get(name: string): SourceView {
    return this.view(this.runtime(name));
  }

  /** Apps of every source (or one), in source order, then by name. */
  apps(source?: string): AppView[] {
    const runtimes = source === undefined ? this.ordered() : [this.runtime(source)];
    return runtimes.flatMap((runtime) => appViews(runtime.name, this.current(runtime).index));
  }

  /** The indexed app info of one app, for downloads (`shasum` and `tarballUrl` per version). */
  app(source: string, name: string): { source: string; official: boolean; info: AppInfo; withdrawn: boolean } {
    const runtime = this.runtime(source);
    const found = findApp(this.current(runtime).index, name);
    if (found === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', { message: `Source "${runtime.name}" has no app "${name}".`, hint: 'List the apps with `tokenbroker apps list`; refresh with `tokenbroker sources refresh`.' });
    }
    return { source: runtime.name, official: runtime.official, ...found };
  }

  /**
   * Adds a user source by the URL of its source.json: policy check, token check (restricted URLs
   * only), fetch and validate, then register it under its `name` and build its index.
   */
  async add(rawUrl: string): Promise<SourceView> {
    const policy = this.deps.policy();
    const classified = policy.classify(rawUrl);
    if (!classified.allowed) {
      throw new BrokerError('BROKER_URL_NOT_ALLOWED', { message: `Cannot add ${describe(rawUrl)}: ${classified.reason}.`, hint: 'Sources must be under a configured server\'s publicPrefixes or authenticatedPrefixes (config.json).' });
    }
    const url = classified.url;
    this.assertUrlFree(url);
    if (classified.needsToken) this.deps.tokens.tokenFor(classified.server.name);
    const result = await fetchDocument({ upstream: this.deps.upstream, policy, tokens: this.deps.tokens }, { url, maxBytes: SOURCE_JSON_MAX_BYTES, signal: this.aborter.signal });
    if (result.status !== 'ok') throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `${describe(url)} did not return a document.` });
    const parsed = parseDocument(result.text, SourceJsonSchema, 'source.json');
    if (!parsed.ok) {
      throw new BrokerError('BROKER_SOURCE_INVALID', {
        message: `${describe(url)}: ${parsed.message}`,
        details: { url: describe(url), ...(parsed.field === undefined ? {} : { field: parsed.field }) },
      });
    }
    const name = parsed.value.name;
    // Checked again after the await: two concurrent adds of the same source must not both win.
    this.assertUrlFree(url);
    if (name.toLowerCase() === OFFICIAL_SOURCE_NAME) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: `${describe(url)} calls itself "${name}", the name reserved for the official source.`, hint: 'Ask the publisher to give the source another name.' });
    }
    const existing = this.sources.get(name.toLowerCase());
    if (existing !== undefined) {
      throw new BrokerError('BROKER_SOURCE_EXISTS', { message: `A source named "${existing.name}" already exists (${describe(existing.url)}).`, details: { name: existing.name } });
    }
    const runtime = this.newRuntime(name, url, false, this.deps.clock.now());
    this.sources.set(name.toLowerCase(), runtime);
    try {
      await this.persistUserSources();
    } catch (err) {
      this.sources.delete(name.toLowerCase());
      throw err;
    }
    this.deps.log.info({ source: name, url: describe(url) }, 'source added');
    const refreshed = await this.refreshOne(runtime, { prefetched: { result, doc: parsed.value } });
    this.emitRun([refreshed]);
    return this.view(runtime);
  }

  async remove(name: string): Promise<{ name: string; removed: true }> {
    const runtime = this.runtime(name);
    if (runtime.official) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: 'The official source cannot be removed.' });
    }
    runtime.removed = true;
    this.sources.delete(runtime.name.toLowerCase());
    this.scheduler.remove(runtime.name);
    try {
      await this.persistUserSources();
    } catch (err) {
      runtime.removed = false;
      this.sources.set(runtime.name.toLowerCase(), runtime);
      throw err;
    }
    await runtime.persisting.catch(() => undefined);
    await this.deps.state.remove(indexDocumentName(runtime.name));
    this.deps.log.info({ source: runtime.name }, 'source removed');
    return { name: runtime.name, removed: true };
  }

  /** Refreshes one source (or all) now, whatever the schedule; resolves with each result. */
  async refresh(name?: string): Promise<SourceRefreshResult[]> {
    const runtimes = name === undefined ? this.ordered() : [this.runtime(name)];
    const results = await Promise.all(runtimes.map((runtime) => this.refreshOne(runtime)));
    this.emitRun(results);
    return results;
  }

  statusSection(): { sources: SourcesStatus } {
    // Cheap on purpose (status is polled): states only, no app views.
    const runtimes = this.ordered();
    const states = runtimes.map((runtime) => ({ name: runtime.name, state: this.stateOf(runtime) }));
    const last = Math.max(...runtimes.map((runtime) => runtime.index.lastRefreshAt ?? -Infinity));
    const next = Math.min(...runtimes.map((runtime) => this.scheduler.nextAt(runtime.name) ?? Infinity));
    const failing = states.filter((entry) => entry.state === 'failing').map((entry) => entry.name);
    return {
      sources: {
        count: runtimes.length,
        lastRefreshAt: Number.isFinite(last) ? new Date(last).toISOString() : null,
        nextRefreshAt: Number.isFinite(next) ? new Date(next).toISOString() : null,
        failing: failing.length,
        failingSources: failing,
        needsToken: states.filter((entry) => entry.state === 'needs-token').map((entry) => entry.name),
        items: states.map((entry) => ({ id: entry.name, name: entry.name, state: entry.state })),
      },
    };
  }

  // ---- refresh ----

  private async refreshScheduled(name: string): Promise<void> {
    const runtime = this.sources.get(name.toLowerCase());
    if (runtime === undefined || this.stopped) return;
    try {
      this.emitRun([await this.refreshOne(runtime)]);
    } catch (err) {
      this.deps.log.error({ source: name, err: errorText(err) }, 'source refresh failed unexpectedly');
      this.scheduler.failed(runtime.name);
    }
  }

  /** Joins a refresh already running for this source rather than starting a second one. */
  private refreshOne(runtime: Runtime, options: { prefetched?: { result: DocumentResult; doc: SourceJson } } = {}): Promise<SourceRefreshResult> {
    const current = this.current(runtime);
    if (current.running !== undefined) return current.running;
    const running = this.runRefresh(current, options).finally(() => {
      current.running = undefined;
    });
    current.running = running;
    return running;
  }

  private async runRefresh(runtime: Runtime, options: { prefetched?: { result: DocumentResult; doc: SourceJson } }): Promise<SourceRefreshResult> {
    const wasState = this.stateOf(runtime);
    const attempt: AttemptState = { problems: [], problemCount: 0, changed: false, retryAfterMs: undefined, tokenProblem: false };
    const now = this.deps.clock.now();
    const previous = runtime.index;
    const next: SourceIndex = { ...previous, apps: { ...previous.apps }, withdrawn: [...previous.withdrawn], problems: [], problemCount: 0, lastAttemptAt: now };
    const policy = this.deps.policy();
    const fetchDeps = { upstream: this.deps.upstream, policy, tokens: this.deps.tokens };
    const signal = this.aborter.signal;
    const problem = (err: unknown, url: string, field?: string): void => this.record(attempt, err, url, now, field);

    const classified = policy.classify(runtime.url);
    let proceed = true;
    if (!classified.allowed) {
      problem(new BrokerError('BROKER_URL_NOT_ALLOWED', { message: `${classified.reason}.` }), runtime.url);
      proceed = false;
    } else if (classified.needsToken) {
      try {
        this.deps.tokens.tokenFor(classified.server.name);
      } catch (err) {
        // No usable token: not a single request for this source until there is one.
        problem(err, runtime.url);
        proceed = false;
      }
    }

    if (proceed) {
      // Only a source.json that answered (200 valid, or 304) leads on to the app documents: while
      // it fails, everything stays as last good and the outage costs one request per attempt.
      let sourceDoc: SourceJson | undefined;
      try {
        const result = options.prefetched?.result ?? (await this.limiter.run(() => fetchDocument(fetchDeps, { url: runtime.url, etag: previous.source === undefined ? undefined : previous.sourceEtag, maxBytes: SOURCE_JSON_MAX_BYTES, signal })));
        if (result.status === 'ok') {
          const parsed = options.prefetched?.doc === undefined ? parseDocument(result.text, SourceJsonSchema, 'source.json') : ({ ok: true, value: options.prefetched.doc } as const);
          if (parsed.ok) {
            attempt.changed ||= JSON.stringify(parsed.value) !== JSON.stringify(previous.source);
            sourceDoc = parsed.value;
            next.source = parsed.value;
            next.sourceEtag = result.etag;
          } else {
            problem(new BrokerError('BROKER_SOURCE_INVALID', { message: `${describe(runtime.url)}: ${parsed.message}` }), runtime.url, parsed.field);
          }
        } else if (result.status === 'not-modified') {
          sourceDoc = previous.source;
        }
      } catch (err) {
        problem(err, runtime.url);
      }
      if (sourceDoc !== undefined) {
        await this.refreshAppDocuments(runtime, sourceDoc, previous, next, attempt, fetchDeps, signal);
      }
    }

    next.problems = attempt.problems;
    next.problemCount = attempt.problemCount;
    if (attempt.problemCount === 0) next.lastRefreshAt = now;
    const outcome: RefreshOutcome = attempt.tokenProblem ? 'needs-token' : attempt.problemCount > 0 ? 'failed' : attempt.changed ? 'updated' : 'unchanged';
    // Removed meanwhile, or aborted by shutdown: the last saved index stays as it is.
    if (runtime.removed || signal.aborted) return { ...this.view(runtime), outcome };
    runtime.index = next;
    // An outage repeating the same problems on every backoff attempt rewrites nothing.
    const repeated = sameProblems(previous, next);
    const worthSaving = attempt.changed || next.lastRefreshAt !== previous.lastRefreshAt || next.sourceEtag !== previous.sourceEtag || !repeated;
    if (worthSaving) await this.persistIndex(runtime);
    this.reschedule(runtime, outcome, attempt.retryAfterMs);
    const view = this.view(runtime);
    this.announce(runtime, view, outcome, wasState, repeated);
    return { ...view, outcome };
  }

  /** withdrawn.json and every app info document, with bounded concurrency shared by all sources. */
  private async refreshAppDocuments(
    runtime: Runtime,
    sourceDoc: SourceJson,
    previous: SourceIndex,
    next: SourceIndex,
    attempt: AttemptState,
    fetchDeps: Parameters<typeof fetchDocument>[0],
    signal: AbortSignal,
  ): Promise<void> {
    const now = next.lastAttemptAt ?? this.deps.clock.now();
    const withdrawnUrl = new URL('withdrawn.json', runtime.url).href;
    const apps: Record<string, AppEntry> = {};

    const fetchWithdrawn = async (): Promise<void> => {
      try {
        const result = await this.limiter.run(() =>
          fetchDocument(fetchDeps, { url: withdrawnUrl, etag: previous.withdrawnEtag, maxBytes: WITHDRAWN_JSON_MAX_BYTES, optional: true, signal }),
        );
        if (result.status === 'absent') {
          attempt.changed ||= previous.withdrawn.length > 0;
          next.withdrawn = [];
          next.withdrawnEtag = undefined;
        } else if (result.status === 'ok') {
          const parsed = parseDocument(result.text, WithdrawnJsonSchema, 'withdrawn.json');
          if (parsed.ok) {
            attempt.changed ||= JSON.stringify(parsed.value) !== JSON.stringify(previous.withdrawn);
            next.withdrawn = parsed.value;
            next.withdrawnEtag = result.etag;
          } else {
            this.record(attempt, new BrokerError('BROKER_SOURCE_INVALID', { message: `${describe(withdrawnUrl)}: ${parsed.message}` }), withdrawnUrl, now, parsed.field);
          }
        }
      } catch (err) {
        this.record(attempt, err, withdrawnUrl, now);
      }
    };

    const fetchApp = async (url: string, onlyWithdrawn: boolean): Promise<void> => {
      const before = previous.apps[url];
      const keep = (): void => {
        if (before !== undefined) apps[url] = before;
      };
      try {
        const result = await this.limiter.run(() => fetchDocument(fetchDeps, { url, etag: before?.info === undefined ? undefined : before.etag, maxBytes: APP_INFO_MAX_BYTES, signal }));
        if (result.status === 'not-modified') {
          keep();
          return;
        }
        if (result.status !== 'ok') return;
        const parsed = parseDocument(result.text, AppInfoSchema, 'app info');
        if (parsed.ok) {
          attempt.changed ||= JSON.stringify(parsed.value) !== JSON.stringify(before?.info);
          apps[url] = { ...(result.etag === undefined ? {} : { etag: result.etag }), info: parsed.value };
        } else {
          keep();
          this.record(attempt, new BrokerError('BROKER_SOURCE_INVALID', { message: `${describe(url)}: ${parsed.message}` }), url, now, parsed.field);
        }
      } catch (err) {
        // A withdrawn app whose document is gone is simply no longer listed.
        if (onlyWithdrawn && isBrokerError(err, 'BROKER_UPSTREAM_NOT_FOUND')) return;
        keep();
        this.record(attempt, err, url, now);
      }
    };

    const listed = new Set(sourceDoc.apps);
    await Promise.all([fetchWithdrawn(), ...[...listed].map((url) => fetchApp(url, false))]);
    const withdrawnOnly = [...new Set(next.withdrawn)].filter((url) => !listed.has(url));
    await Promise.all(withdrawnOnly.map((url) => fetchApp(url, true)));
    // Apps no longer listed anywhere drop out of the index.
    attempt.changed ||= Object.keys(previous.apps).some((url) => !(url in apps) && previous.apps[url]?.info !== undefined);
    next.apps = apps;
  }

  private record(attempt: AttemptState, err: unknown, url: string, at: number, field?: string): void {
    const error = isBrokerError(err) ? err : new BrokerError('BROKER_INTERNAL', { message: `Unexpected failure: ${errorText(err)}`, cause: err });
    attempt.problemCount += 1;
    if (TOKEN_CODES.has(error.code)) attempt.tokenProblem = true;
    const details = error.details ?? {};
    const status = typeof details.status === 'number' ? details.status : undefined;
    if (typeof details.retryAfter === 'string') {
      const ms = parseRetryAfter(details.retryAfter, this.deps.clock.now());
      if (ms !== undefined) attempt.retryAfterMs = Math.max(attempt.retryAfterMs ?? 0, ms);
    }
    if (attempt.problems.length >= MAX_PROBLEMS) return;
    attempt.problems.push({
      code: error.code,
      message: error.message,
      at,
      url: describe(url),
      ...(field === undefined ? {} : { field }),
      ...(status === undefined ? {} : { status }),
    });
  }

  private reschedule(runtime: Runtime, outcome: RefreshOutcome, retryAfterMs: number | undefined): void {
    if (outcome === 'needs-token') this.scheduler.parked(runtime.name);
    else if (outcome === 'failed') this.scheduler.failed(runtime.name, retryAfterMs);
    else this.scheduler.succeeded(runtime.name);
  }

  private announce(runtime: Runtime, view: SourceView, outcome: RefreshOutcome, wasState: SourceState, repeated: boolean): void {
    if (outcome === 'failed' || (outcome === 'needs-token' && wasState !== 'needs-token')) {
      const error = view.lastError;
      this.deps.events.emit('source.failed', {
        source: runtime.name,
        state: view.state,
        ...(error === null ? {} : { error: { code: error.code, message: error.message } }),
        errorCount: view.errorCount,
        nextRefreshAt: view.nextRefreshAt,
      });
      // The same problem again (an outage being retried) is not news for the log.
      const log = repeated ? this.deps.log.debug.bind(this.deps.log) : this.deps.log.warn.bind(this.deps.log);
      log({ source: runtime.name, state: view.state, code: error?.code, error: error?.message, errors: view.errorCount, nextRefreshAt: view.nextRefreshAt }, 'source refresh failed');
    }
  }

  /** One `sources.refreshed` per run in which at least one source got through. */
  private emitRun(results: readonly SourceRefreshResult[]): void {
    const good = results.filter((result) => result.outcome === 'updated' || result.outcome === 'unchanged');
    if (good.length === 0) return;
    this.deps.events.emit('sources.refreshed', {
      sources: good.map((result) => ({ name: result.name, outcome: result.outcome, appCount: result.appCount })),
    });
    this.deps.log.debug({ sources: good.map((result) => `${result.name}:${result.outcome}`) }, 'sources refreshed');
  }

  // ---- views ----

  private view(runtime: Runtime): SourceView {
    const { index } = runtime;
    const classified = this.deps.policy().classify(runtime.url);
    const problems = index.problems.map(toProblemView);
    const nextAt = this.scheduler.nextAt(runtime.name);
    return {
      name: runtime.name,
      url: runtime.url,
      official: runtime.official,
      restricted: classified.allowed && classified.needsToken,
      state: this.stateOf(runtime),
      appCount: appViews(runtime.name, index).length,
      lastRefreshAt: index.lastRefreshAt === undefined ? null : new Date(index.lastRefreshAt).toISOString(),
      lastError: problems[0] ?? null,
      errors: problems,
      errorCount: index.problemCount,
      nextRefreshAt: nextAt === undefined ? null : new Date(nextAt).toISOString(),
      ...(index.source?.description === undefined ? {} : { description: index.source.description }),
    };
  }

  /**
   * needs-token: the last attempt stopped for want of a usable token; failing: it had other
   * problems; stale: no problems, but no complete refresh within two intervals (or ever); ok.
   */
  private stateOf(runtime: Runtime): SourceState {
    const { index } = runtime;
    if (index.problems.some((problem) => TOKEN_CODES.has(problem.code))) return 'needs-token';
    if (index.problemCount > 0) return 'failing';
    const staleAfter = 2 * this.deps.config().refresh.intervalMinutes * 60_000;
    if (index.lastRefreshAt === undefined || this.deps.clock.now() - index.lastRefreshAt > staleAfter) return 'stale';
    return 'ok';
  }

  // ---- registry ----

  private ordered(): Runtime[] {
    const all = [...this.sources.values()].map((runtime) => (runtime.official ? this.current(runtime) : runtime));
    return all.sort((a, b) => (a.official ? -1 : b.official ? 1 : a.addedAt - b.addedAt || (a.name < b.name ? -1 : 1)));
  }

  private runtime(name: string): Runtime {
    const runtime = this.sources.get(name.toLowerCase());
    if (runtime === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', {
        message: `There is no source named "${name}".`,
        hint: 'List the sources with `tokenbroker sources list`.',
        details: { name },
      });
    }
    return runtime.official ? this.current(runtime) : runtime;
  }

  /**
   * The official source follows `officialSource` in config: after a reload that points it
   * elsewhere, the old index no longer describes it and is dropped.
   */
  private current(runtime: Runtime): Runtime {
    if (!runtime.official) return runtime;
    const url = this.officialUrl();
    if (runtime.url === url) return runtime;
    this.deps.log.info({ url: describe(url) }, 'officialSource changed; rebuilding the official index');
    runtime.url = url;
    runtime.index = emptyIndex(url);
    return runtime;
  }

  private officialUrl(): string {
    const raw = this.deps.config().officialSource;
    const classified = this.deps.policy().classify(raw);
    return classified.allowed ? classified.url : raw;
  }

  private serverOf(url: string): string | undefined {
    const classified = this.deps.policy().classify(url);
    return classified.allowed ? classified.server.name : undefined;
  }

  private assertUrlFree(url: string): void {
    if (url === this.officialUrl()) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: `${describe(url)} is the official source, which is always present.` });
    }
    const existing = [...this.sources.values()].find((runtime) => !runtime.official && runtime.url === url);
    if (existing !== undefined) {
      throw new BrokerError('BROKER_SOURCE_EXISTS', { message: `${describe(url)} is already added as "${existing.name}".`, details: { name: existing.name } });
    }
  }

  private newRuntime(name: string, url: string, official: boolean, addedAt: number): Runtime {
    return { name, url, official, addedAt, index: emptyIndex(url), removed: false, persisting: Promise.resolve() };
  }

  // ---- persistence ----

  private async readUserSources(): Promise<SourceRecord[]> {
    let raw: unknown;
    try {
      raw = await this.deps.state.read(SOURCES_DOCUMENT);
    } catch (err) {
      this.deps.log.error({ err: errorText(err) }, 'cannot read the list of sources; starting with the official source only');
      return [];
    }
    if (raw === undefined) return [];
    const parsed = SourcesDocumentSchema.safeParse(raw);
    if (!parsed.success) {
      this.deps.log.error({ document: SOURCES_DOCUMENT }, 'the list of sources is not valid; starting with the official source only');
      return [];
    }
    return parsed.data.sources.filter((record) => SOURCE_NAME_PATTERN.test(record.name) && record.name.toLowerCase() !== OFFICIAL_SOURCE_NAME);
  }

  private async readIndex(runtime: Runtime): Promise<SourceIndex> {
    try {
      const raw = await this.deps.state.read(indexDocumentName(runtime.name));
      if (raw === undefined) return emptyIndex(runtime.url);
      const parsed = SourceIndexSchema.safeParse(raw);
      if (!parsed.success) {
        this.deps.log.warn({ source: runtime.name }, 'the stored index is not valid; it is rebuilt by the next refresh');
        return emptyIndex(runtime.url);
      }
      // An index of another URL (officialSource changed while we were stopped) does not apply.
      return parsed.data.url === runtime.url ? parsed.data : emptyIndex(runtime.url);
    } catch (err) {
      this.deps.log.warn({ source: runtime.name, err: errorText(err) }, 'cannot read the stored index; it is rebuilt by the next refresh');
      return emptyIndex(runtime.url);
    }
  }

  private async persistIndex(runtime: Runtime): Promise<void> {
    const write = runtime.persisting.then(async () => {
      if (runtime.removed) return;
      await this.deps.state.write(indexDocumentName(runtime.name), runtime.index);
    });
    runtime.persisting = write.catch(() => undefined);
    try {
      await write;
    } catch (err) {
      // The index in memory is still served; the next refresh writes it again.
      this.deps.log.error({ source: runtime.name, err: errorText(err) }, 'cannot save the source index');
    }
  }

  private async persistUserSources(): Promise<void> {
    const write = this.userSourcesPersisting.then(() =>
      this.deps.state.write(SOURCES_DOCUMENT, {
        version: 1,
        sources: [...this.sources.values()].filter((runtime) => !runtime.official).map((runtime) => ({ name: runtime.name, url: runtime.url, addedAt: runtime.addedAt })),
      }),
    );
    this.userSourcesPersisting = write.catch(() => undefined);
    await write;
  }
}

function sameProblems(a: SourceIndex, b: SourceIndex): boolean {
  const key = (index: SourceIndex): string => JSON.stringify([index.problemCount, index.problems.map((p) => [p.code, p.message, p.url, p.field, p.status])]);
  return key(a) === key(b);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
