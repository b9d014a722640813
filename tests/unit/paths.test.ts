import { describe, expect, it } from 'vitest';
import { resolvePaths, type PathInputs } from '../../src/protocol/paths.js';

const linux = (env: NodeJS.ProcessEnv, socketFlag?: string): PathInputs => ({ env, platform: 'linux', homedir: '/home/ada', uid: 1000, username: 'ada', socketFlag });

describe('resolvePaths', () => {
  it('uses XDG dirs on Linux', () => {
    const paths = resolvePaths(linux({ XDG_RUNTIME_DIR: '/run/user/1000', XDG_CONFIG_HOME: '/home/ada/.cfg', XDG_STATE_HOME: '/home/ada/.st', XDG_CACHE_HOME: '/home/ada/.ca' }));
    expect(paths).toMatchObject({
      socketPath: '/run/user/1000/tokenbroker/broker.sock',
      configFile: '/home/ada/.cfg/tokenbroker/config.json',
      stateDir: '/home/ada/.st/tokenbroker',
      cacheDir: '/home/ada/.ca/tokenbroker',
    });
  });

  it('falls back to ~/.config, ~/.local/state, ~/.cache and /tmp/tokenbroker-UID', () => {
    const paths = resolvePaths(linux({}));
    expect(paths).toMatchObject({
      socketPath: '/tmp/tokenbroker-1000/broker.sock',
      configFile: '/home/ada/.config/tokenbroker/config.json',
      stateDir: '/home/ada/.local/state/tokenbroker',
      cacheDir: '/home/ada/.cache/tokenbroker',
    });
  });

  it('ignores relative XDG values, as the XDG spec requires', () => {
    expect(resolvePaths(linux({ XDG_RUNTIME_DIR: 'run', XDG_CONFIG_HOME: 'cfg' }))).toMatchObject({
      socketPath: '/tmp/tokenbroker-1000/broker.sock',
      configFile: '/home/ada/.config/tokenbroker/config.json',
    });
  });

  it('roots everything in TOKENBROKER_HOME', () => {
    expect(resolvePaths(linux({ TOKENBROKER_HOME: '/tmp/tbh', XDG_RUNTIME_DIR: '/run/user/1000' }))).toMatchObject({
      socketPath: '/tmp/tbh/run/broker.sock',
      configFile: '/tmp/tbh/config.json',
      stateDir: '/tmp/tbh/state',
      cacheDir: '/tmp/tbh/cache',
    });
  });

  it('--socket beats TOKENBROKER_SOCKET beats TOKENBROKER_HOME', () => {
    const env = { TOKENBROKER_HOME: '/tmp/tbh', TOKENBROKER_SOCKET: '/tmp/env.sock' };
    expect(resolvePaths(linux(env)).socketPath).toBe('/tmp/env.sock');
    expect(resolvePaths(linux(env, '/tmp/flag.sock')).socketPath).toBe('/tmp/flag.sock');
    expect(resolvePaths(linux(env, '/tmp/flag.sock')).sources.socket).toBe('flag');
  });

  it('TOKENBROKER_CONFIG overrides only the config file', () => {
    const paths = resolvePaths(linux({ TOKENBROKER_HOME: '/tmp/tbh', TOKENBROKER_CONFIG: '/etc/tb.json' }));
    expect(paths.configFile).toBe('/etc/tb.json');
    expect(paths.stateDir).toBe('/tmp/tbh/state');
  });

  it('uses ~/Library on macOS with a socket path under 104 bytes', () => {
    const paths = resolvePaths({ env: { TMPDIR: '/var/folders/zz/abc/T/' }, platform: 'darwin', homedir: '/Users/ada', uid: 501, username: 'ada' });
    expect(paths.configFile).toBe('/Users/ada/Library/Application Support/tokenbroker/config.json');
    expect(paths.cacheDir).toBe('/Users/ada/Library/Caches/tokenbroker');
    expect(Buffer.byteLength(paths.socketPath)).toBeLessThan(104);
    const longHome = resolvePaths({ env: { TMPDIR: '/var/folders/zz/abc/T/' }, platform: 'darwin', homedir: `/Users/${'a'.repeat(80)}`, uid: 501, username: 'ada' });
    expect(longHome.socketPath).toBe('/var/folders/zz/abc/T/tokenbroker-501/broker.sock');
  });

  it('uses a per-user named pipe on Windows', () => {
    const paths = resolvePaths({ env: { APPDATA: 'C:\\Users\\ada\\AppData\\Roaming', LOCALAPPDATA: 'C:\\Users\\ada\\AppData\\Local' }, platform: 'win32', homedir: 'C:\\Users\\ada', uid: -1, username: 'ada' });
    expect(paths.socketPath).toBe('\\\\.\\pipe\\tokenbroker-ada');
    expect(paths.configFile).toBe('C:\\Users\\ada\\AppData\\Roaming\\tokenbroker\\config.json');
    expect(paths.stateDir).toBe('C:\\Users\\ada\\AppData\\Local\\tokenbroker\\state');
  });
});
