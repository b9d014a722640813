import { chmod, lstat, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedEnv, runCli } from '../helpers/test-daemon.js';
import { recordEvents } from '../helpers/event-stream.js';
import { useTestDaemons } from '../helpers/per-test.js';

const { start, tempHome } = useTestDaemons();

describe('daemon on its socket', () => {
  it('creates the socket 0600 in a 0700 directory, and the state and cache dirs 0700', async () => {
    const daemon = await start();
    const socket = await lstat(daemon.socketPath);
    expect(socket.isSocket()).toBe(true);
    expect(socket.mode & 0o777).toBe(0o600);
    expect((await lstat(path.dirname(daemon.socketPath))).mode & 0o777).toBe(0o700);
    expect((await lstat(path.join(daemon.home, 'state'))).mode & 0o777).toBe(0o700);
    expect((await lstat(path.join(daemon.home, 'cache'))).mode & 0o777).toBe(0o700);
  });

  it('refuses a second daemon on the same socket, naming the running pid', async () => {
    const daemon = await start();
    const second = await runCli(['daemon'], { env: daemon.env });
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`already running (pid ${daemon.pid})`);
    expect(second.stderr).not.toMatch(/\n\s+at /);
    expect((await daemon.client.status()).pid).toBe(daemon.pid);
  });

  it('starts after kill -9 left a stale socket behind', async () => {
    const first = await start();
    expect(await first.stop('SIGKILL')).toBe(null);
    expect((await lstat(first.socketPath)).isSocket()).toBe(true);
    const second = await start({ home: first.home });
    expect((await second.client.status()).pid).toBe(second.pid);
    expect(second.pid).not.toBe(first.pid);
  });

  it('refuses a symlinked socket directory with a clear error', async () => {
    const home = await tempHome();
    const elsewhere = await tempHome();
    await symlink(elsewhere, path.join(home, 'run'));
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/socket directory .*run is a symlink; refusing to use it/);
  });

  it('refuses a group-writable socket directory with a clear error', async () => {
    const home = await tempHome();
    await mkdir(path.join(home, 'run'), { mode: 0o700 });
    await chmod(path.join(home, 'run'), 0o770);
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/writable by group or others \(mode 0770\)/);
    // Never "chmod" a directory tokenbroker did not create: it may be /tmp or the user's own.
    expect(result.stderr).not.toMatch(/chmod/);
    expect(result.stderr).toMatch(/hint: Use a directory tokenbroker creates itself/);
  });

  it('refuses to replace a file that is not a socket', async () => {
    const home = await tempHome();
    await mkdir(path.join(home, 'run'), { mode: 0o700 });
    await writeFile(path.join(home, 'run', 'broker.sock'), 'precious');
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/is not a socket; refusing to replace it/);
  });

  it('a malformed config exits 1 with one line naming the key', async () => {
    const home = await tempHome();
    await writeFile(path.join(home, 'config.json'), JSON.stringify({ refresh: { intervalMinutes: 'soon' } }));
    const result = await runCli(['daemon'], { env: isolatedEnv(home) });
    expect(result.code).toBe(1);
    const firstLine = result.stderr.split('\n')[0] ?? '';
    expect(firstLine).toContain(path.join(home, 'config.json'));
    expect(firstLine).toContain('"refresh.intervalMinutes"');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('SIGTERM exits 0 and removes the socket', async () => {
    const daemon = await start();
    expect(await daemon.stop('SIGTERM')).toBe(0);
    await expect(lstat(daemon.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(daemon.output()).toContain('"msg":"stopped"');
  });

  it('SIGINT exits 0 too, even with an idle keep-alive connection open', async () => {
    const daemon = await start();
    await daemon.client.status(); // leaves a keep-alive connection
    daemon.process.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => daemon.process.once('exit', resolve));
    expect(code).toBe(0);
  });

  it('SIGTERM sends daemon.stopping to event listeners and ends their stream', async () => {
    const daemon = await start();
    const recording = recordEvents(daemon.client);
    await recording.opened;
    daemon.process.kill('SIGTERM');
    await recording.done;
    const types = recording.events.map((event) => event.type);
    // With the default config the official source cannot be refreshed here (no network): a
    // source.failed may come first; daemon.stopping is the last event, sent once.
    expect(types.filter((type) => type !== 'source.failed')).toEqual(['daemon.stopping']);
    expect(types.at(-1)).toBe('daemon.stopping');
    const code = await new Promise<number | null>((resolve) => (daemon.process.exitCode !== null ? resolve(daemon.process.exitCode) : daemon.process.once('exit', resolve)));
    expect(code).toBe(0);
  });
});
