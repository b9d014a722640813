import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ContentCache, SecretStore, Upstream } from '../../src/broker/ports.js';
import type { ClientTokenService } from '../../src/broker/client-tokens.js';
import { exchangeTokenValidation, type TokenValidation } from '../../src/broker/token-validator.js';
import { createUpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { assembleDaemon } from '../../src/daemon/assemble-daemon.js';
import { createDownloadFiles } from '../../src/node/download-files.js';
import { createLogger } from '../../src/daemon/logger.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import { buildServer, type ServerDeps } from '../../src/daemon/server.js';
import { SecretScrubber } from '../../src/broker/secret-scrubber.js';
import { statusSections } from '../../src/daemon/status-sections.js';
import { extraListenerOf } from '../../src/daemon/listener-auth.js';
import { ConfigControl } from '../../src/daemon/config-control.js';
import { ConfigSchema, type ConfigInput } from '../../src/protocol/config-schema.js';
import { BrokerError } from '../../src/protocol/errors.js';
import { FakeClock } from './fake-clock.js';
import { MemoryStateStore } from './memory-state-store.js';

/** Token validation over `upstream` through the exchange's token-info entry point, as assembleDaemon wires it. */
export function validationOver(upstream: Upstream): TokenValidation {
  const exchange = createUpstreamExchange({ config: () => ({ servers: [], allowInsecureLoopback: true }), upstream, tokens: { tokenFor: () => { throw new Error('validation carries its own token'); }, rejected: () => undefined }, clock: new FakeClock(), userAgent: 'tokenbroker/test' });
  return exchangeTokenValidation(() => exchange);
}

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
  const state = new MemoryStateStore();
  const store = overrides.store ?? createMemoryStore();
  // The daemon's own wiring (src/daemon/assemble-daemon.ts) over memory adapters.
  const assembled = assembleDaemon(
    { upstream: overrides.upstream ?? offlineUpstream, secretStore: store, state, contentCache: noContentCache, downloadFiles: createDownloadFiles(), clock, log: logger, user: 'ada', userAgent: 'tokenbroker/test' },
    () => config,
  );
  const events = overrides.events ?? assembled.events;
  const tokens = overrides.tokens ?? assembled.tokens;
  const sources = overrides.sources ?? assembled.sources;
  const clientTokens = overrides.clientTokens ?? assembled.clientTokens;
  const fetchService = overrides.fetchService ?? assembled.fetchService;
  const downloadService = overrides.downloadService ?? assembled.downloadService;
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
    // The real one: it touches the file only when a config route is called (tests of those pass a temp file).
    configApi: new ConfigControl({ file: '/tmp/tb-test/config.json', initial: config, logger, events }),
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


/**
 * An inject app over the daemon's wiring with a real upstream and its sources loaded (the sources
 * API tests): the token service is the real one, with `token` set unverified when given.
 */
export async function sourcesApp(config: ConfigInput, upstream: Upstream, token?: string): Promise<{ app: FastifyInstance; deps: TestServerDeps }> {
  const deps = testServerDeps({ config, upstream, clock: new FakeClock(Date.now()) });
  if (token !== undefined) await deps.tokens.set(undefined, token, { verify: false });
  await deps.sources.load();
  return { app: await buildServer(deps), deps };
}
