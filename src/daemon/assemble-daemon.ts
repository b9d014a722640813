import { ClientTokenService } from '../broker/client-tokens.js';
import { DownloadService } from '../broker/download-service.js';
import { EventBus } from '../broker/event-bus.js';
import { FetchService } from '../broker/fetch-service.js';
import type { Clock, ContentCache, DomainLog, DownloadFiles, SecretStore, StateStore, Upstream } from '../broker/ports.js';
import { SourceService } from '../broker/source-service.js';
import { TokenService } from '../broker/token-service.js';
import { exchangeTokenValidation } from '../broker/token-validator.js';
import { createUpstreamExchange, type UpstreamExchange } from '../broker/upstream-exchange.js';
import type { Config } from '../protocol/config-schema.js';

/**
 * The daemon's services wired over its adapters: the one place that says which service gets
 * what. src/daemon/main.ts calls it with the real adapters (undici, keychain, the state and cache
 * directories); the test harnesses call it with fakes (memory stores, an offline or fake
 * upstream), so what they test is wired exactly as the daemon is.
 */

export interface DaemonAdapters {
  upstream: Upstream;
  secretStore: SecretStore;
  state: StateStore;
  contentCache: ContentCache;
  downloadFiles: DownloadFiles;
  clock: Clock;
  log: DomainLog;
  /** The local OS user client tokens act for. */
  user: string;
  /** Sent upstream on every request. */
  userAgent: string;
  /** Backoff and refresh jitter; Math.random unless a test pins it. */
  random?: () => number;
}

export interface AssembledDaemon {
  events: EventBus;
  /** The one upstream exchange: sources, fetches, downloads and token validation. */
  exchange: UpstreamExchange;
  tokens: TokenService;
  sources: SourceService;
  clientTokens: ClientTokenService;
  fetchService: FetchService;
  downloadService: DownloadService;
}

/** Builds the services (no I/O yet: the caller loads tokens, sources and client tokens, then starts them). */
export function assembleDaemon(adapters: DaemonAdapters, config: () => Readonly<Config>): AssembledDaemon {
  const { clock, log, state } = adapters;
  const random = adapters.random ?? Math.random;
  const events = new EventBus(clock);
  // Token validation runs on the one exchange, which in turn asks the TokenService for tokens:
  // the TokenService is built first and reaches the exchange once it exists.
  const late: { exchange?: UpstreamExchange } = {};
  const tokens = new TokenService({
    servers: () => config().servers,
    warningDays: () => config().expiryWarningDays,
    store: adapters.secretStore,
    state,
    validate: exchangeTokenValidation(() => {
      if (late.exchange === undefined) throw new Error('token validation before the daemon was assembled');
      return late.exchange;
    }),
    clock,
    events,
    log,
    random,
  });
  // Third-party sources (DESIGN section 6): the policy asks the source registry, built just below.
  let thirdParty: (canonicalUrl: string) => boolean = () => false;
  const exchange = createUpstreamExchange({ config, thirdParty: (url) => thirdParty(url), upstream: adapters.upstream, tokens, clock, userAgent: adapters.userAgent });
  late.exchange = exchange;
  const sources = new SourceService({ config, policy: () => exchange.policy(), tokens, exchange: exchange, state, clock, events, log, random });
  thirdParty = (url) => sources.allowsThirdParty(url);
  const clientTokens = new ClientTokenService({ state, clock, log, user: adapters.user });
  const fetchService = new FetchService({ exchange: exchange, cache: adapters.contentCache, events, clock, log });
  const downloadService = new DownloadService({
    exchange,
    files: adapters.downloadFiles,
    events,
    clock,
    log,
    // The one use of the app index for downloads (a third party's tarball carries no token).
    resolveApp: (source, name, version) => {
      const { tarball, token } = sources.tarball(source, name, version);
      return { url: tarball.tarballUrl, shasum: tarball.shasum, token };
    },
  });
  return { events, exchange, tokens, sources, clientTokens, fetchService, downloadService };
}
