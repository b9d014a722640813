import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireDaemonLock, DaemonLockHeldError, readDaemonLock, type DaemonLock } from '../../src/node/daemon-lock.js';
import { VERSION } from '../../src/protocol/version.js';
import { TokenBrokerClient } from '../../src/client/client.js';
import { runCli } from '../helpers/test-daemon.js';
import { exited } from '../helpers/process.js';
import { isLinux, itWhen } from '../helpers/tools.js';
import { waitFor } from '../helpers/wait-for.js';
import { useTestDaemons } from '../helpers/per-test.js';

const { start, tempHome } = useTestDaemons();
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A live process of ours that is not the test process (its pid can be put in a lock); resolves once it runs. */
async function sleeper(): Promise<number> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  cleanups.push(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  return child.pid as number;
}

async function writeLock(stateDir: string, lock: DaemonLock): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(stateDir, 'daemon.lock'), JSON.stringify(lock));
}

describe('one daemon per state directory', () => {
  it('writes the lock (pid, socket, startedAt, version) and removes it at exit', async () => {
    const daemon = await start();
    const stateDir = path.join(daemon.home, 'state');
    const lock = await readDaemonLock(stateDir);
    expect(lock).toMatchObject({ pid: daemon.pid, socket: daemon.socketPath, version: VERSION });
    expect(Date.parse(lock?.startedAt ?? '')).toBeLessThanOrEqual(Date.now());
    expect((await lstat(path.join(stateDir, 'daemon.lock'))).mode & 0o777).toBe(0o600);
    expect(await daemon.stop()).toBe(0);
    await expect(lstat(path.join(stateDir, 'daemon.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a second daemon on the same state directory with another socket, naming the first and its socket', async () => {
    const daemon = await start();
    const otherSocket = path.join(daemon.home, 'typo.sock');
    const second = await runCli(['--socket', otherSocket, 'daemon'], { env: daemon.env });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already running (pid ${daemon.pid}) on ${daemon.socketPath}`);
    expect(second.stderr).toContain(`--socket ${daemon.socketPath}`);
    expect(second.stderr).not.toMatch(/\n\s+at /);
    // The refused one never bound its socket, and the first one's lock is intact.
    await expect(lstat(otherSocket)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readDaemonLock(path.join(daemon.home, 'state')))?.pid).toBe(daemon.pid);
  });

  it('takes over a lock whose pid is gone', async () => {
    const home = await tempHome();
    const gone = spawn('true');
    await exited(gone, 5_000);
    await writeLock(path.join(home, 'state'), { pid: gone.pid as number, socket: '/nowhere.sock', startedAt: new Date().toISOString(), version: '0.0.1' });
    const daemon = await start({ home });
    expect((await readDaemonLock(path.join(home, 'state')))?.pid).toBe(daemon.pid);
  });

  itWhen(isLinux, 'Linux (/proc start times)', 'treats a lock as stale when its pid now belongs to a process started later (pid reuse)', async () => {
    const stateDir = path.join(await tempHome(), 'state');
    const pid = await sleeper();
    // Written an hour before that process started: the pid was reused.
    await writeLock(stateDir, { pid, socket: '/old.sock', startedAt: new Date(Date.now() - 3_600_000).toISOString(), version: '0.0.1' });
    expect(await readDaemonLock(stateDir)).toBeUndefined();
    const held = await acquireDaemonLock(stateDir, { socket: '/new.sock', version: VERSION });
    expect(JSON.parse(await readFile(path.join(stateDir, 'daemon.lock'), 'utf8'))).toMatchObject({ pid: process.pid, socket: '/new.sock' });
    await held.release();
    expect(await readDaemonLock(stateDir)).toBeUndefined();
  });

  it('keeps a lock whose live pid started before it was written', async () => {
    const stateDir = path.join(await tempHome(), 'state');
    const pid = await sleeper();
    const lock = { pid, socket: '/live.sock', startedAt: new Date(Date.now() + 5_000).toISOString(), version: '0.0.1' };
    await writeLock(stateDir, lock);
    expect(await readDaemonLock(stateDir)).toEqual(lock);
    const refused = await acquireDaemonLock(stateDir, { socket: '/second.sock', version: VERSION }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(DaemonLockHeldError);
    expect((refused as DaemonLockHeldError).message).toContain(`already running (pid ${pid}) on /live.sock`);
  });
});

describe('a socket that heals', () => {
  it('re-creates a deleted socket within 10 s, same daemon, still 0600', async () => {
    const daemon = await start();
    await unlink(daemon.socketPath);
    const fresh = new TokenBrokerClient({ socketPath: daemon.socketPath, onVersionMismatch: () => undefined });
    try {
      const status = await waitFor('the daemon answering on its socket again', () => fresh.status().catch(() => undefined), { timeoutMs: 10_000 });
      expect(status.pid).toBe(daemon.pid);
      expect((await lstat(daemon.socketPath)).mode & 0o777).toBe(0o600);
    } finally {
      await fresh.close();
    }
    // And at exit it removes the socket it re-created.
    expect(await daemon.stop()).toBe(0);
    await expect(lstat(daemon.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('re-creates its socket when the run directory was deleted', async () => {
    const daemon = await start();
    await rm(path.dirname(daemon.socketPath), { recursive: true });
    const fresh = new TokenBrokerClient({ socketPath: daemon.socketPath, onVersionMismatch: () => undefined });
    try {
      expect((await waitFor('the daemon answering again', () => fresh.status().catch(() => undefined), { timeoutMs: 10_000 })).pid).toBe(daemon.pid);
      expect((await lstat(path.dirname(daemon.socketPath))).mode & 0o777).toBe(0o700);
    } finally {
      await fresh.close();
    }
  });

  it("never takes over a successor's live socket, and leaves it in place when it exits", async () => {
    const first = await start();
    const successorHome = await tempHome();
    // Frozen, the first daemon cannot heal before the successor binds the freed path.
    first.process.kill('SIGSTOP');
    let resumed = false;
    cleanups.push(() => {
      if (!resumed) first.process.kill('SIGCONT');
    });
    await unlink(first.socketPath);
    const successor = await start({ home: successorHome, args: ['--socket', first.socketPath] });
    first.process.kill('SIGCONT');
    resumed = true;
    // The first daemon's next check finds a live socket that is not its own and says so.
    await waitFor('the first daemon noticing the successor', async () => (first.output().includes('now belongs to another process') ? true : undefined), { timeoutMs: 15_000 });
    expect(await first.stop()).toBe(0);
    expect((await lstat(first.socketPath)).isSocket()).toBe(true);
    expect((await successor.client.status()).pid).toBe(successor.pid);
  });
});

describe('daemon stop and restart', () => {
  it('stop drains and ends the daemon (exit 0, socket and lock gone); a second stop says none runs', async () => {
    const daemon = await start();
    const result = await runCli(['daemon', 'stop'], { env: daemon.env });
    expect(result.stderr).toContain(`stopping the daemon (pid ${daemon.pid}`);
    expect(result.code).toBe(0);
    expect(await exited(daemon.process, 5_000)).toBe(0);
    await expect(lstat(daemon.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(path.join(daemon.home, 'state', 'daemon.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await runCli(['daemon', 'stop'], { env: daemon.env });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('no daemon is running');
  });

  it('stop finds the daemon of the state directory through its lock when it listens on another socket', async () => {
    const home = await tempHome();
    const socketPath = path.join(home, 'elsewhere.sock');
    const daemon = await start({ home, args: ['--socket', socketPath] });
    const result = await runCli(['daemon', 'stop'], { env: daemon.env });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`stopping the daemon (pid ${daemon.pid}, socket ${socketPath})`);
    expect(await exited(daemon.process, 5_000)).toBe(0);
  });

  it('restart starts a new daemon on the same socket (even with autostart off)', async () => {
    const daemon = await start();
    const result = await runCli(['daemon', 'restart'], { env: daemon.env });
    const started = /started \(pid (\d+)/.exec(result.stderr);
    if (started !== null) cleanups.push(() => process.kill(Number(started[1]), 'SIGKILL'));
    expect(result.code, result.stderr).toBe(0);
    expect(await exited(daemon.process, 5_000)).toBe(0);
    const fresh = new TokenBrokerClient({ socketPath: daemon.socketPath, onVersionMismatch: () => undefined });
    try {
      const status = await fresh.status();
      expect(status.pid).not.toBe(daemon.pid);
      expect(status.pid).toBe(Number(started?.[1]));
    } finally {
      await fresh.close();
    }
  });
});
