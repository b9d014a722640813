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
