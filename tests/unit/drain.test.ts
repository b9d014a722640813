import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { drainAndClose, trackInFlight } from '../../src/daemon/drain.js';
import { createLogger } from '../../src/daemon/logger.js';

const quietLogger = () => createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) });

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('drain on shutdown', () => {
  it('lets an in-flight request finish, then closes', async () => {
    let started!: () => void;
    const inHandler = new Promise<void>((resolve) => (started = resolve));
    const server = createServer((_req, res) => {
      started();
      setTimeout(() => res.end('done'), 300);
    });
    const inFlight = trackInFlight(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const answer = get(port);
    await inHandler;
    expect(inFlight.count()).toBe(1);
    const t0 = Date.now();
    await drainAndClose({ server, inFlight, graceMs: 5_000, log: quietLogger() });
    expect(await answer).toEqual({ status: 200, body: 'done' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(server.listening).toBe(false);
  });

  it('closes a request that outlives the grace period', async () => {
    const server = createServer(() => {
      // never answers
    });
    const inFlight = trackInFlight(server);
    // Listens after trackInFlight's listener: once it fires, the request is counted.
    const arrived = once(server, 'request');
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const answer = get(port).catch((err: Error) => err);
    await arrived;
    expect(inFlight.count()).toBe(1);
    const t0 = Date.now();
    await drainAndClose({ server, inFlight, graceMs: 200, log: quietLogger() });
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(5_000);
    expect(await answer).toBeInstanceOf(Error);
  });
});
