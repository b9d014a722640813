import { pipeline, type Readable, type Writable } from 'node:stream';
import { BrokerError, isBrokerError } from '../protocol/errors.js';
import { CACHE_HEADER, type FetchRequestHeaders } from '../protocol/fetch.js';
import { BodyRelay, checksumMismatchError, type ChecksumMismatch, type Digests } from './body-relay.js';
import type { EventBus } from './event-bus.js';
import { FetchLedger, type FinalOutcome } from './fetch-ledger.js';
import type { CachedContent, CacheWriter, Clock, ContentCache, DomainLog } from './ports.js';
import { judgeUrl, openTransfer, type TransferAnswer } from './transfer.js';
import { describeArtifactUrl as describeUrl } from '../protocol/artifact-url.js';
import { discardBody } from './upstream-errors.js';
import type { TokenUse, UpstreamExchange } from './upstream-exchange.js';

/** Everything the fetch pipeline touches, passed in explicitly so wiring is one place (main.ts). */
export interface FetchServiceDeps {
  /** The daemon's one upstream exchange (policy, token, redirects, error mapping), built in main.ts. */
  exchange: UpstreamExchange;
  cache: ContentCache;
  events: EventBus;
  clock: Clock;
  log: DomainLog;
  /** Defaults to a new ledger of the last LEDGER_CAPACITY fetches. */
  ledger?: FetchLedger;
}

export interface FetchInput {
  /** Chosen by the caller (the route puts it in X-Tokenbroker-Request-Id before anything can fail). */
  requestId: string;
  url: string;
  sha1?: string | undefined;
  sha256?: string | undefined;
  /** The forwarded request headers only; the client's Authorization and Cookie never get here. */
  headers: FetchRequestHeaders;
  /** Aborted when the client goes away: the upstream request is aborted with it. */
  signal: AbortSignal;
  /** The token this fetch may use; default the server's. A third party's tarball passes `exchange.withoutToken`. */
  token?: TokenUse | undefined;
}

export interface FetchResponse {
  status: number;
  /** Lower-case names, only the passed headers (plus the cache marker). */
  headers: Record<string, string>;
  /**
   * Streams the body (none for a 304) into `sink`, the client's connection, with backpressure,
   * and records how it ended. Call it once, after sending the status and headers.
   */
  send(sink: Writable): void;
  /** The client's connection closed before the response finished (whether or not `send` ran). */
  clientGone(): void;
}

/**
 * `GET /v1/fetch` and app tarballs, the HTTP sink of the one transfer (transfer.ts: policy, token,
 * redirects, error mapping, header filtering): the fetch ledger, streaming verification and the
 * verified-content cache. Pure orchestration over
 * ports: the HTTP layer only validates the query and pipes the body it gets back.
 */
export class FetchService {
  readonly ledger: FetchLedger;
  /** The one upstream exchange (transfer.ts opens it for this HTTP sink and for daemon-written downloads). */
  readonly exchange: UpstreamExchange;

  constructor(private readonly deps: FetchServiceDeps) {
    this.ledger = deps.ledger ?? new FetchLedger(deps.clock);
    this.exchange = deps.exchange;
  }

  /**
   * Opens the fetch: resolves once there is a status and headers to answer with; rejects with a
   * BrokerError (to answer as an envelope) when nothing was sent yet.
   */
  async fetch(input: FetchInput): Promise<FetchResponse> {
    const startedAt = this.deps.clock.now();
    this.ledger.start(input.requestId, describeUrl(input.url));
    try {
      return await this.open(input, startedAt);
    } catch (err) {
      const error = isBrokerError(err) ? err : new BrokerError('BROKER_INTERNAL', { cause: err });
      const outcome: FinalOutcome = input.signal.aborted ? 'client-aborted' : outcomeOfError(error);
      this.finish(input, outcome, startedAt, { error: { code: error.code, message: error.message } });
      throw err;
    }
  }

  private async open(input: FetchInput, startedAt: number): Promise<FetchResponse> {
    const expected: Digests = { sha1: input.sha1, sha256: input.sha256 };
    const verifying = input.sha1 !== undefined || input.sha256 !== undefined;
    if (verifying && input.headers.range !== undefined) {
      throw new BrokerError('BROKER_BAD_REQUEST', {
        message: 'A digest (sha1/sha256) cannot be combined with a Range header: only a whole body can be verified.',
        hint: 'Drop the Range header to get a verified body, or drop the digest and verify the whole file yourself.',
        details: { field: 'headers.range' },
      });
    }
    const judged = judgeUrl(this.exchange, input.url, input.token);
    const target = judged.target;
    this.ledger.update(input.requestId, { url: describeUrl(target.canonicalUrl) });

    const conditional = input.headers['if-none-match'] !== undefined || input.headers['if-modified-since'] !== undefined;
    const cacheable = verifying && !conditional;
    if (cacheable) {
      const hit = await this.deps.cache.lookup({ url: target.canonicalUrl, sha1: input.sha1, sha256: input.sha256 }).catch((err: unknown) => {
        // The cache is an optimisation: a broken one means going upstream, not failing.
        this.deps.log.warn({ requestId: input.requestId, err: errorText(err) }, 'cache lookup failed; fetching upstream');
        return undefined;
      });
      if (hit !== undefined) return this.fromCache(input, hit, expected, startedAt);
    }

    const headers: Record<string, string> = {};
    for (const name of ['if-none-match', 'if-modified-since', 'range', 'if-range'] as const) {
      const value = input.headers[name];
      if (value !== undefined && (name !== 'if-range' || input.headers.range !== undefined)) headers[name] = value;
    }
    const answer = await openTransfer(this.exchange, judged, { headers, signal: input.signal });
    this.ledger.update(input.requestId, { cache: cacheable ? 'miss' : 'off' });
    if (answer.status === 304) return this.bodiless(input, 304, answer.headers, startedAt);
    return this.relay(input, answer, { canonicalUrl: target.canonicalUrl, expected, cacheable, startedAt });
  }

  private async relay(input: FetchInput, answer: TransferAnswer, context: { canonicalUrl: string; expected: Digests; cacheable: boolean; startedAt: number }): Promise<FetchResponse> {
    const { headers, status } = answer;
    const mismatch = headerMismatch(headers, context.expected);
    if (mismatch !== undefined) {
      discardBody({ headers: {}, body: answer.body });
      this.reportMismatch(input, mismatch, 'upstream-header');
      throw checksumMismatchError(mismatch, `The server's own ${mismatch.algorithm} for ${describeUrl(context.canonicalUrl)} (${mismatch.actual}) differs from the expected ${mismatch.expected}; nothing was sent.`);
    }

    const size = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
    const writer =
      context.cacheable && status === 200
        ? await this.deps.cache.begin(size).catch((err: unknown) => {
            this.deps.log.warn({ requestId: input.requestId, err: errorText(err) }, 'cannot start a cache entry; serving uncached');
            return undefined;
          })
        : undefined;
    const cacheWrite = writer === undefined ? undefined : new SafeCacheWrite(writer, this.deps.log, input.requestId);
    const verifying = context.expected.sha1 !== undefined || context.expected.sha256 !== undefined;
    const relay =
      verifying || cacheWrite !== undefined
        ? new BodyRelay({
            expected: context.expected,
            ...(cacheWrite === undefined
              ? {}
              : {
                  alsoCompute: ['sha1', 'sha256'] as const,
                  tee: (chunk: Buffer) => cacheWrite.write(chunk),
                  beforeRelease: (digests) =>
                    cacheWrite.commit({
                      url: context.canonicalUrl,
                      sha1: digests.sha1 as string,
                      sha256: digests.sha256 as string,
                      size: digests.size,
                      contentType: headers['content-type'],
                      etag: headers.etag,
                      lastModified: headers['last-modified'],
                    }),
                }),
            onMismatch: (m) => this.reportMismatch(input, m, 'upstream'),
          })
        : undefined;
    return this.streamed(input, context.startedAt, status, headers, answer.body, relay, () => {
      void cacheWrite?.abort();
    });
  }

  /** A verified body from the cache; it is verified again while it streams (disks rot too). */
  private fromCache(input: FetchInput, hit: CachedContent, expected: Digests, startedAt: number): FetchResponse {
    const headers: Record<string, string> = {
      'content-length': String(hit.size),
      'accept-ranges': 'bytes',
      'x-checksum-sha1': hit.sha1,
      'x-checksum-sha256': hit.sha256,
      [CACHE_HEADER]: 'hit',
    };
    if (hit.contentType !== undefined) headers['content-type'] = hit.contentType;
    if (hit.etag !== undefined) headers.etag = hit.etag;
    if (hit.lastModified !== undefined) headers['last-modified'] = hit.lastModified;
    const relay = new BodyRelay({
      expected,
      onMismatch: (m) => {
        this.reportMismatch(input, m, 'cache');
        void this.deps.cache.remove(hit.sha256);
      },
    });
    this.ledger.update(input.requestId, { cache: 'hit' });
    return this.streamed(input, startedAt, 200, headers, hit.open(), relay);
  }

  /**
   * A response with a body from `source`, through `relay` when there is something to verify or
   * cache (otherwise straight through: fewer allocations per chunk on the common path). The first
   * cause of an early end is recorded before the abort spreads to the other streams.
   */
  private streamed(input: FetchInput, startedAt: number, status: number, headers: Record<string, string>, source: Readable, relay: BodyRelay | undefined, onDone?: () => void): FetchResponse {
    let clientGone = false;
    let sent = false;
    let counted = 0;
    const bytes = (): number => relay?.bytesReleased ?? counted;
    source.once('error', (err: unknown) => {
      if (clientGone) return;
      const timeout = (err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT';
      this.finish(input, timeout ? 'timeout' : 'upstream-aborted', startedAt, { bytes: bytes() });
    });
    this.ledger.update(input.requestId, { status });
    return {
      status,
      headers,
      send: (sink) => {
        sent = true;
        const done = (err: unknown): void => {
          onDone?.();
          this.finish(input, err === undefined || err === null ? 'ok' : clientGone ? 'client-aborted' : 'upstream-aborted', startedAt, { bytes: bytes() });
        };
        if (relay !== undefined) {
          pipeline(source, relay, sink, done);
        } else {
          pipeline(source, sink, done);
          // Added after pipe() so it sees exactly what pipe() forwards (both listen to 'data').
          source.on('data', (chunk: Buffer) => {
            counted += chunk.length;
          });
        }
      },
      clientGone: () => {
        clientGone = true;
        this.finish(input, 'client-aborted', startedAt, { bytes: bytes() });
        if (!sent) {
          source.destroy();
          onDone?.();
        }
      },
    };
  }

  private bodiless(input: FetchInput, status: number, headers: Record<string, string>, startedAt: number): FetchResponse {
    this.ledger.update(input.requestId, { status });
    return {
      status,
      headers,
      send: (sink) => {
        sink.end();
        this.finish(input, 'ok', startedAt, { bytes: 0 });
      },
      clientGone: () => this.finish(input, 'client-aborted', startedAt, { bytes: 0 }),
    };
  }

  private reportMismatch(input: FetchInput, mismatch: ChecksumMismatch, source: 'upstream' | 'upstream-header' | 'cache'): void {
    // The canonical URL once the policy judged it (the ledger holds it), never `.../ui/api/v1/download`.
    const url = this.ledger.get(input.requestId)?.url ?? describeUrl(input.url);
    this.finish(input, 'checksum-mismatch', this.deps.clock.now(), {
      error: { code: 'BROKER_CHECKSUM_MISMATCH', message: `${mismatch.algorithm} ${mismatch.actual} differs from the expected ${mismatch.expected}` },
    });
    this.deps.events.emit('fetch.checksum-mismatch', { requestId: input.requestId, url, source, algorithm: mismatch.algorithm, expected: mismatch.expected, actual: mismatch.actual });
    this.deps.log.warn({ requestId: input.requestId, url, source, algorithm: mismatch.algorithm, expected: mismatch.expected, actual: mismatch.actual }, 'checksum mismatch: fetch aborted');
  }

  private finish(input: FetchInput, outcome: FinalOutcome, startedAt: number, extra: { bytes?: number; error?: { code: string; message: string } }): void {
    if (!this.ledger.finish(input.requestId, outcome, extra)) return;
    const record = this.ledger.get(input.requestId);
    this.deps.log.debug(
      { requestId: input.requestId, url: record?.url ?? describeUrl(input.url), outcome, status: record?.status, bytes: record?.bytes, cache: record?.cache, ms: this.deps.clock.now() - startedAt },
      'fetch ended',
    );
  }
}

/**
 * Caching is best effort: a full disk must not break a download. The first failure turns the
 * writer off (and throws its partial file away); the body goes on to the client regardless.
 */
class SafeCacheWrite {
  private failed = false;
  constructor(
    private readonly writer: CacheWriter,
    private readonly log: DomainLog,
    private readonly requestId: string,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.failed) return;
    try {
      await this.writer.write(chunk);
    } catch (err) {
      this.fail(err, 'write');
    }
  }

  async commit(entry: Parameters<CacheWriter['commit']>[0]): Promise<void> {
    if (this.failed) return;
    try {
      await this.writer.commit(entry);
    } catch (err) {
      this.fail(err, 'commit');
    }
  }

  async abort(): Promise<void> {
    await this.writer.abort().catch(() => undefined);
  }

  private fail(err: unknown, step: string): void {
    this.failed = true;
    this.log.warn({ requestId: this.requestId, step, err: errorText(err) }, 'caching a verified body failed; serving it uncached');
    void this.abort();
  }
}

/** The upstream's own X-Checksum-* already disagrees with what the client expects. */
function headerMismatch(headers: Record<string, string>, expected: Digests): ChecksumMismatch | undefined {
  for (const algorithm of ['sha256', 'sha1'] as const) {
    const want = expected[algorithm];
    const said = headers[`x-checksum-${algorithm}`]?.trim().toLowerCase();
    if (want !== undefined && said !== undefined && said !== '' && said !== want.toLowerCase()) {
      return { algorithm, expected: want.toLowerCase(), actual: said, size: 0 };
    }
  }
  return undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function outcomeOfError(error: BrokerError): FinalOutcome {
  if (error.code === 'BROKER_CHECKSUM_MISMATCH') return 'checksum-mismatch';
  const reason = error.details?.reason;
  if (error.code === 'BROKER_UPSTREAM_UNREACHABLE' && (reason === 'connect-timeout' || reason === 'headers-timeout')) return 'timeout';
  return 'error';
}
