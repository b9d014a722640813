import { z } from 'zod';
import { describeArtifactUrl as describe } from '../protocol/artifact-url.js';
import { BrokerError } from '../protocol/errors.js';
import { OFFICIAL_SOURCE_ID } from '../protocol/sources.js';
import { listedUrls } from './app-views.js';
import type { DomainLog, StateStore } from './ports.js';
import type { SourceRefreshResult } from '../protocol/sources.js';
import { sourceIdFor } from './source-documents.js';
import { emptyIndex, indexDocumentName, legacyIndexDocumentName, SourceIndexSchema, type SourceIndex } from './source-index.js';

/**
 * Which sources exist (DESIGN section 6): the official one (id `official`, URL from config) and
 * the user's, each with an id (path segment, state file name) and a display name (source.json's
 * `name`). Persists the list and each index; answers the token policy's third-party question.
 * Reads never change anything: an index of another URL (officialSource changed) is shown as empty
 * and replaced by the next refresh, not here.
 */

const SOURCES_DOCUMENT = 'sources.json';

const SourcesDocumentSchema = z.union([
  z.object({ version: z.literal(2), sources: z.array(z.object({ id: z.string(), name: z.string(), url: z.string(), addedAt: z.number() })) }),
  /** tokenbroker 0.1: no ids; indexes stored under the lower-cased name. */
  z.object({ version: z.literal(1), sources: z.array(z.object({ name: z.string(), url: z.string(), addedAt: z.number() })) }),
]);

export interface SourceRuntime {
  readonly id: string;
  /** The display name given when it was added (source.json's `name` then). */
  recordName: string;
  readonly official: boolean;
  /** For the official source, the URL its index was built for; config may have moved on. */
  url: string;
  readonly addedAt: number;
  index: SourceIndex;
  running?: Promise<SourceRefreshResult>;
  /** Set when the source is removed while a refresh runs: its result is then thrown away. */
  removed: boolean;
  /** Serialises index writes, so an older index can never overwrite a newer one. */
  persisting: Promise<void>;
}

export interface SourceRegistryDeps {
  state: StateStore;
  log: DomainLog;
  /** The official source's canonical URL under the current config. */
  officialUrl(): string;
  /** True when the URL's origin is a configured server (else a source there is third-party). */
  onConfiguredServer(url: string): boolean;
  /** The canonical URL sources are compared by (DESIGN section 6): both URL forms of one artifact alike. */
  canonicalUrl(url: string): string;
}

export class SourceRegistry {
  private readonly runtimes = new Map<string, SourceRuntime>();
  private listPersisting: Promise<void> = Promise.resolve();
  /** URLs allowed once while they are being fetched (the document of a source being added, ...). */
  private readonly pending = new Map<string, number>();
  private readonly listedCache = new WeakMap<SourceIndex, ReadonlySet<string>>();

  constructor(private readonly deps: SourceRegistryDeps) {
    const url = deps.officialUrl();
    this.runtimes.set(OFFICIAL_SOURCE_ID, newRuntime(OFFICIAL_SOURCE_ID, OFFICIAL_SOURCE_ID, url, true, 0));
  }

  /** Loads the user sources and the last good indexes (no network). 0.1 state is read as it is. */
  async load(): Promise<void> {
    const legacy = new Map<string, string>();
    for (const record of await this.readList()) {
      const id = 'id' in record ? record.id : sourceIdFor(record.name, (taken) => this.runtimes.has(taken));
      if (this.runtimes.has(id) || !/^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/.test(id)) continue;
      this.runtimes.set(id, newRuntime(id, record.name, record.url, false, record.addedAt));
      const old = 'id' in record ? undefined : legacyIndexDocumentName(record.name);
      if (old !== undefined) legacy.set(id, old);
    }
    await Promise.all(
      [...this.runtimes.values()].map(async (runtime) => {
        runtime.index = await this.readIndex(runtime, legacy.get(runtime.id));
      }),
    );
    // A 0.1 list is rewritten with ids once, so later starts read the new form.
    if (legacy.size > 0) await this.persistList().catch((err: unknown) => this.deps.log.warn({ err: errorText(err) }, 'cannot rewrite the list of sources'));
  }

  /** Official first, then in the order they were added. */
  all(): SourceRuntime[] {
    return [...this.runtimes.values()].sort((a, b) => (a.official ? -1 : b.official ? 1 : a.addedAt - b.addedAt || (a.id < b.id ? -1 : 1)));
  }

  /** By id, else by exact display name. */
  resolve(ref: string): SourceRuntime {
    const runtime = this.runtimes.get(ref) ?? this.all().find((candidate) => this.displayName(candidate) === ref);
    if (runtime === undefined) {
      throw new BrokerError('BROKER_NOT_FOUND', {
        message: `There is no source "${ref.slice(0, 100)}".`,
        hint: 'List the sources with `tokenbroker sources list` (use the ID or the exact name).',
        details: { source: ref.slice(0, 100) },
      });
    }
    return runtime;
  }

  byId(id: string): SourceRuntime | undefined {
    return this.runtimes.get(id);
  }

  /** The URL a source is fetched from now (the official one follows config). */
  urlOf(runtime: SourceRuntime): string {
    return runtime.official ? this.deps.officialUrl() : runtime.url;
  }

  /** The index that describes the source as configured now (empty when config moved the official URL). */
  indexOf(runtime: SourceRuntime): SourceIndex {
    const url = this.urlOf(runtime);
    return runtime.index.url === url ? runtime.index : emptyIndex(url);
  }

  displayName(runtime: SourceRuntime): string {
    return this.indexOf(runtime).source?.name ?? runtime.recordName;
  }

  isThirdParty(runtime: SourceRuntime): boolean {
    return !this.deps.onConfiguredServer(this.urlOf(runtime));
  }

  /** Refuses a URL or display name some source already has (DESIGN section 6). */
  assertFree(url: string, name?: string): void {
    const key = this.deps.canonicalUrl(url);
    if (key === this.deps.canonicalUrl(this.deps.officialUrl())) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: `${describe(url)} is the official source, which is always present.` });
    }
    for (const runtime of this.runtimes.values()) {
      if (!runtime.official && this.deps.canonicalUrl(runtime.url) === key) {
        throw new BrokerError('BROKER_SOURCE_EXISTS', { message: `${describe(url)} is already added as "${this.displayName(runtime)}" (id ${runtime.id}).`, details: { id: runtime.id } });
      }
    }
    if (name === undefined) return;
    if (name.toLowerCase() === OFFICIAL_SOURCE_ID) {
      throw new BrokerError('BROKER_SOURCE_OFFICIAL', { message: `${describe(url)} calls itself "${name}", the name reserved for the official source.`, hint: 'Ask the publisher to give the source another name.' });
    }
    for (const runtime of this.runtimes.values()) {
      const existing = this.displayName(runtime);
      if (existing.toLowerCase() === name.toLowerCase() || runtime.recordName.toLowerCase() === name.toLowerCase()) {
        throw new BrokerError('BROKER_SOURCE_EXISTS', { message: `A source named "${existing}" already exists (id ${runtime.id}, ${describe(this.urlOf(runtime))}).`, details: { id: runtime.id, name: existing } });
      }
    }
  }

  /** Registers a user source under a fresh id and saves the list; undone if saving fails. */
  async register(name: string, url: string, addedAt: number): Promise<SourceRuntime> {
    const id = sourceIdFor(name, (taken) => this.runtimes.has(taken));
    const runtime = newRuntime(id, name, url, false, addedAt);
    this.runtimes.set(id, runtime);
    try {
      await this.persistList();
    } catch (err) {
      this.runtimes.delete(id);
      throw err;
    }
    return runtime;
  }

  async unregister(runtime: SourceRuntime): Promise<void> {
    runtime.removed = true;
    this.runtimes.delete(runtime.id);
    try {
      await this.persistList();
    } catch (err) {
      runtime.removed = false;
      this.runtimes.set(runtime.id, runtime);
      throw err;
    }
    await runtime.persisting.catch(() => undefined);
    await this.deps.state.remove(indexDocumentName(runtime.id));
  }

  async persistIndex(runtime: SourceRuntime): Promise<void> {
    const write = runtime.persisting.then(async () => {
      if (runtime.removed) return;
      await this.deps.state.write(indexDocumentName(runtime.id), runtime.index);
    });
    runtime.persisting = write.catch(() => undefined);
    try {
      await write;
    } catch (err) {
      // The index in memory is still served; the next refresh writes it again.
      this.deps.log.error({ source: runtime.id, err: errorText(err) }, 'cannot save the source index');
    }
  }

  // ---- third-party origins (the token policy's hook) ----

  /** Lets the policy allow `url` while `run` fetches it (a document about to be read); then forgets it. */
  async allowingOnce<T>(url: string, run: () => Promise<T>): Promise<T> {
    const key = normalise(url);
    if (key === undefined) return run();
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    try {
      return await run();
    } finally {
      const left = (this.pending.get(key) ?? 1) - 1;
      if (left === 0) this.pending.delete(key);
      else this.pending.set(key, left);
    }
  }

  /**
   * True when a third-party source lists `canonicalUrl`: its source.json, or an app info, tarball,
   * icon or release notes its current index names; or a document being fetched for it right now.
   */
  allowsThirdParty(canonicalUrl: string): boolean {
    const key = normalise(canonicalUrl);
    if (key === undefined) return false;
    if (this.pending.has(key)) return true;
    for (const runtime of this.runtimes.values()) {
      if (runtime.official || !this.isThirdParty(runtime)) continue;
      if (normalise(runtime.url) === key || this.listed(runtime.index).has(key)) return true;
    }
    return false;
  }

  private listed(index: SourceIndex): ReadonlySet<string> {
    let set = this.listedCache.get(index);
    if (set === undefined) {
      set = new Set(listedUrls(index).map(normalise).filter((url) => url !== undefined));
      this.listedCache.set(index, set);
    }
    return set;
  }

  // ---- persistence ----

  private async readList(): Promise<({ id: string; name: string; url: string; addedAt: number } | { name: string; url: string; addedAt: number })[]> {
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
    return parsed.data.sources;
  }

  private async readIndex(runtime: SourceRuntime, legacyName: string | undefined): Promise<SourceIndex> {
    const url = this.urlOf(runtime);
    try {
      let raw = await this.deps.state.read(indexDocumentName(runtime.id));
      if (raw === undefined && legacyName !== undefined) raw = await this.deps.state.read(legacyName);
      if (raw === undefined) return emptyIndex(url);
      const parsed = SourceIndexSchema.safeParse(raw);
      if (!parsed.success) {
        this.deps.log.warn({ source: runtime.id }, 'the stored index is not valid; it is rebuilt by the next refresh');
        return emptyIndex(url);
      }
      // An index of another URL (officialSource changed while we were stopped) does not apply.
      return parsed.data.url === url ? parsed.data : emptyIndex(url);
    } catch (err) {
      this.deps.log.warn({ source: runtime.id, err: errorText(err) }, 'cannot read the stored index; it is rebuilt by the next refresh');
      return emptyIndex(url);
    }
  }

  private async persistList(): Promise<void> {
    const write = this.listPersisting.then(() =>
      this.deps.state.write(SOURCES_DOCUMENT, {
        version: 2,
        sources: this.all()
          .filter((runtime) => !runtime.official)
          .map((runtime) => ({ id: runtime.id, name: runtime.recordName, url: runtime.url, addedAt: runtime.addedAt })),
      }),
    );
    this.listPersisting = write.catch(() => undefined);
    await write;
  }
}

function newRuntime(id: string, name: string, url: string, official: boolean, addedAt: number): SourceRuntime {
  return { id, recordName: name, url, official, addedAt, index: emptyIndex(url), removed: false, persisting: Promise.resolve() };
}

/** One spelling per URL for set lookups (WHATWG serialisation, no fragment). */
function normalise(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    parsed.hash = '';
    return parsed.href;
  } catch {
    return undefined;
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
