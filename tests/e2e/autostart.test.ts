import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForExit } from '../../src/cli/process-util.js';
import { isolatedEnv, makeTempHome, runCli, type CliResult } from '../helpers/test-daemon.js';

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

  it('with a service installed, says how to start it instead of starting a daemon', async () => {
    const { home, env } = await autostartHome();
    const runtime = path.join(home, 'rt');
    await mkdir(runtime, { mode: 0o700 });
    await mkdir(path.join(home, 'xdg-config', 'systemd', 'user'), { recursive: true });
    await writeFile(path.join(home, 'xdg-config', 'systemd', 'user', 'tokenbroker.socket'), '[Socket]\nListenStream=%t/tokenbroker/broker.sock\n');
    // The service's socket is the CLI's too: no TOKENBROKER_HOME, the runtime dir decides.
    const serviceEnv = { ...env, TOKENBROKER_HOME: undefined, XDG_RUNTIME_DIR: runtime, XDG_STATE_HOME: path.join(home, 'xdg-state') };
    delete serviceEnv.TOKENBROKER_HOME;
    const result = await runCli(['status'], { env: serviceEnv });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`not reachable at ${path.join(runtime, 'tokenbroker', 'broker.sock')}`);
    expect(result.stderr).toContain('hint: The tokenbroker service is installed (systemd) but not running: start it with `systemctl --user start tokenbroker.socket`');
    await expect(lstat(path.join(home, 'xdg-state'))).rejects.toThrow(/ENOENT/);
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
