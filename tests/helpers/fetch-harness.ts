import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { DownloadService } from '../../src/broker/download-service.js';
import type { FetchService } from '../../src/broker/fetch-service.js';
import type { TokenService } from '../../src/broker/token-service.js';
import type { StreamDigestsFactory } from '../../src/node/stream-digests.js';
import { TokenBrokerClient } from '../../src/client/client.js';
import { assembleDaemon } from '../../src/daemon/assemble-daemon.js';
import { createFsContentCache, type FsContentCache } from '../../src/daemon/fs-content-cache.js';
import { createMemoryStore } from '../../src/daemon/secret-store/memory-store.js';
import { buildServer } from '../../src/daemon/server.js';
import { systemClock } from '../../src/daemon/system-clock.js';
import { writeDaemonKey } from '../../src/node/daemon-key.js';
import { createDownloadFiles } from '../../src/node/download-files.js';
import { createUndiciUpstream, type UndiciUpstream } from '../../src/node/undici-upstream.js';
import type { BrokerEvent } from '../../src/protocol/events.js';
import type { ConfigInput } from '../../src/protocol/config-schema.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';
import { MemoryStateStore } from './memory-state-store.js';
import { TEST_HELLO_KEY, testServerDeps } from './server-deps.js';
import { makeTempHome } from './test-daemon.js';

/** The token the harness sets (the default fake Artifactory accepts it). */
export const HARNESS_TOKEN = 'tok-secret-123';

export interface FetchHarness {
  af: FakeArtifactory;
  app: FastifyInstance;
  service: FetchService;
  downloads: DownloadService;
  /** The daemon's real token service (memory store): set, remove, rejected as the daemon does them. */
  tokens: TokenService;
  /** Sets `token` for the server (unverified, as `token set --no-verify`), replacing an invalid or missing one. */
  useToken(token?: string): Promise<void>;
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
  const af = options.af ?? (await startFakeArtifactory({ tokens: { [HARNESS_TOKEN]: {} } }));
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
  const cache = createFsContentCache({ cacheDir: path.join(home, 'cache'), maxBytes: () => options.cacheMaxBytes ?? 64 * 1024 * 1024, log: deps.logger });
  // The daemon's own wiring over the real undici upstream and fs cache, memory stores, real time.
  const assembled = assembleDaemon(
    { upstream, secretStore: createMemoryStore(), state: new MemoryStateStore(), contentCache: cache, downloadFiles: createDownloadFiles({ digests: options.digests }), clock: systemClock, log: deps.logger, user: 'ada', userAgent: 'tokenbroker/test' },
    () => config,
  );
  const { tokens, fetchService: service, downloadService: downloads, events: bus } = assembled;
  const events: BrokerEvent[] = [];
  bus.subscribe((event) => events.push(event));
  await tokens.start();
  const useToken = async (token = HARNESS_TOKEN): Promise<void> => {
    await tokens.set(undefined, token, { verify: false });
  };
  await useToken();
  // One bus, as in main.ts: what the services emit is what /v1/events sends (download progress included).
  const app = await buildServer({ ...deps, events: bus, tokens, sources: assembled.sources, clientTokens: assembled.clientTokens, fetchService: service, downloadService: downloads, ...options.serverDeps });
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
    useToken,
    cache,
    events,
    logText: deps.logText,
    home,
    client,
    socketPath,
    async close() {
      tokens.stop();
      await client.close();
      await app.close();
      await upstream.close();
      if (options.af === undefined) await af.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}
