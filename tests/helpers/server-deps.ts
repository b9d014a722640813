import { Writable } from 'node:stream';
import { EventBus } from '../../src/broker/event-bus.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import type { ContentCache, SecretStore, Upstream } from '../../src/broker/ports.js';
import { SourceService } from '../../src/broker/source-service.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { TokenService } from '../../src/broker/token-service.js';
import { ClientTokenService } from '../../src/broker/client-tokens.js';
import { FetchService } from '../../src/broker/fetch-service.js';
import { DownloadService } from '../../src/broker/download-service.js';
import { resolveTarball } from '../../src/broker/app-tarball.js';
import { createFsDownloadFiles } from '../../src/daemon/fs-download-files.js';
import { createLogger } from '../../src/daemon/logger.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import type { ServerDeps } from '../../src/daemon/server.js';
import { SecretScrubber } from '../../src/broker/secret-scrubber.js';
import { statusSections } from '../../src/daemon/status-sections.js';
import { extraListenerOf } from '../../src/daemon/listener-auth.js';
import { ConfigSchema, type ConfigInput } from '../../src/protocol/config-schema.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { FakeClock } from './fake-clock.js';
import { MemoryStateStore } from './memory-state-store.js';

/** An upstream with no network: every request fails as unreachable. */
export const offlineUpstream: Upstream = {
  request: async () => {
    throw new BrokerError('BROKER_UPSTREAM_UNREACHABLE', { details: { reason: 'network' } });
  },
};

/** A content cache that holds nothing (inject tests that need a real one build their own). */
export const noContentCache: ContentCache = {
  lookup: async () => undefined,
  begin: async () => undefined,
  remove: async () => undefined,
};

export interface TestServerDeps extends ServerDeps {
  logText: () => string;
  clock: FakeClock;
  state: MemoryStateStore;
  store: SecretStore;
  clientTokens: ClientTokenService;
}

/** Server deps for inject() tests: in-memory log, fake clock, memory stores, offline upstream. */
export function testServerDeps(overrides: { config?: ConfigInput; upstream?: Upstream; store?: SecretStore; clock?: FakeClock } & Partial<ServerDeps> = {}): TestServerDeps {
  let logText = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  const config = ConfigSchema.parse(overrides.config ?? {});
  const clock = overrides.clock ?? new FakeClock();
  const logger = createLogger({ level: 'debug', destination });
  const events = overrides.events ?? new EventBus(clock);
  const state = new MemoryStateStore();
  const store = overrides.store ?? createMemoryStore();
  const tokens =
    overrides.tokens ??
    new TokenService({ servers: () => config.servers, warningDays: () => config.expiryWarningDays, store, state, upstream: overrides.upstream ?? offlineUpstream, clock, events, log: logger });
  const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: config.allowInsecureLoopback });
  const exchange = new UpstreamExchange({ policy: () => policy, upstream: overrides.upstream ?? offlineUpstream, tokens, clock, userAgent: 'tokenbroker/test' });
  const sources =
    overrides.sources ??
    new SourceService({ config: () => config, policy: () => policy, tokens, exchange, state, clock, events, log: logger });
  const clientTokens = overrides.clientTokens ?? new ClientTokenService({ state, clock, log: logger, user: 'ada' });
  const fetchService =
    overrides.fetchService ??
    new FetchService({ exchange, cache: noContentCache, events, clock, log: logger });
  const downloadService =
    overrides.downloadService ??
    new DownloadService({
      fetch: fetchService,
      files: createFsDownloadFiles(),
      events,
      clock,
      log: logger,
      resolveApp: (source, name, version) => {
        const tarball = resolveTarball(sources.app(source, name), version);
        return { url: tarball.tarballUrl, shasum: tarball.shasum };
      },
    });
  return {
    logger,
    // The real assembly (src/daemon/status-sections.ts) over this harness's services.
    statusSections: statusSections({
      secretStore: () => ({ kind: store.kind, state: store.lastState ?? 'unknown', persistent: store.persistent, plaintextAtRest: store.plaintextAtRest }),
      sources,
      clientTokens,
      listeners: () => [],
      cache: async () => ({ bytes: 0, entries: 0, maxBytes: config.cacheMaxMegabytes * 1024 * 1024 }),
      coreDumps: async () => ({ limit: 0 }),
    }),
    scrubber: new SecretScrubber(),
    getConfig: () => config,
    paths: {
      configFile: '/tmp/tb-test/config.json',
      stateDir: '/tmp/tb-test/state',
      cacheDir: '/tmp/tb-test/cache',
      socketPath: '/tmp/tb-test/run/broker.sock',
      sources: { socket: 'TOKENBROKER_HOME', config: 'TOKENBROKER_HOME' },
    },
    startedAt: clock.now(),
    socketActivated: false,
    listenerOf: extraListenerOf,
    helloKey: async () => TEST_HELLO_KEY,
    ...overrides,
    tokens,
    events,
    sources,
    clientTokens,
    fetchService,
    downloadService,
    clock,
    state,
    store,
    logText: () => logText,
  };
}

/** The hello key of daemons built by testServerDeps (32 bytes of 0x42). */
export const TEST_HELLO_KEY = Buffer.alloc(32, 0x42);

