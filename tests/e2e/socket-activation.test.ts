import { spawn } from 'node:child_process';
import { lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { DaemonUnavailableError, TokenBrokerClient } from '../../src/client/client.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { exited } from '../helpers/process.js';
import { CLI_ENTRY, makeTempHome } from '../helpers/test-daemon.js';
import { itWithTools } from '../helpers/tools.js';
import { waitForSocketFile } from '../helpers/wait-for.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});


describe('socket activation (systemd-socket-activate)', () => {
  itWithTools(['systemd-socket-activate'], 'the real daemon serves the inherited fd 3, and after SIGTERM the socket is still the activator\'s', async () => {
    const home = await makeTempHome('tb-sa-');
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    await mkdir(path.join(home, 'run'), { mode: 0o700 });
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ secretStore: 'memory' }));
    const socketPath = path.join(home, 'run', 'broker.sock');
    // The activator passes only PATH, HOME, TERM and LISTEN_*: everything else goes in with -E.
    // node runs directly (no wrapper): the activator execs it in place, so LISTEN_PID is its pid.
    const activator = spawn(
      'systemd-socket-activate',
      ['-l', socketPath, '--fdname=broker', '-E', `TOKENBROKER_HOME=${home}`, '-E', `TOKENBROKER_SOCKET=${socketPath}`, process.execPath, ...DAEMON_NODE_FLAGS, CLI_ENTRY, 'daemon'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    activator.stdout?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    activator.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    cleanups.push(async () => {
      if (activator.exitCode === null && activator.signalCode === null) {
        activator.kill('SIGKILL');
        await exited(activator, 5_000).catch(() => undefined);
      }
    });

    await waitForSocketFile(socketPath, activator, () => log);
    const before = await lstat(socketPath);
    // The first connection makes the activator exec the daemon; the request waits in the backlog.
    const client = new TokenBrokerClient({ socketPath, onVersionMismatch: () => undefined });
    const status = await client.status();
    expect(status.socket).toEqual({ path: socketPath, activated: true });
    expect(status.pid).toBe(activator.pid);
    expect(log).toMatch(/"activated":true/);
    await client.close();

    activator.kill('SIGTERM');
    expect(await exited(activator, 20_000), log).toBe(0);
    expect(log).toContain('"msg":"stopped"');
    // The daemon neither created nor removed it: the same socket file is still there.
    const after = await lstat(socketPath);
    expect(after.isSocket()).toBe(true);
    expect(after.ino).toBe(before.ino);

    // systemd-socket-activate execs the daemon in place (same pid), so once the daemon has exited
    // nobody holds the listening socket any more: a new connection is refused and nothing starts
    // the daemon again. (A systemd socket unit keeps the socket and starts the service again.)
    const again = new TokenBrokerClient({ socketPath, onVersionMismatch: () => undefined });
    const refused = await again.status().then(
      () => undefined,
      (err: unknown) => err,
    );
    await again.close();
    expect(refused).toBeInstanceOf(DaemonUnavailableError);
    expect((refused as DaemonUnavailableError).message).toContain('nobody is listening');
  });
});
