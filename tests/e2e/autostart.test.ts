import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForExit } from '../../src/cli/process-util.js';
import { CLI_ENTRY, isolatedEnv, makeTempHome, runCli, type CliResult } from '../helpers/test-daemon.js';
import { TokenBrokerClient, type DaemonStarted } from '../../src/client/index.js';
import { readDaemonLock } from '../../src/node/daemon-lock.js';
import { DAEMON_NODE_FLAGS } from '../../src/protocol/daemon-flags.js';

const homes: string[] = [];
const daemonPids = new Set<number>();
afterEach(async () => {
  for (const pid of daemonPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  daemonPids.clear();
  await Promise.all(homes.splice(0).map((h) => rm(h, { recursive: true, force: true })));
});

/**
 * A fresh TOKENBROKER_HOME with autostart ON (the harness turns it off by default). HOME and
 * XDG_CONFIG_HOME point into it too, so a service installed for the real user cannot interfere.
 */
async function autostartHome(): Promise<{ home: string; env: NodeJS.ProcessEnv }> {
  const home = await makeTempHome('tb-as-');
  homes.push(home);
  await writeFile(path.join(home, 'config.json'), JSON.stringify({ secretStore: 'memory' }));
  const env = isolatedEnv(home, { TOKENBROKER_NO_AUTOSTART: undefined, HOME: home, XDG_CONFIG_HOME: path.join(home, 'xdg-config') });
  return { home, env };
}

function pidOf(result: CliResult): number {
  const pid = (JSON.parse(result.stdout) as { pid: number }).pid;
  daemonPids.add(pid);
  return pid;
}

async function stopDaemon(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  expect(await waitForExit(pid, 15_000)).toBe(true);
  daemonPids.delete(pid);
}

describe('autostart', () => {
  it('five CLIs racing on a fresh home start exactly one daemon, and all five succeed', async () => {
    const { home, env } = await autostartHome();
    const results = await Promise.all(Array.from({ length: 5 }, () => runCli(['status', '--json'], { env, timeoutMs: 30_000 })));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const pids = new Set(results.map(pidOf));
    expect(pids.size).toBe(1);
    const [pid] = [...pids] as [number];
    // Every daemon process that was ever started logs to the same file: exactly one got to "ready",
    // none was started only to find another one running.
    const log = await readFile(path.join(home, 'state', 'daemon.log'), 'utf8');
    expect(log.match(/tokenbroker daemon ready/g)).toHaveLength(1);
    expect(log).not.toMatch(/already running/);
    expect(log).toContain(`"pid":${pid}`);
    // The spawn lock is gone; only the socket is left in its directory.
    expect(await readdir(path.join(home, 'run'))).toEqual(['broker.sock']);
    // It outlives the CLIs that started it, and later commands use it.
    const later = await runCli(['status', '--json'], { env });
    expect(pidOf(later)).toBe(pid);
    await stopDaemon(pid);
  });

  it('TOKENBROKER_NO_AUTOSTART=1: exit 3 with the hint, nothing started', async () => {
    const { home, env } = await autostartHome();
    const result = await runCli(['status'], { env: { ...env, TOKENBROKER_NO_AUTOSTART: '1' } });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/hint: Start it with `tokenbroker daemon`/);
    await expect(lstat(path.join(home, 'run'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(path.join(home, 'state'))).rejects.toThrow(/ENOENT/);
  });

  /**
   * A home where the systemd login service is installed, with a stand-in `systemctl` first on PATH
   * (no user systemd runs here): it records its arguments and does what `script` says.
   */
  async function serviceHome(script: string): Promise<{ home: string; env: NodeJS.ProcessEnv; calls: () => Promise<string> }> {
    const { home, env } = await autostartHome();
    const runtime = path.join(home, 'rt');
    await mkdir(runtime, { mode: 0o700 });
    await mkdir(path.join(home, 'xdg-config', 'systemd', 'user'), { recursive: true });
    await writeFile(path.join(home, 'xdg-config', 'systemd', 'user', 'tokenbroker.socket'), '[Socket]\nListenStream=%t/tokenbroker/broker.sock\n');
    const bin = path.join(home, 'bin');
    await mkdir(bin);
    const calls = path.join(home, 'systemctl.calls');
    await writeFile(path.join(bin, 'systemctl'), `#!/bin/sh\necho "$@" >> '${calls}'\n${script}\n`, { mode: 0o755 });
    // The service's socket is the CLI's too: no TOKENBROKER_HOME, the runtime dir decides.
    const serviceEnv: NodeJS.ProcessEnv = { ...env, XDG_RUNTIME_DIR: runtime, XDG_STATE_HOME: path.join(home, 'xdg-state'), PATH: `${bin}:${process.env.PATH ?? ''}` };
    delete serviceEnv.TOKENBROKER_HOME;
    return { home, env: serviceEnv, calls: () => readFile(calls, 'utf8').catch(() => '') };
  }

  it('with the login service installed, starts the service (systemctl --user start) instead of a daemon of its own', async () => {
    // The stand-in "service manager" starts the daemon as the socket unit would.
    const { home, env, calls } = await serviceHome(`${process.execPath} ${CLI_ENTRY} daemon > /dev/null 2>&1 &`);
    const result = await runCli(['status', '--json'], { env, timeoutMs: 30_000 });
    expect(result.code, result.stderr).toBe(0);
    const pid = pidOf(result);
    expect(await calls()).toBe('--user start tokenbroker.socket\n');
    expect((JSON.parse(result.stdout) as { socket: { path: string } }).socket.path).toBe(path.join(home, 'rt', 'tokenbroker', 'broker.sock'));
    // Nothing was spawned by autostart itself: no autostart log in the state dir.
    await expect(lstat(path.join(home, 'xdg-state', 'tokenbroker', 'daemon.log'))).rejects.toThrow(/ENOENT/);
    await stopDaemon(pid);
  });

  it('with the login service installed but no service manager running, says so and what to do instead', async () => {
    const { home, env, calls } = await serviceHome("echo 'Failed to connect to bus: No medium found' >&2; exit 1");
    const result = await runCli(['status'], { env });
    expect(result.code).toBe(3);
    expect(await calls()).toBe('--user start tokenbroker.socket\n');
    expect(result.stderr).toContain(`not reachable at ${path.join(home, 'rt', 'tokenbroker', 'broker.sock')} (the tokenbroker service is installed (systemd) but \`systemctl --user start tokenbroker.socket\` failed: Failed to connect to bus: No medium found)`);
    expect(result.stderr).toContain('hint: Where no user systemd runs (a container, ssh without lingering), run `tokenbroker daemon` instead.');
    await expect(lstat(path.join(home, 'xdg-state'))).rejects.toThrow(/ENOENT/);
  });

  it('a live daemon of the same state directory on another socket is named, not doubled', async () => {
    const { home, env } = await autostartHome();
    const first = await runCli(['status', '--json'], { env, timeoutMs: 30_000 });
    expect(first.code, first.stderr).toBe(0);
    const pid = pidOf(first);
    const stateDir = path.join(home, 'state');
    // The daemon's state-dir lock (written by the daemon itself once its lock is in; a stand-in
    // in the lock's format until then).
    if ((await readDaemonLock(stateDir)) === undefined) {
      await writeFile(path.join(stateDir, 'daemon.lock'), JSON.stringify({ pid, socket: path.join(home, 'run', 'broker.sock'), startedAt: new Date().toISOString(), version: '0.1.0' }));
    }
    const other = path.join(home, 'other', 'x.sock');
    const result = await runCli(['--socket', other, 'status'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`a daemon (pid ${pid}) already runs for the state directory ${stateDir}, on ${path.join(home, 'run', 'broker.sock')}`);
    expect(result.stderr).toContain(`hint: Use its socket (--socket ${path.join(home, 'run', 'broker.sock')}`);
    await expect(lstat(other)).rejects.toThrow(/ENOENT/);
    await stopDaemon(pid);
  });

  it('the library starts the daemon only when asked: `autostart: true` starts one, the default reports it missing', async () => {
    const { home, env } = await autostartHome();
    const socketPath = path.join(home, 'run', 'broker.sock');
    const plain = new TokenBrokerClient({ socketPath, stateDir: path.join(home, 'state') });
    await expect(plain.status()).rejects.toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
    await expect(lstat(path.join(home, 'run'))).rejects.toThrow(/ENOENT/);
    const started: DaemonStarted[] = [];
    const client = new TokenBrokerClient({ socketPath, autostart: { env, onStarted: (s) => started.push(s) } });
    try {
      const status = await client.status();
      daemonPids.add(status.pid);
      expect(started).toEqual([{ how: 'spawned', pid: status.pid, logFile: path.join(home, 'state', 'daemon.log') }]);
      expect(status.socket.path).toBe(socketPath);
      // Started with the daemon's node flags and without core files.
      const cmdline = (await readFile(`/proc/${status.pid}/cmdline`, 'utf8')).split('\0');
      expect(cmdline).toEqual(expect.arrayContaining([...DAEMON_NODE_FLAGS, CLI_ENTRY, '--socket', socketPath, 'daemon']));
      expect(await readFile(`/proc/${status.pid}/limits`, 'utf8')).toMatch(/Max core file size\s+0\s+0/);
      await stopDaemon(status.pid);
    } finally {
      await client.close();
      await plain.close();
    }
  });

  it('a daemon that cannot start: exit 3 naming its error and its log', async () => {
    const { home, env } = await autostartHome();
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ logLevel: 'loud' }));
    const result = await runCli(['status'], { env });
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/the daemon started for this command exited with code 1: config .*config\.json: "logLevel" must be one of/);
    expect(result.stderr).toContain(`hint: See its log: ${path.join(home, 'state', 'daemon.log')}`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('a spawn lock left by a killed CLI (its pid is gone) does not block autostart', async () => {
    const { home, env } = await autostartHome();
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.once('exit', resolve));
    await mkdir(path.join(home, 'run'), { mode: 0o700 });
    await writeFile(path.join(home, 'run', 'broker.sock.lock'), `${dead.pid}\n`);
    const result = await runCli(['status', '--json'], { env });
    expect(result.code, result.stderr).toBe(0);
    await stopDaemon(pidOf(result));
    await expect(lstat(path.join(home, 'run', 'broker.sock.lock'))).rejects.toThrow(/ENOENT/);
  });
});
