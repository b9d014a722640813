import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenBrokerClient } from '../../src/client/client.js';
import { missingDaemonFlags, planDaemonReexec, REEXEC_MARKER, underServiceManager } from '../../src/node/daemon-reexec.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';
import { exited } from '../helpers/process.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome } from '../helpers/test-daemon.js';
import { isLinux, itWhen, itWithTools } from '../helpers/tools.js';
import { waitForSocketFile, waitUntilAnswering } from '../helpers/wait-for.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('deciding to re-execute the daemon with its node flags', () => {
  const proc = (execArgv: string[], env: NodeJS.ProcessEnv = {}) => ({ execPath: '/usr/bin/node', execArgv, argv: ['/usr/bin/node', '/opt/tb/bin/tokenbroker.js', '--socket', '/s', 'daemon'], env });

  it('plain `node bin/tokenbroker.js daemon`: re-executes with the flags before the script and its arguments', () => {
    expect(planDaemonReexec(proc([]))).toEqual({ execPath: '/usr/bin/node', args: [...DAEMON_NODE_FLAGS, '/opt/tb/bin/tokenbroker.js', '--socket', '/s', 'daemon'] });
    // Other node options stay, and only what is missing is added.
    expect(planDaemonReexec(proc(['--enable-source-maps', DAEMON_NODE_FLAGS[0] as string]))?.args).toEqual([
      '--enable-source-maps',
      DAEMON_NODE_FLAGS[0],
      ...DAEMON_NODE_FLAGS.slice(1),
      '/opt/tb/bin/tokenbroker.js',
      '--socket',
      '/s',
      'daemon',
    ]);
  });

  it('not when the flags are there (shebang, units, autostart), given with another value, or in NODE_OPTIONS', () => {
    expect(planDaemonReexec(proc([...DAEMON_NODE_FLAGS]))).toBeNull();
    expect(missingDaemonFlags(['--max-semi-space-size=4', '--initial_old_space_size=128'], undefined)).toEqual([]);
    expect(missingDaemonFlags([], DAEMON_NODE_FLAGS.join(' '))).toEqual([]);
    expect(missingDaemonFlags([], '--max-semi-space-size=2')).toEqual(DAEMON_NODE_FLAGS.slice(1));
  });

  it('never under a service manager or a second time', () => {
    for (const env of [{ INVOCATION_ID: 'abc' }, { LISTEN_FDS: '1', LISTEN_PID: '42' }, { XPC_SERVICE_NAME: 'com.nordicsemi.tokenbroker' }, { [REEXEC_MARKER]: '1' }]) {
      expect(planDaemonReexec(proc([], env)), JSON.stringify(env)).toBeNull();
    }
    // macOS Terminal sets XPC_SERVICE_NAME=0: that is no launchd job.
    expect(underServiceManager({ XPC_SERVICE_NAME: '0' })).toBe(false);
    expect(planDaemonReexec(proc([], { XPC_SERVICE_NAME: '0' }))).not.toBeNull();
  });
});

/** The daemon's own command line, as the kernel has it. */
async function commandLine(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((arg) => arg !== '');
}

async function startDaemon(command: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; client: TokenBrokerClient; output: () => string }> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const client = new TokenBrokerClient({ socketPath: path.join(env['TOKENBROKER_HOME'] as string, 'run', 'broker.sock'), onVersionMismatch: () => undefined });
  cleanups.push(async () => {
    await client.close();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child, 5_000).catch(() => undefined);
    }
  });
  await waitUntilAnswering(() => client.status(), child, () => output, 20_000);
  return { child, client, output: () => output };
}

async function home(): Promise<NodeJS.ProcessEnv> {
  const dir = await makeTempHome('tb-rx-');
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ secretStore: 'memory' }));
  return isolatedEnv(dir);
}

describe('the daemon runs with its node flags however it is started', () => {
  itWhen(isLinux, 'Linux (/proc)', '`node bin/tokenbroker.js daemon` (no flags) runs the daemon with them; SIGTERM is passed on and exit code 0 comes back', async () => {
    const env = await home();
    const { child, client } = await startDaemon([process.execPath, CLI_ENTRY, 'daemon'], env);
    const { pid } = await client.status();
    const argv = await commandLine(pid);
    expect(argv.slice(1, 1 + DAEMON_NODE_FLAGS.length)).toEqual([...DAEMON_NODE_FLAGS]);
    expect(argv.slice(-2)).toEqual([CLI_ENTRY, 'daemon']);
    // Where Node has process.execve (22.15+) the daemon replaces the process (same pid); on Node 20
    // it is a child that this process waits for.
    if (typeof (process as { execve?: unknown }).execve === 'function') expect(pid).toBe(child.pid);
    else expect(pid).not.toBe(child.pid);
    child.kill('SIGTERM');
    expect(await exited(child, 20_000)).toBe(0);
    // Whether re-executed in place (process.execve) or as a child: no daemon is left behind.
    await expect(readFile(`/proc/${pid}/cmdline`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  itWhen(isLinux, 'Linux (/proc)', 'a daemon killed by a signal ends `node bin/tokenbroker.js daemon` by that signal', async () => {
    const env = await home();
    const { child, client } = await startDaemon([process.execPath, CLI_ENTRY, 'daemon'], env);
    // With process.execve (Node >= 22.15) the daemon is that process; otherwise its child.
    const { pid } = await client.status();
    process.kill(pid, 'SIGKILL');
    await exited(child, 20_000).catch(() => undefined);
    expect(child.signalCode).toBe('SIGKILL');
  });

  itWhen(isLinux, 'Linux (/proc)', 'the shebang (running bin/tokenbroker.js itself) gives the same flags without re-executing', async () => {
    const env = await home();
    const { child, client } = await startDaemon([CLI_ENTRY, 'daemon'], env);
    const { pid } = await client.status();
    expect(pid).toBe(child.pid);
    expect((await commandLine(pid)).filter((arg) => DAEMON_NODE_FLAGS.includes(arg))).toEqual([...DAEMON_NODE_FLAGS]);
  });

  itWithTools(['systemd-socket-activate'], 'never under socket activation: the inherited socket belongs to that pid', async () => {
    const env = await home();
    const socketPath = path.join(env['TOKENBROKER_HOME'] as string, 'run', 'broker.sock');
    await mkdir(path.dirname(socketPath), { mode: 0o700 });
    // A unit edited to drop the flags: the daemon still serves the inherited socket, untuned.
    const activator = ['systemd-socket-activate', '-l', socketPath, '-E', `TOKENBROKER_HOME=${env['TOKENBROKER_HOME']}`, '-E', 'TOKENBROKER_NO_AUTOSTART=1', process.execPath, CLI_ENTRY, 'daemon'];
    const started = spawn(activator[0] as string, activator.slice(1), { stdio: 'ignore' });
    cleanups.push(async () => {
      if (started.exitCode === null && started.signalCode === null) {
        started.kill('SIGKILL');
        await exited(started, 5_000).catch(() => undefined);
      }
    });
    await waitForSocketFile(socketPath, started, () => 'systemd-socket-activate did not create the socket', 20_000);
    // The first connection makes the activator exec the daemon; the request waits in the backlog.
    const client = new TokenBrokerClient({ socketPath, onVersionMismatch: () => undefined });
    cleanups.push(() => client.close());
    const status = await client.status();
    expect(status.socket).toMatchObject({ activated: true });
    expect(status.pid).toBe(started.pid);
    expect(await commandLine(status.pid)).toEqual([process.execPath, CLI_ENTRY, 'daemon']);
  });
});
