import { afterEach, describe, expect, it } from 'vitest';
import { autostartDisabled, daemonCommand, isStartable } from '../../src/client/autostart.js';
import { DaemonNotAnsweringError, DaemonUnavailableError } from '../../src/client/client-errors.js';
import { withoutCoreDumps } from '../../src/node/daemon-spawn.js';

const versions = process.versions as Record<string, string | undefined>;
afterEach(() => {
  delete versions.electron;
});

describe('autostart decisions', () => {
  it('plain Node runs its own binary; Electron runs itself as node, unless a nodePath is given', () => {
    expect(daemonCommand({ entry: '/pkg/bin/tokenbroker.js' })).toEqual({ node: process.execPath, entry: '/pkg/bin/tokenbroker.js' });
    versions.electron = '32.3.3';
    expect(daemonCommand({ entry: '/pkg/bin/tokenbroker.js' })).toEqual({ node: process.execPath, entry: '/pkg/bin/tokenbroker.js', extraEnv: { ELECTRON_RUN_AS_NODE: '1' } });
    expect(daemonCommand({ entry: '/e', nodePath: '/usr/bin/node' })).toEqual({ node: '/usr/bin/node', entry: '/e' });
    // The default entry is this package's own.
    expect(daemonCommand({}).entry).toMatch(/bin[\\/]tokenbroker\.js$/);
  });

  it('core files off through a POSIX shell, none on Windows', () => {
    expect(withoutCoreDumps('linux', '/n', ['a'])).toEqual(['/bin/sh', ['-c', 'ulimit -c 0 && exec "$@"', 'tokenbroker', '/n', 'a']]);
    expect(withoutCoreDumps('win32', 'C:\\node.exe', ['a'])).toEqual(['C:\\node.exe', ['a']]);
  });

  it('only "no socket" and "nobody listening" start a daemon; a daemon that does not answer never does', () => {
    const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
    expect(isStartable(new DaemonUnavailableError('/s', { cause: errno('ENOENT') }))).toBe(true);
    expect(isStartable(new DaemonUnavailableError('/s', { cause: errno('ECONNREFUSED') }))).toBe(true);
    expect(isStartable(new DaemonUnavailableError('/s', { cause: errno('EACCES') }))).toBe(false);
    expect(isStartable(new DaemonNotAnsweringError('/s', 1, 5_000, errno('ECONNREFUSED')))).toBe(false);
    expect(isStartable(errno('ENOENT'))).toBe(false);
  });

  it('TOKENBROKER_NO_AUTOSTART: any value but empty or 0 turns the CLI\'s autostart off', () => {
    expect(autostartDisabled({ TOKENBROKER_NO_AUTOSTART: '1' })).toBe(true);
    expect(autostartDisabled({ TOKENBROKER_NO_AUTOSTART: 'yes' })).toBe(true);
    expect(autostartDisabled({ TOKENBROKER_NO_AUTOSTART: '0' })).toBe(false);
    expect(autostartDisabled({ TOKENBROKER_NO_AUTOSTART: '' })).toBe(false);
    expect(autostartDisabled({})).toBe(false);
  });
});
