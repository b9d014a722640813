import type { Config } from '../protocol/config-schema.js';
import { describeArtifactUrl as describe } from '../protocol/artifact-url.js';
import { BrokerError } from '../protocol/errors.js';
import { type AppTarball, type AppView, type RefreshOutcome, type SourceAdded, type SourceRefreshResult, type SourceRemoved, type SourceState, type SourcesStatus, type SourceView } from '../protocol/sources.js';
import { APP_ASSET_KINDS, assetUrl, dropAsset, loadAsset, type AppAsset, type AppAssetKind } from './app-assets.js';
import { resolveTarball } from './app-tarball.js';
import { appCounts, appViews, findApp, indexedApps, type IndexedApp } from './app-views.js';
import type { EventBus } from './event-bus.js';
import { Limiter } from './limiter.js';
import type { Clock, DomainLog, StateStore, TokenAccess } from './ports.js';
import type { TokenPolicy } from './policy.js';
import { RefreshScheduler } from './refresh-scheduler.js';
import { parseDocument, SOURCE_JSON_MAX_BYTES, SourceJsonSchema } from './source-documents.js';
import { emptyIndex, toProblemView, type SourceIndex } from './source-index.js';
import { refreshSource, TOKEN_CODES, type DocumentFetcher, type Prefetched } from './source-refresh.js';
import { errorText, SourceRegistry, type SourceRuntime } from './source-registry.js';
import type { TokenUse, UpstreamExchange } from './upstream-exchange.js';

/**
 * App sources (DESIGN sections 5 and 6), the one entry point the routes use: views of the
 * registry and indexes (reads change nothing), add/remove, refresh now and on the scheduler's
 * timers, and token events (a restricted source needs a token the moment it has none, and is
 * refreshed the moment one arrives). The jobs live in source-registry, source-refresh,
 * source-documents, app-views and app-assets.
 */

export interface SourceServiceDeps {
  config(): Readonly<Config>;
  /** The token policy for the current config. */
  policy(): TokenPolicy;
  tokens: TokenAccess;
  /** The daemon's one upstream exchange: every document of every source goes through it. */
  exchange: UpstreamExchange;
  state: StateStore;
  clock: Clock;
  events: EventBus;
  log: DomainLog;
  /** For jitter; injectable for tests. */
  random?: () => number;
}

export class SourceService {
  readonly registry: SourceRegistry;
  private readonly limiter: Limiter;
  private readonly scheduler: RefreshScheduler;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  /** Aborted by stop(): shutdown never waits for a slow upstream. */
  private aborter = new AbortController();
  /** Every document of every source goes through the one upstream exchange. */
  private readonly fetchDocument: DocumentFetcher;

  constructor(private readonly deps: SourceServiceDeps) {
    // A third party's index never makes the daemon use the token (DESIGN section 6).
    this.fetchDocument = ({ thirdParty, ...request }) => deps.exchange.document(thirdParty === undefined ? request : { ...request, token: deps.exchange.withoutToken(thirdParty) });
    this.limiter = new Limiter(() => deps.config().refresh.concurrency);
    this.scheduler = new RefreshScheduler({
      clock: deps.clock,
      random: deps.random ?? Math.random,
      timing: () => deps.config().refresh,
      run: (id) => void this.refreshScheduled(id),
    });
    this.registry = new SourceRegistry({
      state: deps.state,
      log: deps.log,
      officialUrl: () => {
        const raw = deps.config().officialSource;
        const classified = deps.policy().classify(raw);
        return classified.allowed ? classified.url : raw;
      },
      canonicalUrl: (url) => {
        // A URL the policy refuses (a third-party one outside its add) is compared as given.
        const classified = deps.policy().classify(url);
        return classified.allowed ? classified.canonicalUrl : url;
      },
      onConfiguredServer: (url) => {
        try {
          const origin = new URL(url).origin;
          return deps.config().servers.some((server) => server.origin === origin);
        } catch {
          return false;
        }
      },
    });
  }

  /** Loads the user sources and the last good indexes from the state dir (no network). */
  async load(): Promise<void> {
    await this.registry.load();
  }

  /** The token policy's third-party hook (DESIGN section 6): only URLs a third-party source lists. */
  allowsThirdParty(canonicalUrl: string): boolean {
    return this.registry.allowsThirdParty(canonicalUrl);
  }

  /** Refreshes every source now, then on the schedule; refreshes a needs-token source when a token is set. */
  start(): void {
    this.stopped = false;
    if (this.aborter.signal.aborted) this.aborter = new AbortController();
    this.unsubscribe = this.deps.events.subscribe((event) => {
      if (event.type !== 'token.set' || typeof event.server !== 'string') return;
      for (const runtime of this.registry.all()) {
        if (this.serverOf(runtime) === event.server && (this.stateOf(runtime) === 'needs-token' || hasTokenProblem(runtime.index))) this.scheduler.runNow(runtime.id);
      }
    });
    this.scheduler.start(this.registry.all().map((runtime) => runtime.id));
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
      const running = this.registry.all().map((runtime) => runtime.running).filter((p) => p !== undefined);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  list(): SourceView[] {
    return this.registry.all().map((runtime) => this.view(runtime));
  }

  /** By id or exact display name. */
  get(ref: string): SourceView {
    return this.view(this.registry.resolve(ref));
  }

  /** Apps of every source (or one), in source order, then by name. */
  apps(source?: string): AppView[] {
    const runtimes = source === undefined ? this.registry.all() : [this.registry.resolve(source)];
    return runtimes.flatMap((runtime) => appViews(runtime.id, this.registry.indexOf(runtime)));
  }

  app(source: string, name: string): IndexedApp {
    const runtime = this.registry.resolve(source);
    const found = findApp(this.registry.indexOf(runtime), name);
    if (found === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', { message: `Source "${runtime.id}" has no app "${name}".`, hint: 'List the apps with `tokenbroker apps list`; refresh with `tokenbroker sources refresh`.' });
    }
    return { source: runtime.id, official: runtime.official, ...found };
  }

  /**
   * The icon or release notes kept for an app at its last refresh (served offline). A third-party
   * source's copy of a URL that needs the token is never served, whenever it was kept.
   */
  async asset(source: string, name: string, kind: AppAssetKind): Promise<AppAsset> {
    const app = this.app(source, name);
    const thirdParty = this.thirdPartyOf(app.source);
    if (thirdParty !== undefined) this.refuseTokenUrl(assetUrl(app.info, kind), thirdParty);
    return loadAsset(this.deps.state, app.source, app.info.name, kind);
  }

  /**
   * One version's tarball and the token use its fetch may have: the server's for the official
   * and the user's own sources on a server; none for a third party's (DESIGN section 6), whose
   * tarball URLs that need the token are refused before anything is sent.
   */
  tarball(source: string, name: string, version: string | undefined): { tarball: AppTarball; token?: TokenUse } {
    const app = this.app(source, name);
    const tarball = resolveTarball(app, version);
    const thirdParty = this.thirdPartyOf(app.source);
    if (thirdParty === undefined) return { tarball };
    this.refuseTokenUrl(tarball.tarballUrl, thirdParty);
    return { tarball, token: this.deps.exchange.withoutToken(thirdParty) };
  }

  /** "The third-party source "x"" for a third-party source, else undefined. */
  private thirdPartyOf(sourceId: string): string | undefined {
    const runtime = this.registry.byId(sourceId);
    return runtime !== undefined && !runtime.official && this.registry.isThirdParty(runtime) ? `The third-party source "${runtime.id}"` : undefined;
  }

  private refuseTokenUrl(url: string, listedBy: string): void {
    const classified = this.deps.policy().classify(url);
    if (classified.allowed && classified.needsToken) this.deps.exchange.withoutToken(listedBy).get(classified.server.name);
  }

  /**
   * Adds a user source by the URL of its source.json (any URL form; any https origin, as the
   * launcher allows): policy check, token check (restricted URLs only), fetch and validate, then
   * register it under an id made from its display name and build its index. Answers like the
   * launcher's add: the source and its apps.
   */
  async add(rawUrl: string): Promise<SourceAdded> {
    const policy = this.deps.policy();
    // A third-party URL is allowed for this one document (the hook answers for it while it is read).
    const classified = await this.registry.allowingOnce(rawUrl, () => Promise.resolve(policy.classify(rawUrl)));
    if (!classified.allowed) {
      throw new BrokerError('BROKER_URL_NOT_ALLOWED', {
        message: `Cannot add ${describe(rawUrl)}: ${classified.reason}.`,
        hint: 'A source is an https URL of a source.json (http only on loopback with "allowInsecureLoopback": true).',
      });
    }
    const canonical = classified.url;
    this.registry.assertFree(canonical);
    if (classified.needsToken) this.deps.tokens.tokenFor(classified.server.name);
    const result = await this.registry.allowingOnce(canonical, () =>
      this.limiter.run(() => this.fetchDocument({ url: canonical, maxBytes: SOURCE_JSON_MAX_BYTES, signal: this.aborter.signal })),
    );
    if (result.status !== 'ok') throw new BrokerError('BROKER_UPSTREAM_ERROR', { message: `${describe(canonical)} did not return a document.` });
    const parsed = parseDocument(result.text, SourceJsonSchema, 'source.json');
    if (!parsed.ok) {
      throw new BrokerError('BROKER_SOURCE_INVALID', {
        message: `${describe(canonical)}: ${parsed.message}`,
        details: { url: describe(canonical), ...(parsed.field === undefined ? {} : { field: parsed.field }) },
      });
    }
    // Checked after the await: two concurrent adds of the same source must not both win.
    this.registry.assertFree(canonical, parsed.value.name);
    const runtime = await this.registry.register(parsed.value.name, canonical, this.deps.clock.now());
    this.deps.log.info({ source: runtime.id, url: describe(canonical) }, 'source added');
    const refreshed = await this.refreshOne(runtime, { result, doc: parsed.value });
    this.emitRun([refreshed]);
    if (!this.stopped) this.scheduler.succeeded(runtime.id);
    return { source: this.view(runtime), apps: appViews(runtime.id, this.registry.indexOf(runtime)) };
  }

  /** By id or exact display name; the official source cannot be removed. */
  async remove(ref: string): Promise<SourceRemoved> {
    const runtime = this.registry.resolve(ref);
    if (runtime.official) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: 'The official source cannot be removed.' });
    }
    const name = this.registry.displayName(runtime);
    const apps = indexedApps(runtime.index);
    this.scheduler.remove(runtime.id);
    await this.registry.unregister(runtime);
    await Promise.all(apps.flatMap((app) => APP_ASSET_KINDS.map((kind) => dropAsset(this.deps.state, runtime.id, app.info.name, kind).catch(() => undefined))));
    this.deps.log.info({ source: runtime.id }, 'source removed');
    return { id: runtime.id, name, removed: true };
  }

  /** Refreshes one source (or all) now, whatever the schedule; resolves with each result. */
  async refresh(ref?: string): Promise<SourceRefreshResult[]> {
    const runtimes = ref === undefined ? this.registry.all() : [this.registry.resolve(ref)];
    const results = await Promise.all(runtimes.map((runtime) => this.refreshOne(runtime)));
    this.emitRun(results);
    return results;
  }

  statusSection(): { sources: SourcesStatus } {
    // Cheap on purpose (status is polled): states only, no app views.
    const runtimes = this.registry.all();
    const states = runtimes.map((runtime) => ({ id: runtime.id, name: this.registry.displayName(runtime), state: this.stateOf(runtime) }));
    const last = Math.max(...runtimes.map((runtime) => this.registry.indexOf(runtime).lastRefreshAt ?? -Infinity));
    const next = Math.min(...runtimes.map((runtime) => this.scheduler.nextAt(runtime.id) ?? Infinity));
    const failing = states.filter((entry) => entry.state === 'failing').map((entry) => entry.id);
    return {
      sources: {
        count: runtimes.length,
        lastRefreshAt: Number.isFinite(last) ? new Date(last).toISOString() : null,
        nextRefreshAt: Number.isFinite(next) ? new Date(next).toISOString() : null,
        failing: failing.length,
        failingSources: failing,
        needsToken: states.filter((entry) => entry.state === 'needs-token').map((entry) => entry.id),
        items: states.map(({ id, name, state }) => ({ id, name, state })),
      },
    };
  }

  // ---- refresh ----

  private async refreshScheduled(id: string): Promise<void> {
    const runtime = this.registry.byId(id);
    if (runtime === undefined || this.stopped) return;
    try {
      this.emitRun([await this.refreshOne(runtime)]);
    } catch (err) {
      this.deps.log.error({ source: id, err: errorText(err) }, 'source refresh failed unexpectedly');
      this.scheduler.failed(runtime.id);
    }
  }

  /** Joins a refresh already running for this source rather than starting a second one. */
  private refreshOne(runtime: SourceRuntime, prefetched?: Prefetched): Promise<SourceRefreshResult> {
    if (runtime.running !== undefined) return runtime.running;
    const running = this.runRefresh(runtime, prefetched).finally(() => {
      runtime.running = undefined;
    });
    runtime.running = running;
    return running;
  }

  private async runRefresh(runtime: SourceRuntime, prefetched: Prefetched | undefined): Promise<SourceRefreshResult> {
    // Whether the last attempt already stopped for want of a token (the live state says so at once).
    const wasParked = hasTokenProblem(runtime.index);
    const signal = this.aborter.signal;
    // The official source follows config: an index of its old URL no longer describes it.
    const url = this.registry.urlOf(runtime);
    if (runtime.index.url !== url) {
      this.deps.log.info({ url: describe(url) }, 'officialSource changed; rebuilding the official index');
      runtime.url = url;
      runtime.index = emptyIndex(url);
    }
    const previous = runtime.index;
    const attempt = await refreshSource(
      { fetchDocument: this.fetchDocument, policy: this.deps.policy(), tokens: this.deps.tokens, state: this.deps.state, clock: this.deps.clock, limiter: this.limiter, registry: this.registry },
      runtime,
      previous,
      signal,
      prefetched,
    );
    const { next, outcome } = attempt;
    // Removed meanwhile, or aborted by shutdown: the last saved index stays as it is.
    if (runtime.removed || signal.aborted) return { ...this.view(runtime), outcome };
    runtime.index = next;
    // An outage repeating the same problems on every backoff attempt rewrites nothing.
    const repeated = sameProblems(previous, next);
    const assetsChanged = Object.entries(next.apps).some(([appUrl, entry]) => entry.assets !== previous.apps[appUrl]?.assets);
    const worthSaving = attempt.changed || assetsChanged || next.lastRefreshAt !== previous.lastRefreshAt || next.sourceEtag !== previous.sourceEtag || !repeated;
    if (worthSaving) await this.registry.persistIndex(runtime);
    this.reschedule(runtime, outcome, attempt.retryAfterMs, attempt.transient);
    const view = this.view(runtime);
    this.announce(runtime, view, outcome, wasParked, repeated);
    return { ...view, outcome };
  }

  private reschedule(runtime: SourceRuntime, outcome: RefreshOutcome, retryAfterMs: number | undefined, transient: boolean): void {
    if (outcome === 'needs-token') this.scheduler.parked(runtime.id);
    else if (outcome === 'failed' && transient) this.scheduler.failed(runtime.id, retryAfterMs);
    // Gone or invalid documents will not fix themselves in minutes: the normal interval.
    else if (outcome === 'failed') this.scheduler.failedLasting(runtime.id, retryAfterMs);
    else this.scheduler.succeeded(runtime.id);
  }

  private announce(runtime: SourceRuntime, view: SourceView, outcome: RefreshOutcome, wasParked: boolean, repeated: boolean): void {
    if (outcome === 'failed' || (outcome === 'needs-token' && !wasParked)) {
      const error = view.lastError;
      this.deps.events.emit('source.failed', {
        source: runtime.id,
        state: view.state,
        ...(error === null ? {} : { error: { code: error.code, message: error.message } }),
        errorCount: view.errorCount,
        nextRefreshAt: view.nextRefreshAt,
      });
      // The same problem again (an outage being retried) is not news for the log.
      const log = repeated ? this.deps.log.debug.bind(this.deps.log) : this.deps.log.warn.bind(this.deps.log);
      log({ source: runtime.id, state: view.state, code: error?.code, error: error?.message, errors: view.errorCount, nextRefreshAt: view.nextRefreshAt }, 'source refresh failed');
    }
  }

  /** One `sources.refreshed` per run in which at least one source got through. */
  private emitRun(results: readonly SourceRefreshResult[]): void {
    const good = results.filter((result) => result.outcome === 'updated' || result.outcome === 'unchanged');
    if (good.length === 0) return;
    this.deps.events.emit('sources.refreshed', {
      sources: good.map((result) => ({ id: result.id, name: result.name, outcome: result.outcome, appCount: result.appCount })),
    });
    this.deps.log.debug({ sources: good.map((result) => `${result.id}:${result.outcome}`) }, 'sources refreshed');
  }

  // ---- views ----

  private view(runtime: SourceRuntime): SourceView {
    const index = this.registry.indexOf(runtime);
    const url = this.registry.urlOf(runtime);
    const classified = this.deps.policy().classify(url);
    const problems = index.problems.map(toProblemView);
    const nextAt = this.scheduler.nextAt(runtime.id);
    return {
      id: runtime.id,
      name: this.registry.displayName(runtime),
      ...(index.source?.description === undefined ? {} : { description: index.source.description }),
      url,
      official: runtime.official,
      restricted: classified.allowed && classified.needsToken,
      thirdParty: this.registry.isThirdParty(runtime),
      state: this.stateOf(runtime),
      ...appCounts(index),
      lastRefreshAt: index.lastRefreshAt === undefined ? null : new Date(index.lastRefreshAt).toISOString(),
      lastError: problems.find((problem) => problem.note !== true) ?? null,
      problems,
      errorCount: index.problemCount,
      nextRefreshAt: nextAt === undefined ? null : new Date(nextAt).toISOString(),
    };
  }

  /**
   * needs-token: restricted and no usable token right now (token removed, invalid or expired: at
   * once, not at the next refresh), or the last attempt stopped for want of one; failing: the
   * last attempt had other problems; stale: no complete refresh within two intervals (or ever); ok.
   */
  private stateOf(runtime: SourceRuntime): SourceState {
    const index = this.registry.indexOf(runtime);
    if (!this.tokenUsable(runtime)) return 'needs-token';
    if (index.problemCount > 0) return hasTokenProblem(index) ? 'needs-token' : 'failing';
    const staleAfter = 2 * this.deps.config().refresh.intervalMinutes * 60_000;
    if (index.lastRefreshAt === undefined || this.deps.clock.now() - index.lastRefreshAt > staleAfter) return 'stale';
    return 'ok';
  }

  /** False for a restricted source whose server has no usable token now (the token itself is not kept). */
  private tokenUsable(runtime: SourceRuntime): boolean {
    const classified = this.deps.policy().classify(this.registry.urlOf(runtime));
    if (!classified.allowed || !classified.needsToken) return true;
    try {
      this.deps.tokens.tokenFor(classified.server.name);
      return true;
    } catch {
      return false;
    }
  }

  private serverOf(runtime: SourceRuntime): string | undefined {
    const classified = this.deps.policy().classify(this.registry.urlOf(runtime));
    return classified.allowed ? classified.server.name : undefined;
  }
}

function hasTokenProblem(index: SourceIndex): boolean {
  return index.problems.some((problem) => TOKEN_CODES.has(problem.code));
}

function sameProblems(a: SourceIndex, b: SourceIndex): boolean {
  const key = (index: SourceIndex): string => JSON.stringify([index.problemCount, index.problems.map((p) => [p.code, p.message, p.url, p.field, p.status])]);
  return key(a) === key(b);
}
