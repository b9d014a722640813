/**
 * The composition root: the one place where real adapters are wired together and the daemon's
 * lifetime (signals, drain, socket removal) is handled.
 */
import type { Config } from '../protocol/config-schema.js';
import { ConfigError, loadConfig } from '../node/config-file.js';
import { ListenError, openMainSocket, socketActivationFd, type SocketHandle } from './listen.js';
import { createLogger, type Logger } from './logger.js';
import { currentPathInputs, resolvePaths, type Paths } from '../protocol/paths.js';
import { ensurePrivateDir, PrivateDirError } from '../node/private-dir.js';
import { acquireDaemonLock, DaemonLockHeldError, type HeldDaemonLock } from '../node/daemon-lock.js';
import { buildServer, rawServer } from './server.js';
import { assembleDaemon } from './assemble-daemon.js';
import { systemClock } from './system-clock.js';
import { drainAndClose, trackInFlight } from './drain.js';
import { ConfigControl } from './config-control.js';
import { isBrokerError } from '../protocol/errors.js';
import type { SecretStoreStatus } from '../protocol/token.js';
import { sweepTempFiles } from '../node/atomic-file.js';
import { createFsStateStore } from './fs-state-store.js';
import { closeEventStreams } from './routes/events-routes.js';
import { createKeychainStore, keychainAccountScope } from './secret-store/keychain-store.js';
import { selectSecretStore, type SecretStoreSelection } from './secret-store/select-store.js';
import { settlePlaintextLeftover, type PlaintextLeftover } from './secret-store/plaintext-leftover.js';
import { SECRETS_FILE } from './secret-store/file-store.js';
import path from 'node:path';
import { createUndiciUpstream } from '../node/undici-upstream.js';
import { createDownloadFiles } from '../node/download-files.js';
import { HashWorkerPool } from '../node/hash-worker.js';
import { VERSION } from '../protocol/version.js';
import { createFsContentCache } from './fs-content-cache.js';
import { localUserName } from './local-user.js';
import { openExtraListeners, type ExtraListener } from './extra-listeners.js';
import { coreDumpsStatus } from './core-limit.js';
import { SecretScrubber } from '../broker/secret-scrubber.js';
import { rememberingStore } from './secret-store/remembering-store.js';
import { statusSections } from './status-sections.js';
import { extraListenerOf } from './listener-auth.js';
import { createDaemonKey, writeDaemonKey } from '../node/daemon-key.js';
import { healSocket } from './socket-healer.js';

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
  // One daemon per state directory, whatever socket it was given: taken before anything there is touched.
  let lock: HeldDaemonLock;
  try {
    await ensurePrivateDir(paths.stateDir, 'state');
    lock = await acquireDaemonLock(paths.stateDir, { socket: paths.socketPath, version: VERSION });
  } catch (err) {
    if (err instanceof PrivateDirError) throw new StartupError(err.message, err.hint);
    if (err instanceof DaemonLockHeldError) {
      const socketFlag = `--socket ${err.holder.socket}`;
      throw new StartupError(err.message, `Use the running daemon (\`tokenbroker ${socketFlag} status\`), or stop it first: \`tokenbroker ${socketFlag} daemon stop\`.`);
    }
    throw err;
  }
  try {
    return await serve(paths);
  } finally {
    await lock.release();
  }
}

/** The daemon's life once it owns the state directory. */
async function serve(paths: Paths): Promise<number> {
  let config: Readonly<Config>;
  try {
    config = await loadConfig(paths.configFile);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(err.message, err.hint ?? 'Fix the file, or remove it to use the defaults.');
    throw err;
  }
  // Every token the daemon holds or is handed, redacted from every answer, event, log line and state file.
  const scrubber = new SecretScrubber();
  const logger = createLogger({ level: config.logLevel, scrub: (line) => scrubber.scrub(line) });
  const scrub = (text: string): string => scrubber.scrub(text);
  try {
    await ensurePrivateDir(paths.stateDir, 'state');
    await ensurePrivateDir(paths.cacheDir, 'cache');
  } catch (err) {
    if (err instanceof PrivateDirError) throw new StartupError(err.message, err.hint);
    throw err;
  }

  const startedAt = systemClock.now();
  const swept = await sweepTempFiles(paths.stateDir);
  if (swept > 0) logger.info({ files: swept }, 'removed temp files left by an interrupted write');
  const selected = await openSecretStore(config.secretStore, paths, logger);
  // A secrets.json left by an earlier "secretStore": "file": migrated into the keychain, or flagged.
  const remembering = rememberingStore(selected.store, scrubber);
  const settled = config.secretStore === 'file' ? { store: remembering, migrated: 0 } : await settlePlaintextLeftover(remembering, paths.stateDir, logger);
  const secretStore: SecretStoreSelection = { ...selected, store: settled.store };
  const plaintextLeftover = settled.leftover;
  // The one holder of the config in force (SIGHUP and PATCH /v1/config go through it), built as
  // soon as the event bus it reports to exists; until then the config read at start is in force.
  let configControl: ConfigControl | undefined = undefined;
  const currentConfig = (): Readonly<Config> => configControl?.current() ?? config;
  // Upstream settings (proxy, CA, timeouts) are read once; a SIGHUP does not rebuild the agent.
  const upstream = createUndiciUpstream({ timeouts: config.timeouts, proxy: config.proxy, caFile: config.caFile });
  const contentCache = createFsContentCache({ cacheDir: paths.cacheDir, maxBytes: () => currentConfig().cacheMaxMegabytes * 1024 * 1024, log: logger });
  // One worker thread hashes every download; it starts with the first and stops when idle.
  const hashPool = new HashWorkerPool();
  const { events, tokens, sources, clientTokens, fetchService, downloadService } = assembleDaemon(
    {
      upstream,
      secretStore: secretStore.store,
      state: createFsStateStore(paths.stateDir, { scrub }),
      contentCache,
      // The daemon's own files are never download targets (DESIGN section 5, "daemon-owned").
      downloadFiles: createDownloadFiles({
        daemonOwned: daemonOwnedPaths(paths, socketActivationFd(process.env, process.pid) !== undefined),
        // sha1 + sha256 on a worker thread, overlapping the socket reads and the file writes.
        digests: () => hashPool.digests(),
      }),
      clock: systemClock,
      log: logger,
      user: localUserName(),
      userAgent: USER_AGENT,
    },
    currentConfig,
  );
  const control = new ConfigControl({ file: paths.configFile, initial: config, logger, events });
  configControl = control;
  await tokens.start();
  await sources.load();
  await clientTokens.start();
  // Opened after the main socket; status reads whatever is open by then.
  let extraListeners: ExtraListener[] = [];
  // The hello key of this start (DESIGN section 2). It is written only once the main socket is
  // ours (a second daemon that is refused must not replace the running one's key); hello answers
  // wait for it.
  const helloKey = createDaemonKey();
  let keyWritten: () => void = () => undefined;
  const keyReady = new Promise<Uint8Array>((resolve) => (keyWritten = () => resolve(helloKey)));
  const app = await buildServer({
    logger,
    helloKey: () => keyReady,
    getConfig: currentConfig,
    configApi: control,
    paths,
    clock: systemClock,
    startedAt,
    socketActivated: socketActivationFd(process.env, process.pid) !== undefined,
    tokens,
    events,
    sources,
    clientTokens,
    fetchService,
    scrubber,
    listenerOf: extraListenerOf,
    downloadService,
    statusSections: statusSections({
      secretStore: () => secretStoreStatus(secretStore, plaintextLeftover, paths.stateDir),
      sources,
      clientTokens,
      listeners: () => extraListeners.map((l) => ({ path: l.path, mode: l.mode.toString(8).padStart(4, '0') })),
      cache: () => contentCache.usage(),
      coreDumps: coreDumpsStatus,
    }),
  });
  await app.ready();
  const server = rawServer(app);
  const inFlight = trackInFlight(server);

  // Installed before the socket opens: `systemctl reload` right after start must not kill us
  // (SIGHUP's default action is to terminate).
  process.on('SIGHUP', () => {
    // Restart-only keys (proxy, caFile, timeouts, listeners, secretStore) are logged, not applied.
    void control.reload();
  });

  let socket: SocketHandle;
  try {
    socket = await openMainSocket(server, paths.socketPath);
  } catch (err) {
    tokens.stop();
    sources.stop();
    await app.close();
    await upstream.close();
    if (err instanceof ListenError) throw new StartupError(err.message, err.hint);
    throw err;
  }
  try {
    await writeDaemonKey(paths.stateDir, helloKey);
    keyWritten();
    // The daemon's own even under socket activation: systemd only hands over the main socket.
    extraListeners = await openExtraListeners(server, config.listeners, socket.socketPath, logger);
  } catch (err) {
    tokens.stop();
    sources.stop();
    await app.close();
    await upstream.close();
    await socket.removeSocket();
    if (err instanceof ListenError) throw new StartupError(err.message, err.hint);
    throw err;
  }
  tokens.startBackground();
  sources.start();
  // A path the daemon created heals when deleted; an inherited (socket-activated) one is the manager's.
  const mainSocket = socket.activated || socket.ino === undefined ? { stop: () => undefined, removeSocket: () => socket.removeSocket() } : healSocket(server, socket, logger);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping: draining in-flight requests');
      events.emit('daemon.stopping', { signal });
      closeEventStreams(app);
      tokens.stop();
      sources.stop();
      mainSocket.stop();
      for (const listener of extraListeners) listener.stopAccepting();
      void drainAndClose({ server, inFlight, graceMs: currentConfig().shutdownGraceSeconds * 1000, log: logger })
        .then(() => app.close())
        .then(() => upstream.close())
        .then(() => hashPool.close())
        .then(() => mainSocket.removeSocket())
        .then(() => Promise.all(extraListeners.map((listener) => listener.removeSocket())))
        .then(() => clientTokens.stop())
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
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // Only now: the line can reach a reader (log writes are asynchronous) before this code goes
    // on, and whoever waits for it may stop us at once; that must drain, not kill.
    logger.info({ socket: socket.socketPath, activated: socket.activated, config: paths.configFile, secretStore: secretStore.store.kind, ms: Date.now() - startedAt }, 'tokenbroker daemon ready');
  });
}

/** Sent upstream on every request (fetches, documents, token validation). */
const USER_AGENT = `tokenbroker/${VERSION}`;

/**
 * `auto` may fall back to memory (with a warning in status). A configured `keychain` that is not
 * usable right now is never downgraded: the daemon still starts, status shows the error, token
 * operations fail with BROKER_SECRET_STORE_UNAVAILABLE, and loading is retried in the background
 * (a login keyring is often unlocked a moment after a service manager starts us).
 */
async function openSecretStore(setting: Config['secretStore'], paths: Paths, logger: Logger): Promise<SecretStoreSelection> {
  try {
    const selection = await selectSecretStore(setting, { stateDir: paths.stateDir, keychainAccountScope: keychainAccountScope(process.env) });
    if (selection.warning !== undefined) logger.warn({ secretStore: selection.store.kind }, selection.warning);
    return selection;
  } catch (err) {
    if (setting === 'keychain' && isBrokerError(err, 'BROKER_SECRET_STORE_UNAVAILABLE')) {
      logger.error({ err: err.message }, 'the configured OS keychain is not usable; token operations fail until it is');
      return { store: createKeychainStore({ accountScope: keychainAccountScope(process.env) }), warning: err.message };
    }
    if (isBrokerError(err)) throw new StartupError(err.message, err.hint);
    throw err;
  }
}

function secretStoreStatus(selection: SecretStoreSelection, leftover: PlaintextLeftover | undefined, stateDir: string): SecretStoreStatus {
  const { store, warning } = selection;
  const state = store.lastState ?? 'unknown';
  const leftBehind = leftover?.present === true;
  const plaintextPath = store.plaintextAtRest ? path.join(stateDir, SECRETS_FILE) : leftBehind ? leftover.path : undefined;
  const warnings = [
    ...(store.plaintextAtRest ? ['The token is stored in plain text in the state directory (secretStore: "file").'] : []),
    ...(leftBehind ? [`A plaintext secrets file is left from "secretStore": "file": ${leftover.path}. \`tokenbroker token remove\` deletes it (set the token again afterwards).`] : []),
    ...(warning === undefined ? [] : [warning]),
  ];
  // Built without object spread: this runs on every GET /v1/status (see status-routes.ts).
  const status: SecretStoreStatus = { kind: store.kind, state, persistent: store.persistent, plaintextAtRest: store.plaintextAtRest || leftBehind };
  if (plaintextPath !== undefined) status.plaintextPath = plaintextPath;
  if (warnings.length > 0) status.warning = warnings.join(' ');
  return status;
}

/**
 * What a download may never write (DESIGN section 5): config.json itself (not the directory that
 * holds it, which may be the user's home) and the state, cache and socket directories the daemon
 * created (under socket activation the manager made the socket's directory; a named pipe has none).
 */
function daemonOwnedPaths(paths: Paths, socketActivated: boolean): { files: string[]; dirs: string[] } {
  const dirs = [paths.stateDir, paths.cacheDir];
  if (!socketActivated && !paths.socketPath.startsWith('\\\\.\\pipe\\')) dirs.push(path.dirname(paths.socketPath));
  return { files: [paths.configFile], dirs };
}
