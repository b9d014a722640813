import { chown, mkdir, rm, symlink } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HEADERS_TIMEOUT_MS } from '../src/daemon/server.js';
import { isolatedEnv, makeTempHome, runCli, startTestDaemon } from './helpers/test-daemon.js';
import { isRoot, itWhen } from './helpers/tools.js';

const homes: string[] = [];
afterAll(async () => {
  await Promise.all(homes.map((h) => rm(h, { recursive: true, force: true })));
});
async function home(): Promise<string> {
  const h = await makeTempHome();
  homes.push(h);
  return h;
}

describe('security', () => {
  it.each(['state', 'cache'])('a symlinked %s directory is refused', async (dir) => {
    const h = await home();
    const elsewhere = await home();
    await symlink(elsewhere, path.join(h, dir));
    const result = await runCli(['daemon'], { env: isolatedEnv(h) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${dir} directory ${path.join(h, dir)} is a symlink; refusing to use it`);
  });

  itWhen(isRoot, 'root (to chown a directory to another user)', 'a state directory owned by another user is refused', async () => {
    const h = await home();
    await mkdir(path.join(h, 'state'), { mode: 0o700 });
    await chown(path.join(h, 'state'), 65534, 65534);
    const result = await runCli(['daemon'], { env: isolatedEnv(h) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/state directory .* is owned by uid 65534, not by you/);
  });

  it(
    'a client that never finishes its headers is cut off',
    async () => {
      const daemon = await startTestDaemon();
      try {
        const socket = connect(daemon.socketPath);
        await new Promise<void>((resolve) => socket.once('connect', resolve));
        socket.write('GET /v1/status HTTP/1.1\r\nHost: localhost\r\n');
        let answer = '';
        socket.on('data', (c: Buffer) => (answer += c.toString()));
        const t0 = Date.now();
        await new Promise<void>((resolve) => socket.once('close', () => resolve()));
        expect(Date.now() - t0).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 2_000);
        expect(answer).toMatch(/^HTTP\/1\.1 408/);
        // The daemon is still fine for everyone else.
        expect((await daemon.client.status()).pid).toBe(daemon.pid);
      } finally {
        await daemon.cleanup();
      }
    },
    HEADERS_TIMEOUT_MS + 15_000,
  );
});
