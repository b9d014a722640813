import { BrokerError, isBrokerError, retryAfterOf } from '../protocol/errors.js';
import { describeArtifactUrl, lastArtifactSegment } from '../protocol/artifact-url.js';
import type { RefreshOutcome } from '../protocol/sources.js';
import { APP_ASSET_KINDS, assetContentType, assetsKey, assetUrl, dropAsset, saveAsset } from './app-assets.js';
import type { DocumentResult } from './upstream-exchange.js';
import type { Limiter } from './limiter.js';
import type { TokenPolicy } from './policy.js';
import type { Clock, StateStore, TokenAccess } from './ports.js';
import { RETRY_AFTER_MAX_MS } from './refresh-scheduler.js';
import {
  APP_ASSET_MAX_BYTES,
  APP_INFO_EXTRA_FIELDS_MAX_BYTES,
  APP_INFO_MAX_BYTES,
  AppInfoSchema,
  appInfoNotes,
  extraFieldsBytes,
  withoutExtraFields,
  parseDocument,
  SOURCE_JSON_MAX_BYTES,
  SourceJsonSchema,
  type SourceJson,
} from './source-documents.js';
import { MAX_PROBLEMS, type AppEntry, type ProblemRecord, type SourceIndex } from './source-index.js';
import type { SourceRegistry, SourceRuntime } from './source-registry.js';

/**
 * One refresh attempt of one source (DESIGN section 6): source.json with If-None-Match, then every
 * app info it lists (bounded concurrency shared by all sources), withdrawn apps computed locally as
 * the launcher does, icons and release notes of changed app infos. Builds the next index; the
 * caller decides whether to keep it. Nothing is requested for a restricted source without a usable
 * token, and nothing of a failed document replaces its last good copy.
 */

/**
 * One small document through the upstream exchange (token policy at every hop, If-None-Match,
 * size cap). The only way this module reaches the network.
 */
export type DocumentFetcher = (request: {
  url: string;
  etag?: string | undefined;
  maxBytes: number;
  accept?: string;
  signal?: AbortSignal;
  /** Set for the URLs a third-party source lists: fetched without the token, never with it (DESIGN section 6). */
  thirdParty?: string;
}) => Promise<DocumentResult>;

export interface SourceRefreshDeps {
  fetchDocument: DocumentFetcher;
  policy: TokenPolicy;
  tokens: TokenAccess;
  state: StateStore;
  clock: Clock;
  limiter: Limiter;
  registry: SourceRegistry;
}

export interface Prefetched {
  result: Extract<DocumentResult, { status: 'ok' }>;
  doc: SourceJson;
}

export interface RefreshAttempt {
  next: SourceIndex;
  outcome: RefreshOutcome;
  /** New content (source.json, an app info, a withdrawal). */
  changed: boolean;
  retryAfterMs: number | undefined;
  /**
   * Some problem may pass within minutes (unreachable, timeout, 429, 5xx, an unexpected failure):
   * back off. False when every problem is lasting (gone, invalid, forbidden, not allowed): the
   * next try is after the normal interval.
   */
  transient: boolean;
}

/** Problems that will not fix themselves in minutes: retried at the normal interval (DESIGN section 6). */
const LASTING_CODES: ReadonlySet<string> = new Set(['BROKER_UPSTREAM_NOT_FOUND', 'BROKER_SOURCE_INVALID', 'BROKER_UPSTREAM_FORBIDDEN', 'BROKER_URL_NOT_ALLOWED']);

export const TOKEN_CODES: ReadonlySet<string> = new Set(['BROKER_TOKEN_MISSING', 'BROKER_TOKEN_INVALID', 'BROKER_TOKEN_EXPIRED']);

export async function refreshSource(deps: SourceRefreshDeps, runtime: SourceRuntime, previous: SourceIndex, signal: AbortSignal, prefetched?: Prefetched): Promise<RefreshAttempt> {
  const run = new Attempt(deps, runtime, previous, signal);
  await run.run(prefetched);
  return run.result();
}

class Attempt {
  private readonly problems: ProblemRecord[] = [];
  private readonly notes: ProblemRecord[] = [];
  private problemCount = 0;
  private changed = false;
  private retryAfterMs: number | undefined;
  private tokenProblem = false;
  private transient = false;
  private readonly now: number;
  private readonly next: SourceIndex;
  private readonly thirdParty: boolean;

  constructor(
    private readonly deps: SourceRefreshDeps,
    private readonly runtime: SourceRuntime,
    private readonly previous: SourceIndex,
    private readonly signal: AbortSignal,
  ) {
    this.now = deps.clock.now();
    this.next = { ...previous, apps: { ...previous.apps }, problems: [], problemCount: 0, lastAttemptAt: this.now };
    this.thirdParty = deps.registry.isThirdParty(runtime);
  }

  async run(prefetched: Prefetched | undefined): Promise<void> {
    const url = this.previous.url;
    const classified = this.deps.policy.classify(url);
    if (!classified.allowed) {
      this.problem(new BrokerError('BROKER_URL_NOT_ALLOWED', { message: `${classified.reason}.` }), url);
      return;
    }
    if (classified.needsToken) {
      try {
        this.deps.tokens.tokenFor(classified.server.name);
      } catch (err) {
        // No usable token: not a single request for this source until there is one.
        this.problem(err, url);
        return;
      }
    }
    // Only a source.json that answered (200 valid, or 304) leads on to the app documents: while
    // it fails, everything stays as last good and the outage costs one request per attempt.
    let sourceDoc: SourceJson | undefined;
    try {
      const etag = this.previous.source === undefined ? undefined : this.previous.sourceEtag;
      const result = prefetched?.result ?? (await this.fetch(url, { etag, maxBytes: SOURCE_JSON_MAX_BYTES }));
      if (result.status === 'ok') {
        const parsed = prefetched === undefined ? parseDocument(result.text, SourceJsonSchema, 'source.json') : ({ ok: true, value: prefetched.doc } as const);
        if (parsed.ok) {
          this.changed ||= JSON.stringify(parsed.value) !== JSON.stringify(this.previous.source);
          sourceDoc = parsed.value;
          this.next.source = parsed.value;
          this.next.sourceEtag = result.etag;
        } else {
          this.problem(new BrokerError('BROKER_SOURCE_INVALID', { message: `${describeArtifactUrl(url)}: ${parsed.message}` }), url, parsed.field);
        }
      } else if (result.status === 'not-modified') {
        sourceDoc = this.previous.source;
      }
    } catch (err) {
      this.problem(err, url);
    }
    if (sourceDoc === undefined) return;
    await this.refreshApps(sourceDoc);
    await this.refreshAssets(sourceDoc);
    this.noteKeptApps(sourceDoc);
  }

  result(): RefreshAttempt {
    // Errors first (lastError is the first of them); notes fill what room is left.
    this.next.problems = [...this.problems, ...this.notes].slice(0, MAX_PROBLEMS);
    this.next.problemCount = this.problemCount;
    if (this.problemCount === 0) this.next.lastRefreshAt = this.now;
    const outcome: RefreshOutcome = this.tokenProblem ? 'needs-token' : this.problemCount > 0 ? 'failed' : this.changed ? 'updated' : 'unchanged';
    return { next: this.next, outcome, changed: this.changed, retryAfterMs: this.retryAfterMs, transient: this.transient };
  }

  /**
   * Every app info source.json lists; then withdrawn apps, as the launcher computes them: an app
   * the previous index had and source.json no longer lists keeps its last app info, flagged
   * withdrawn since it left, until it is listed again. No withdrawn.json is ever requested.
   */
  private async refreshApps(sourceDoc: SourceJson): Promise<void> {
    const listed = [...new Set(sourceDoc.apps)];
    const apps: Record<string, AppEntry> = {};
    await Promise.all(listed.map(async (url) => {
      const entry = await this.refreshApp(url, this.previous.apps[url]);
      if (entry !== undefined) apps[url] = entry;
    }));
    const listedSet = new Set(listed);
    for (const [url, entry] of Object.entries(this.previous.apps)) {
      if (listedSet.has(url) || entry.info === undefined) continue;
      if (entry.withdrawnAt === undefined) this.changed = true;
      apps[url] = { ...entry, withdrawnAt: entry.withdrawnAt ?? this.now };
    }
    this.changed ||= Object.entries(this.previous.apps).some(([url, entry]) => entry.withdrawnAt !== undefined && listedSet.has(url));
    this.next.apps = apps;
  }

  private async refreshApp(url: string, before: AppEntry | undefined): Promise<AppEntry | undefined> {
    // Listed again: no longer withdrawn.
    const kept: AppEntry | undefined =
      before?.info === undefined
        ? undefined
        : {
            ...(before.etag === undefined ? {} : { etag: before.etag }),
            info: before.info,
            ...(before.assets === undefined ? {} : { assets: before.assets }),
            ...(before.extraFieldsDropped === undefined ? {} : { extraFieldsDropped: before.extraFieldsDropped }),
          };
    try {
      const result = await this.fetch(url, { etag: kept?.etag, maxBytes: APP_INFO_MAX_BYTES });
      if (result.status === 'not-modified') return kept;
      if (result.status !== 'ok') return kept;
      const parsed = parseDocument(result.text, AppInfoSchema, 'app info');
      if (!parsed.ok) {
        this.problem(new BrokerError('BROKER_SOURCE_INVALID', { message: `${describeArtifactUrl(url)}: ${parsed.message}` }), url, parsed.field);
        return kept;
      }
      // Fields the contract does not name pass through, up to a cap (APP_INFO_EXTRA_FIELDS_MAX_BYTES).
      const extraBytes = extraFieldsBytes(parsed.value);
      const overCap = extraBytes > APP_INFO_EXTRA_FIELDS_MAX_BYTES;
      const info = overCap ? withoutExtraFields(parsed.value) : parsed.value;
      // The launcher ignores an app whose document's name differs from its URL's file name.
      if (lastArtifactSegment(url) !== `${info.name}.json`) {
        this.problem(
          new BrokerError('BROKER_SOURCE_INVALID', { message: `At ${describeArtifactUrl(url)} an app is found by the name "${info.name}", which does not match the URL; it is left out.` }),
          url,
          'name',
        );
        return undefined;
      }
      this.changed ||= JSON.stringify(info) !== JSON.stringify(before?.info);
      return {
        ...(result.etag === undefined ? {} : { etag: result.etag }),
        info,
        ...(kept?.assets === undefined ? {} : { assets: kept.assets }),
        ...(overCap ? { extraFieldsDropped: extraBytes } : {}),
      };
    } catch (err) {
      this.problem(err, url);
      return kept;
    }
  }

  /**
   * Icons and release notes of listed apps whose app info changed (or that were never fetched):
   * at most 1 MiB each, through the same policy and token rules. A missing one (404) is
   * remembered as missing; any other failure is tried again at the next refresh. Neither makes
   * the source failing: the app list is complete without them.
   */
  private async refreshAssets(sourceDoc: SourceJson): Promise<void> {
    const listed = new Set(sourceDoc.apps);
    await Promise.all(
      Object.entries(this.next.apps).map(async ([url, entry]) => {
        if (!listed.has(url) || entry.info === undefined) return;
        const info = entry.info;
        const key = assetsKey(info);
        if (entry.assets === key) return;
        let complete = true;
        for (const kind of APP_ASSET_KINDS) {
          const assetLocation = assetUrl(info, kind);
          try {
            const result = await this.fetch(assetLocation, { maxBytes: APP_ASSET_MAX_BYTES, accept: '*/*' });
            if (result.status !== 'ok') continue;
            await saveAsset(this.deps.state, this.runtime.id, info.name, kind, describeArtifactUrl(assetLocation), {
              contentType: assetContentType(kind, assetLocation, result.contentType),
              bytes: result.body,
            });
          } catch (err) {
            if (isBrokerError(err, 'BROKER_UPSTREAM_NOT_FOUND') || isBrokerError(err, 'BROKER_URL_NOT_ALLOWED')) {
              await dropAsset(this.deps.state, this.runtime.id, info.name, kind).catch(() => undefined);
            } else {
              complete = false;
            }
          }
        }
        if (complete) this.next.apps[url] = { ...entry, assets: key };
      }),
    );
  }

  /**
   * Notes on the listed apps kept as they are (DESIGN section 6), from the kept copy, so a 304
   * repeats them: a latestVersion missing from versions, fields over the pass-through cap.
   */
  private noteKeptApps(sourceDoc: SourceJson): void {
    for (const url of new Set(sourceDoc.apps)) {
      const entry = this.next.apps[url];
      if (entry?.info === undefined) continue;
      for (const note of appInfoNotes(entry.info)) this.note(`${describeArtifactUrl(url)}: ${note.message}`, url, note.field);
      if (entry.extraFieldsDropped !== undefined) {
        this.note(
          `${describeArtifactUrl(url)}: its fields beyond the named ones take ${entry.extraFieldsDropped} bytes, over the ${APP_INFO_EXTRA_FIELDS_MAX_BYTES}-byte cap; they were left out and the named fields kept.`,
          url,
        );
      }
    }
  }

  private note(message: string, url: string, field?: string): void {
    this.notes.push({ code: 'BROKER_SOURCE_INVALID', message, at: this.now, url: describeArtifactUrl(url), ...(field === undefined ? {} : { field }), note: true });
  }

  private fetch(url: string, request: { etag?: string | undefined; maxBytes: number; accept?: string }): Promise<DocumentResult> {
    const thirdParty = this.thirdParty ? { thirdParty: `The third-party source "${this.runtime.id}"` } : {};
    const go = (): Promise<DocumentResult> => this.deps.limiter.run(() => this.deps.fetchDocument({ url, ...request, signal: this.signal, ...thirdParty }));
    // A third-party source may fetch what its documents list, while they are being read.
    return this.thirdParty ? this.deps.registry.allowingOnce(url, go) : go();
  }

  private problem(err: unknown, url: string, field?: string): void {
    const error = isBrokerError(err) ? err : new BrokerError('BROKER_INTERNAL', { message: `Unexpected failure: ${err instanceof Error ? err.message : String(err)}`, cause: err });
    this.problemCount += 1;
    if (TOKEN_CODES.has(error.code)) this.tokenProblem = true;
    else if (!LASTING_CODES.has(error.code)) this.transient = true;
    const details = error.details ?? {};
    const status = typeof details.status === 'number' ? details.status : undefined;
    // The same whole seconds the envelope of a fetch carries (details.retryAfter).
    const retryAfter = retryAfterOf(error);
    if (retryAfter !== undefined) this.retryAfterMs = Math.max(this.retryAfterMs ?? 0, Math.min(RETRY_AFTER_MAX_MS, retryAfter * 1000));
    if (this.problems.length >= MAX_PROBLEMS) return;
    this.problems.push({
      code: error.code,
      message: error.message,
      at: this.now,
      url: describeArtifactUrl(url),
      ...(field === undefined ? {} : { field }),
      ...(status === undefined ? {} : { status }),
      ...(retryAfter === undefined ? {} : { retryAfter }),
    });
  }
}
