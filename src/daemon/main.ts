/**
 * The composition root: the one place where real adapters are wired together and the daemon's
 * lifetime (signals, drain, socket removal) is handled.
 */
import type { Config } from '../protocol/config-schema.js';
import { ConfigError, loadConfig } from './config.js';
import { ListenError, openMainSocket, socketActivationFd, type SocketHandle } from './listen.js';
import { createLogger, type Logger } from './logger.js';
import { currentPathInputs, resolvePaths, type Paths } from '../protocol/paths.js';
import { ensurePrivateDir, PrivateDirError } from './private-dir.js';
import { buildServer, rawServer } from './server.js';
import { systemClock } from './system-clock.js';
import { drainAndClose, trackInFlight } from './drain.js';
import { EventBus } from '../broker/event-bus.js';
import { FetchService } from '../broker/fetch-service.js';
import { createTokenPolicy, type TokenPolicy } from '../broker/policy.js';
import { isBrokerError } from '../protocol/errors.js';
import { VERSION } from '../protocol/version.js';
import { createFsContentCache } from './fs-content-cache.js';
import { placeholderTokenAccess } from './placeholder-token-access.js';
import { createUndiciUpstream, type UndiciUpstream } from './undici-upstream.js';

export interface DaemonOptions {
  /** `--socket` from the command line. */
  socket?: string | undefined;
}

/** A failure to start that the user can fix: printed as message + hint, exit 1. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

/**
 * Runs the daemon until SIGTERM/SIGINT; resolves with the exit code. Startup problems (bad config,
 * unusable socket dir, already running) reject with a StartupError.
 */
export async function runDaemon(options: DaemonOptions = {}): Promise<number> {
  const paths = resolvePaths(currentPathInputs(options.socket));
  let config: Readonly<Config>;
  try {
    config = await loadConfig(paths.configFile);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(err.message, 'Fix the file, or remove it to use the defaults.');
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  try {
    await ensurePrivateDir(paths.stateDir, 'state');
    await ensurePrivateDir(paths.cacheDir, 'cache');
  } catch (err) {
    if (err instanceof PrivateDirError) throw new StartupError(err.message, err.hint);
    throw err;
  }

  let currentConfig = config;
  const startedAt = systemClock.now();
  const events = new EventBus(systemClock);
  let upstream: UndiciUpstream;
  try {
    upstream = createUndiciUpstream({ timeouts: config.timeouts, proxy: config.proxy, caFile: config.caFile });
  } catch (err) {
    if (isBrokerError(err)) throw new StartupError(err.message, err.hint);
    throw err;
  }
  const fetchService = new FetchService({
    policy: policyOf(() => currentConfig),
    upstream,
    // PLACEHOLDER: replace with the token service's TokenAccess (issue 4) when merging.
    tokenAccess: placeholderTokenAccess,
    cache: createFsContentCache({ cacheDir: paths.cacheDir, maxBytes: () => currentConfig.cacheMaxMegabytes * 1024 * 1024, logger }),
    events,
    clock: systemClock,
    logger,
    userAgent: `tokenbroker/${VERSION}`,
  });
  const app = await buildServer({
    logger,
    getConfig: () => currentConfig,
    paths,
    clock: systemClock,
    startedAt,
    socketActivated: socketActivationFd(process.env, process.pid) !== undefined,
    fetchService,
  });
  await app.ready();
  const server = rawServer(app);
  const inFlight = trackInFlight(server);

  let socket: SocketHandle;
  try {
    socket = await openMainSocket(server, paths.socketPath);
  } catch (err) {
    await app.close();
    if (err instanceof ListenError) throw new StartupError(err.message, err.hint);
    throw err;
  }
  logger.info({ socket: socket.socketPath, activated: socket.activated, config: paths.configFile, ms: Date.now() - startedAt }, 'tokenbroker daemon ready');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: draining in-flight requests');
      void drainAndClose({ server, inFlight, graceMs: currentConfig.shutdownGraceSeconds * 1000, logger })
        .then(() => app.close())
        .then(() => upstream.close())
        .then(() => socket.removeSocket())
        .then(
          () => {
            logger.info('stopped');
            logger.flush();
            resolve(0);
          },
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            logger.flush();
            resolve(1);
          },
        );
    };
    const reload = (): void => {
      void reloadConfig(paths, logger).then((next) => {
        if (next !== undefined) currentConfig = next;
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', reload);
  });
}

/** The token policy of the current config, rebuilt only when a reload changed the config. */
function policyOf(getConfig: () => Readonly<Config>): () => TokenPolicy {
  let built: { config: Readonly<Config>; policy: TokenPolicy } | undefined;
  return () => {
    const config = getConfig();
    if (built?.config !== config) built = { config, policy: createTokenPolicy(config.servers, { allowInsecureLoopback: config.allowInsecureLoopback }) };
    return built.policy;
  };
}

/** SIGHUP: an invalid new config is logged and the old one kept. */
async function reloadConfig(paths: Paths, logger: Logger): Promise<Readonly<Config> | undefined> {
  try {
    const next = await loadConfig(paths.configFile);
    logger.level = next.logLevel;
    logger.info({ config: paths.configFile }, 'config reloaded');
    return next;
  } catch (err) {
    logger.error({ err: err instanceof Error ? err.message : String(err) }, 'config reload failed; keeping the previous config');
    return undefined;
  }
}
