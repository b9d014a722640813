import { chown, mkdir, symlink } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLocalHttpServer, HEADERS_TIMEOUT_MS } from '../../src/daemon/server.js';
import { isolatedEnv, runCli } from '../helpers/test-daemon.js';
import { isRoot, itWhen } from '../helpers/tools.js';
import { useTempHomes } from '../helpers/per-test.js';

const home = useTempHomes({ after: 'all' });

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

  it('a client that never finishes its headers is cut off with a 408; the server keeps serving others', async () => {
    // The daemon's own server (createLocalHttpServer, used for the main socket and every extra
    // listener) with a 1 s header timeout instead of HEADERS_TIMEOUT_MS: the same cut-off, a tenth
    // of the wait.
    const timeoutMs = 1_000;
    expect(HEADERS_TIMEOUT_MS).toBeGreaterThan(timeoutMs);
    const dir = await home();
    const socketPath = path.join(dir, 'slow.sock');
    const server = createLocalHttpServer((_req, res) => res.end('ok'), timeoutMs);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const socket = connect(socketPath);
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.write('GET /v1/status HTTP/1.1\r\nHost: localhost\r\n');
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString()));
      const t0 = Date.now();
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      // Never early: the whole header timeout passed (less the timer's granularity).
      expect(Date.now() - t0).toBeGreaterThanOrEqual(timeoutMs - 100);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      // Everyone else is still served.
      const other = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath, path: '/', headers: { host: 'localhost' } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        req.end();
      });
      expect(other).toBe('ok');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
