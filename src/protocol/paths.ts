import os from 'node:os';
import path from 'node:path';

/** Where everything lives (DESIGN section 2). Pure: the environment is passed in. */
export interface Paths {
  configFile: string;
  stateDir: string;
  cacheDir: string;
  /** Unix socket path, or a Windows named pipe (`\\.\pipe\...`). */
  socketPath: string;
  /** Where each value came from, for `status` and `diagnose`. */
  sources: { socket: PathSource; config: PathSource };
}

export type PathSource = 'flag' | 'TOKENBROKER_SOCKET' | 'TOKENBROKER_CONFIG' | 'TOKENBROKER_HOME' | 'XDG' | 'platform-default';

export interface PathInputs {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  homedir: string;
  uid: number;
  username: string;
  /** `--socket` from the command line. */
  socketFlag?: string | undefined;
}

/** macOS's sun_path is 104 bytes, Linux's 108; stay under the smaller with room for the NUL. */
export const MAX_SOCKET_PATH_BYTES = 103;

export function currentPathInputs(socketFlag?: string): PathInputs {
  const info = os.userInfo();
  return {
    env: process.env,
    platform: process.platform,
    homedir: os.homedir(),
    uid: typeof process.getuid === 'function' ? process.getuid() : -1,
    username: info.username,
    socketFlag,
  };
}

export function resolvePaths(inputs: PathInputs): Paths {
  const { env, platform, homedir } = inputs;
  const p = platform === 'win32' ? path.win32 : path.posix;
  const nonEmpty = (value: string | undefined): string | undefined => (value !== undefined && value !== '' ? value : undefined);
  const home = nonEmpty(env.TOKENBROKER_HOME);

  let configFile: string;
  let stateDir: string;
  let cacheDir: string;
  let defaultSocket: string;
  let configSource: PathSource = 'platform-default';
  let socketSource: PathSource = 'platform-default';

  if (home !== undefined) {
    const root = p.resolve(home);
    configFile = p.join(root, 'config.json');
    stateDir = p.join(root, 'state');
    cacheDir = p.join(root, 'cache');
    defaultSocket = platform === 'win32' ? windowsPipeName(inputs.username, root) : p.join(root, 'run', 'broker.sock');
    configSource = 'TOKENBROKER_HOME';
    socketSource = 'TOKENBROKER_HOME';
  } else if (platform === 'win32') {
    const appData = nonEmpty(env.APPDATA) ?? p.join(homedir, 'AppData', 'Roaming');
    const localAppData = nonEmpty(env.LOCALAPPDATA) ?? p.join(homedir, 'AppData', 'Local');
    configFile = p.join(appData, 'tokenbroker', 'config.json');
    stateDir = p.join(localAppData, 'tokenbroker', 'state');
    cacheDir = p.join(localAppData, 'tokenbroker', 'cache');
    defaultSocket = windowsPipeName(inputs.username);
  } else if (platform === 'darwin') {
    const support = p.join(homedir, 'Library', 'Application Support', 'tokenbroker');
    configFile = p.join(support, 'config.json');
    stateDir = p.join(support, 'state');
    cacheDir = p.join(homedir, 'Library', 'Caches', 'tokenbroker');
    // ~/Library/Application Support paths can exceed sun_path's 104 bytes; $TMPDIR is per-user on macOS.
    const candidate = p.join(support, 'run', 'broker.sock');
    defaultSocket =
      Buffer.byteLength(candidate) <= MAX_SOCKET_PATH_BYTES
        ? candidate
        : p.join(nonEmpty(env.TMPDIR) ?? '/tmp', `tokenbroker-${inputs.uid}`, 'broker.sock');
  } else {
    const xdgConfig = absoluteOrUndefined(env.XDG_CONFIG_HOME);
    const xdgState = absoluteOrUndefined(env.XDG_STATE_HOME);
    const xdgCache = absoluteOrUndefined(env.XDG_CACHE_HOME);
    const xdgRuntime = absoluteOrUndefined(env.XDG_RUNTIME_DIR);
    configFile = p.join(xdgConfig ?? p.join(homedir, '.config'), 'tokenbroker', 'config.json');
    stateDir = p.join(xdgState ?? p.join(homedir, '.local', 'state'), 'tokenbroker');
    cacheDir = p.join(xdgCache ?? p.join(homedir, '.cache'), 'tokenbroker');
    defaultSocket = xdgRuntime
      ? p.join(xdgRuntime, 'tokenbroker', 'broker.sock')
      : p.join('/tmp', `tokenbroker-${inputs.uid}`, 'broker.sock');
    if (xdgConfig) configSource = 'XDG';
    if (xdgRuntime) socketSource = 'XDG';
  }

  const configOverride = nonEmpty(env.TOKENBROKER_CONFIG);
  if (configOverride !== undefined) {
    configFile = p.resolve(configOverride);
    configSource = 'TOKENBROKER_CONFIG';
  }

  let socketPath = defaultSocket;
  const socketEnv = nonEmpty(env.TOKENBROKER_SOCKET);
  if (nonEmpty(inputs.socketFlag) !== undefined) {
    socketPath = resolveSocket(inputs.socketFlag as string, p);
    socketSource = 'flag';
  } else if (socketEnv !== undefined) {
    socketPath = resolveSocket(socketEnv, p);
    socketSource = 'TOKENBROKER_SOCKET';
  }

  return { configFile, stateDir, cacheDir, socketPath, sources: { socket: socketSource, config: configSource } };
}

/** XDG says relative values must be ignored. */
function absoluteOrUndefined(value: string | undefined): string | undefined {
  return value !== undefined && value.startsWith('/') ? value : undefined;
}

function resolveSocket(value: string, p: typeof path.posix): string {
  return isWindowsPipe(value) ? value : p.resolve(value);
}

export function isWindowsPipe(socketPath: string): boolean {
  return socketPath.startsWith('\\\\.\\pipe\\') || socketPath.startsWith('\\\\?\\pipe\\');
}

/** Named pipes live in one machine-wide namespace, so the user name (and home, if any) keep them apart. */
function windowsPipeName(username: string, home?: string): string {
  const safeUser = username.replace(/[^A-Za-z0-9._-]/g, '_');
  if (home === undefined) return `\\\\.\\pipe\\tokenbroker-${safeUser}`;
  let hash = 0;
  for (const ch of home) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `\\\\.\\pipe\\tokenbroker-${safeUser}-${hash.toString(16)}`;
}

/**
 * What to do about an existing directory that is not private. Never "chmod it": the directory is
 * not tokenbroker's (it may be /tmp, or the user's project), and changing it could break it for
 * everyone else. A directory tokenbroker creates itself is made private; so the advice is to use one.
 */
export function privateDirHint(dir: string, what: string, uid: number | undefined): string {
  if (what.toLowerCase() === 'socket') {
    return `Use a directory tokenbroker creates itself (mode 0700): leave --socket out for the default, or e.g. --socket /tmp/tokenbroker-${uid ?? '$UID'}/broker.sock.`;
  }
  return `Point TOKENBROKER_HOME at a new directory (tokenbroker creates what it needs there with mode 0700), instead of ${dir}.`;
}
