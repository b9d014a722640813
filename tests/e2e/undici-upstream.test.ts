import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUndiciUpstream, type UndiciUpstream } from '../../src/node/undici-upstream.js';
import { startFakeArtifactory, type FakeArtifactory } from '../fixtures/fake-artifactory.js';

const timeouts = { connectMs: 2_000, headersMs: 500, bodyIdleMs: 500 };

describe('undici upstream adapter', () => {
  let af: FakeArtifactory;
  let upstream: UndiciUpstream;
  beforeAll(async () => {
    af = await startFakeArtifactory();
    upstream = createUndiciUpstream({ timeouts, proxy: null, caFile: null, env: {} });
  });
  afterAll(async () => {
    await upstream.close();
    await af.close();
  });

  it('does one exchange and never follows a redirect', async () => {
    af.setRedirect('/artifactory/swtools/external/moved.txt', 'https://storage.example/x', 302);
    const res = await upstream.request({ method: 'GET', url: af.url('/artifactory/swtools/external/moved.txt'), headers: {} });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('https://storage.example/x');
    res.body.resume();
  });

  it('streams a body with the headers it was sent', async () => {
    af.addToken('tok-1');
    af.setFile('/artifactory/restricted/a.bin', 'hello');
    const res = await upstream.request({ method: 'GET', url: af.url('/artifactory/restricted/a.bin'), headers: { authorization: 'Bearer tok-1', range: 'bytes=0-' } });
    expect(res.status).toBe(206);
    let body = '';
    for await (const chunk of res.body) body += String(chunk);
    expect(body).toBe('hello');
    expect(af.requestsTo('/artifactory/restricted/a.bin').at(-1)?.headers.authorization).toBe('Bearer tok-1');
  });

  it('a header timeout is BROKER_UPSTREAM_UNREACHABLE with reason headers-timeout', async () => {
    af.setFile('/artifactory/swtools/external/slow.txt', 'x');
    af.setFault('/artifactory/swtools/external/slow.txt', { kind: 'hang' }, { times: 1 });
    await expect(upstream.request({ method: 'GET', url: af.url('/artifactory/swtools/external/slow.txt'), headers: {} })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'headers-timeout' } });
  });

  it('a refused connection is BROKER_UPSTREAM_UNREACHABLE with reason network', async () => {
    await expect(upstream.request({ method: 'GET', url: 'http://127.0.0.1:1/x', headers: {} })).rejects.toMatchObject({ code: 'BROKER_UPSTREAM_UNREACHABLE', details: { reason: 'network', code: 'ECONNREFUSED' } });
  });
});

// undici issues 5360/5474: in undici 7.x a body paused by backpressure (a slow reader) whose
// upstream closes the connection crashed the process with an uncatchable assert(!this.paused).
// Each case runs in a child process (the compiled adapter, as the daemon runs it), so a crash is
// the child's exit status, not a hole in this test run.
const root = fileURLToPath(new URL('../..', import.meta.url));
const compiledUpstream = pathToFileURL(join(root, 'dist/node/undici-upstream.js')).href;

/** A raw upstream that answers once with `head` + `body`, then closes (FIN); the client reads only once it has seen that FIN. */
const slowReaderScript = (head: string, bodyBytes: number, reset = false) => `
  import diagnosticsChannel from 'node:diagnostics_channel';
  import { createServer } from 'node:net';
  const { createUndiciUpstream } = await import(${JSON.stringify(compiledUpstream)});
  const body = Buffer.alloc(${bodyBytes}, 0x61);
  const server = createServer((sock) => sock.once('data', () => {
    sock.write(${JSON.stringify(head)});
    if (${reset}) sock.write(body, () => sock.resetAndDestroy());
    else sock.end(body);
  }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const upstream = createUndiciUpstream({ timeouts: { connectMs: 5000, headersMs: 5000, bodyIdleMs: 60000 }, proxy: null, caFile: null, env: {} });
  // Subscribed after the adapter, so this sees the socket's end of stream (or reset) first.
  let closed = false;
  diagnosticsChannel.subscribe('undici:client:connected', ({ socket }) => {
    const push = socket.push;
    socket.push = function (chunk, ...rest) { if (chunk === null) closed = true; return push.call(this, chunk, ...rest); };
    socket.prependListener('error', () => { closed = true; });
  });
  const res = await upstream.request({ method: 'GET', url: 'http://127.0.0.1:' + server.address().port + '/file', headers: {} });
  // The slow reader: nothing is read until the upstream's FIN has reached the client socket, and
  // what that triggers (next ticks, 'end', 'close') has run.
  while (!closed) await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  const out = { status: res.status, bodyPaused: res.body.isPaused() || res.body.readableLength >= res.body.readableHighWaterMark };
  let received = 0;
  try {
    for await (const chunk of res.body) received += chunk.length;
    out.received = received;
  } catch (err) {
    out.received = received;
    out.error = err.code ?? err.name;
  }
  await upstream.close();
  server.close();
  console.log(JSON.stringify(out));
`;

async function runSlowReader(head: string, bodyBytes: number, reset = false): Promise<{ code: number; out: Record<string, unknown>; stderr: string }> {
  const args = ['--input-type=module', '-e', slowReaderScript(head, bodyBytes, reset)];
  const result = await promisify(execFile)(process.execPath, args, { cwd: root, timeout: 30_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  return { code: result.code, out: last === '' ? {} : (JSON.parse(last) as Record<string, unknown>), stderr: result.stderr };
}

describe('undici upstream: a slow reader and an upstream that closes', () => {
  const size = 64 * 1024; // one read fills the body's buffer: the parser pauses on the last bytes

  it('a complete Content-Length body with Connection: close is read in full, no crash', async () => {
    const { code, out, stderr } = await runSlowReader(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`, size);
    expect(stderr).not.toMatch(/assert|AssertionError/);
    expect(code, stderr).toBe(0);
    expect(out).toMatchObject({ status: 200, bodyPaused: true, received: size });
    expect(out['error']).toBeUndefined();
  });

  it('a body that ends with the connection (no length) is read in full, no crash', async () => {
    const { code, out, stderr } = await runSlowReader('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n', size);
    expect(code, stderr).toBe(0);
    expect(out).toMatchObject({ status: 200, bodyPaused: true, received: size });
    expect(out['error']).toBeUndefined();
  });

  it('a body cut short by the close fails with a catchable error, no crash', async () => {
    const { code, out, stderr } = await runSlowReader(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * size}\r\nConnection: close\r\n\r\n`, size);
    expect(code, stderr).toBe(0);
    expect(out).toMatchObject({ status: 200, bodyPaused: true, received: size });
    expect(out['error']).toEqual(expect.any(String));
  });

  it('a connection reset while the body waits fails the body catchably, no crash', async () => {
    const { code, out, stderr } = await runSlowReader(`HTTP/1.1 200 OK\r\nContent-Length: ${2 * size}\r\nConnection: close\r\n\r\n`, size, true);
    expect(code, stderr).toBe(0);
    expect(out).toMatchObject({ status: 200 });
    expect(out['error']).toEqual(expect.any(String));
  });
});
