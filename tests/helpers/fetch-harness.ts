import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { EventBus } from '../../src/broker/event-bus.js';
import { FetchService } from '../../src/broker/fetch-service.js';
import { UpstreamExchange } from '../../src/broker/upstream-exchange.js';
import { DownloadService } from '../../src/broker/download-service.js';
import { createDownloadFiles } from '../../src/node/download-files.js';
import type { StreamDigestsFactory } from '../../src/node/stream-digests.js';
import { createTokenPolicy } from '../../src/broker/policy.js';
import { TestTokenAccess } from './test-token-access.js';
import { TokenBrokerClient } from '../../src/client/client.js';
import { createFsContentCache, type FsContentCache } from '../../src/daemon/fs-content-cache.js';
import { buildServer } from '../../src/daemon/server.js';
import { systemClock } from '../../src/daemon/system-clock.js';
import { createUndiciUpstream, type UndiciUpstream } from '../../src/node/undici-upstream.js';
import { BrokerError } from '../../src/protocol/errors.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import type { ConfigInput } from '../../src/protocol/config-schema.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { TEST_HELLO_KEY, testServerDeps } from './server-deps.js';
import { writeDaemonKey } from '../../src/node/daemon-key.js';
import { makeTempHome } from './test-daemon.js';

export interface FetchHarness {
  af: FakeArtifactory;
  app: FastifyInstance;
  service: FetchService;
  downloads: DownloadService;
  tokens: TestTokenAccess;
  cache: FsContentCache;
  events: BrokerEvent[];
  logText(): string;
  home: string;
  /** A client of the in-process server over a real Unix socket. */
  client: TokenBrokerClient;
  socketPath: string;
  /** Holds the hello key of the harness's server (pass it as `stateDir` to other clients). */
  stateDir: string;
  close(): Promise<void>;
}

export interface FetchHarnessOptions {
  config?: Partial<ConfigInput>;
  cacheMaxBytes?: number;
  /** Defaults to a fresh fake Artifactory with the token `tok-secret-123`. */
  af?: FakeArtifactory;
  /** Overrides of buildServer's deps (e.g. `listenerOf` to simulate an extra listener). */
  serverDeps?: Partial<Parameters<typeof buildServer>[0]>;
  /** The digests of each download (the daemon passes its hash worker's); default on the thread. */
  digests?: StreamDigestsFactory;
}

/** The real fetch pipeline (policy, undici upstream, fs cache) behind buildServer, on a temp socket. */
export async function startFetchHarness(options: FetchHarnessOptions = {}): Promise<FetchHarness> {
  const af = options.af ?? (await startFakeArtifactory({ tokens: { 'tok-secret-123': {} } }));
  const home = await makeTempHome('tbf-');
  const deps = testServerDeps({
    config: {
      allowInsecureLoopback: true,
      servers: [{ name: 'nordic', origin: af.origin }],
      officialSource: af.url('/artifactory/swtools/external/ncd/apps/official/source.json'),
      timeouts: { connectMs: 2_000, headersMs: 2_000, bodyIdleMs: 1_000 },
      ...options.config,
    },
  });
  const config = deps.getConfig();
  const upstream: UndiciUpstream = createUndiciUpstream({ timeouts: config.timeouts, proxy: config.proxy, caFile: config.caFile, env: {} });
  const tokens = new TestTokenAccess('tok-secret-123');
  const events: BrokerEvent[] = [];
  const bus = new EventBus(systemClock);
  bus.subscribe((event) => events.push(event));
  const cache = createFsContentCache({ cacheDir: path.join(home, 'cache'), maxBytes: () => options.cacheMaxBytes ?? 64 * 1024 * 1024, log: deps.logger });
  const policy = createTokenPolicy(config.servers, { allowInsecureLoopback: config.allowInsecureLoopback });
  const exchange = new UpstreamExchange({ policy: () => policy, upstream, tokens, clock: systemClock, userAgent: 'tokenbroker/test' });
  const service = new FetchService({ exchange, cache, events: bus, clock: systemClock, log: deps.logger });
  const downloads = new DownloadService({
    exchange,
    files: createDownloadFiles({ digests: options.digests }),
    events: bus,
    clock: systemClock,
    log: deps.logger,
    resolveApp: () => {
      throw new BrokerError('BROKER_NOT_FOUND', { message: 'The fetch harness has no app index.' });
    },
  });
  // One bus, as in main.ts: what the services emit is what /v1/events sends (download progress included).
  const app = await buildServer({ ...deps, events: bus, fetchService: service, downloadService: downloads, ...options.serverDeps });
  const socketPath = path.join(home, 'broker.sock');
  await app.listen({ path: socketPath });
  // The hello handshake: the key of testServerDeps, where a daemon in `home` writes it.
  const stateDir = path.join(home, 'state');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeDaemonKey(stateDir, TEST_HELLO_KEY);
  const client = new TokenBrokerClient({ socketPath, stateDir, onVersionMismatch: () => undefined });
  return {
    stateDir,
    af,
    app,
    service,
    downloads,
    tokens,
    cache,
    events,
    logText: deps.logText,
    home,
    client,
    socketPath,
    async close() {
      await client.close();
      await app.close();
      await upstream.close();
      if (options.af === undefined) await af.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
