import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';

/** Writes raw bytes to the daemon's socket and reads until it closes or answers one response. */
async function rawExchange(socketPath: string, bytes: string): Promise<{ status: number; headers: string; body: unknown }> {
  const socket = connect(socketPath);
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(bytes);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
    // A keep-alive answer does not close: stop once the announced body is complete.
    socket.on('data', () => {
      const split = answer.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(answer.slice(0, split));
      if (split !== -1 && length !== null && Buffer.byteLength(answer.slice(split + 4)) >= Number(length[1])) {
        socket.destroy();
        resolve();
      }
    });
  });
  const split = answer.indexOf('\r\n\r\n');
  const statusLine = /^HTTP\/1\.1 (\d{3}) /.exec(answer);
  return { status: Number(statusLine?.[1] ?? 0), headers: answer.slice(0, split), body: JSON.parse(answer.slice(split + 4)) };
}

describe('every refusal answers with the BROKER_ envelope', () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('a 20 KB header is a 431 with the envelope, and the daemon keeps serving', async () => {
    const answer = await rawExchange(daemon.socketPath, `GET /v1/status HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    expect(answer.status).toBe(431);
    expect(answer.headers).toMatch(/content-type: application\/json/i);
    expect(answer.body).toMatchObject({ error: { code: 'BROKER_BAD_REQUEST', message: expect.stringContaining('headers are too large'), hint: expect.any(String) } });
    expect((await daemon.client.status()).pid).toBe(daemon.pid);
  });

  it('a garbage request line is a 400 with the envelope, and the daemon keeps serving', async () => {
    const answer = await rawExchange(daemon.socketPath, 'HELLO THERE\x00\x01 what\r\n\r\n');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: 'BROKER_BAD_REQUEST', message: 'The request is not valid HTTP/1.1.' } });
    expect((await daemon.client.status()).pid).toBe(daemon.pid);
  });

  it('two Host headers are a 400 BROKER_BAD_REQUEST', async () => {
    const answer = await rawExchange(daemon.socketPath, 'GET /v1/status HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n');
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: 'BROKER_BAD_REQUEST', message: 'The request has more than one Host header.' } });
  });

  it.each(['cross-site', 'same-site'])('Sec-Fetch-Site: %s without Origin is BROKER_FORBIDDEN', async (site) => {
    const answer = await rawExchange(daemon.socketPath, `GET /v1/status HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Site: ${site}\r\n\r\n`);
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({ error: { code: 'BROKER_FORBIDDEN' } });
  });

  it.each(['none', 'same-origin'])('Sec-Fetch-Site: %s is served', async (site) => {
    const answer = await rawExchange(daemon.socketPath, `GET /v1/status HTTP/1.1\r\nHost: localhost\r\nSec-Fetch-Site: ${site}\r\n\r\n`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ pid: daemon.pid });
  });
});
